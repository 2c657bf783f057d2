"""The sandbox's in-memory orders: create, read, update, complete, acknowledge, expire.

No Flask here. Every method of `OrderStore` takes the store's lock and hands back copies, so
views (and, later, the shopper simulation in shopper.py) never share a mutable order between
threads; `OrderStore.mutate` is the one way to change an order in place. What a create or
update body must be is order_schema.py's business; the clock is clock.py's.

Expiry (docs/klarna.md §6): a Checkout order lives 48 h after the last merchant update or
shopper interaction (`touched_at`); after that the Checkout API answers 404. A completed order
stays readable in Order Management, which has its own authorization expiry (`expires_at`).

Accounts (accounts.py): an order belongs to the account (API username) that created it. The
API's calls pass that account, and an order of another account is as unknown to them as one
never made (404); the controls and the shopper pass none and see every order. An account's
region refuses a purchase currency it cannot sell (400 `Bad value: purchase_currency`).
"""
from __future__ import annotations

import copy
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callbacks.rules import regions
from sandbox.clock import Clock, iso
from sandbox.errors import ApiError, bad_value, no_such_order, not_found
from sandbox.order_schema import COUNTRY, order_errors

# Re-exported: the views and the shopper import these from here.
__all__ = ["ApiError", "Clock", "COUNTRY", "FRAUD_STATUSES", "Order", "OrderStore", "bad_value",
           "iso", "not_found", "no_such_order", "order_errors"]

ORDER_TTL = timedelta(hours=48)
AUTHORIZATION_DAYS = 28
FRAUD_STATUSES = ("ACCEPTED", "PENDING", "REJECTED")

# Properties a merchant may set on create/update; anything else in the body is ignored.
WRITABLE = (
    "purchase_country", "purchase_currency", "locale", "billing_address", "shipping_address",
    "order_amount", "order_tax_amount", "order_lines", "customer", "merchant_urls",
    "merchant_reference1", "merchant_reference2", "options", "attachment",
    "external_payment_methods", "external_checkouts", "shipping_countries", "billing_countries",
    "shipping_options", "merchant_data", "gui", "merchant_requested", "recurring", "tags",
    "discount_lines",
)


# --- orders ----------------------------------------------------------------------------------

def _klarna_reference() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))


def _prune(value: Any) -> Any:
    """Klarna leaves absent properties out of its bodies rather than sending null."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    return value


@dataclass
class Order:
    order_id: str
    data: dict                      # the merchant-writable properties, as last set
    started_at: datetime
    last_modified_at: datetime
    touched_at: datetime            # last merchant update or shopper interaction: expiry clock
    status: str = "checkout_incomplete"
    completed_at: datetime | None = None
    fraud_status: str | None = None
    klarna_reference: str | None = None
    acknowledged: int = 0
    acknowledge_keys: list = field(default_factory=list)
    shopper_entered_address: bool = False   # then address updates are ignored (docs/klarna.md §4.4)
    displayed_at_purchase: dict | None = None  # what the iframe showed as Buy was pressed
    account: str | None = None              # the API username that created it (accounts.py)
    ksa: dict | None = None  # the Shipping Assistant's offer and choice (assistant.py), or None

    @property
    def complete(self) -> bool:
        return self.status == "checkout_complete"

    def expires_at(self, ttl: timedelta) -> datetime:
        return self.touched_at + ttl

    def checkout_view(self) -> dict:
        """The Checkout API body, without `html_snippet` (rendered by the view)."""
        body = {"order_id": self.order_id, "status": self.status, **copy.deepcopy(self.data),
                "started_at": iso(self.started_at), "last_modified_at": iso(self.last_modified_at),
                "completed_at": iso(self.completed_at)}
        return _prune(body)

    def merchant_view(self, now: datetime, authorization_days: int = AUTHORIZATION_DAYS) -> dict:
        """The Order Management body (a subset of Klarna's MerchantOrder)."""
        d = self.data
        assert self.completed_at is not None  # Order Management knows completed orders only
        expires = self.completed_at + timedelta(days=authorization_days)
        status = "CANCELLED" if self.fraud_status == "REJECTED" else (
            "EXPIRED" if now >= expires else "AUTHORIZED")
        body = {
            "order_id": self.order_id, "status": status, "fraud_status": self.fraud_status,
            "order_amount": d.get("order_amount"), "original_order_amount": d.get("order_amount"),
            "captured_amount": 0, "refunded_amount": 0,
            "remaining_authorized_amount": d.get("order_amount") if status == "AUTHORIZED" else 0,
            "purchase_currency": d.get("purchase_currency"), "purchase_country": d.get("purchase_country"),
            "locale": d.get("locale"), "order_lines": copy.deepcopy(d.get("order_lines")),
            "merchant_reference1": d.get("merchant_reference1"),
            "merchant_reference2": d.get("merchant_reference2"),
            "merchant_data": d.get("merchant_data"), "klarna_reference": self.klarna_reference,
            "customer": copy.deepcopy(d.get("customer")),
            "billing_address": copy.deepcopy(d.get("billing_address")),
            "shipping_address": copy.deepcopy(d.get("shipping_address")),
            "selected_shipping_option": copy.deepcopy(d.get("selected_shipping_option")),
            "created_at": iso(self.completed_at), "expires_at": iso(expires),
        }
        return _prune(body)


class OrderStore:
    def __init__(self, clock: Clock, *, ttl: timedelta = ORDER_TTL, allow_http_callbacks: bool = False,
                 assistant: Any = None):
        self.clock = clock
        self.assistant = assistant  # assistant.ShippingAssistant: plays KSA for the orders it serves
        self.ttl = ttl
        self.allow_http_callbacks = allow_http_callbacks
        self.lock = threading.RLock()
        self._orders: dict[str, Order] = {}
        self._create_keys: dict[str, str] = {}

    # Checkout API

    def create(self, body: Any, idempotency_key: str | None = None, account: str | None = None,
               region: str | None = None) -> tuple[Order, bool]:
        """(order, created) at `account`, whose region is `region` (None: any currency): a
        repeated `Klarna-Idempotency-Key` of the same account returns the first order (an
        assumption: Klarna documents the header for Order Management)."""
        if not isinstance(body, Mapping):
            raise bad_value(["body"])
        data = {k: copy.deepcopy(body[k]) for k in WRITABLE if k in body}
        errors = order_errors(data, allow_http_callbacks=self.allow_http_callbacks)
        errors += _region_errors(data, region, errors)
        scoped = f"{account}\n{idempotency_key}" if idempotency_key else None
        with self.lock:
            if scoped and scoped in self._create_keys:
                known = self._orders.get(self._create_keys[scoped])
                if known is not None and self._alive(known):
                    return copy.deepcopy(known), False
            if errors:
                raise bad_value(errors)
            self._prune_expired()
            now = self.clock.now()
            order = Order(str(uuid.uuid4()), data, now, now, now, account=account)
            self.shipping_assistant(order)
            self._orders[order.order_id] = order
            if scoped:
                self._create_keys[scoped] = order.order_id
            return copy.deepcopy(order), True

    def read(self, order_id: str, account: str | None = None) -> Order:
        """`account`: the API caller's (None: a control or the shopper, who see every order)."""
        with self.lock:
            return copy.deepcopy(self._checkout_order(order_id, account))

    def update(self, order_id: str, body: Any, account: str | None = None,
               region: str | None = None) -> Order:
        """Properties not in `body` stay the same; only an incomplete order can change.
        Checked in Klarna's order of news: 404, then 403, then 400."""
        with self.lock:
            order = self._checkout_order(order_id, account)
            if order.complete:
                raise ApiError(403, "READ_ONLY_ORDER", "Resource is read-only")
            if not isinstance(body, Mapping):
                raise bad_value(["body"])
            changes = {k: copy.deepcopy(body[k]) for k in WRITABLE if k in body}
            if order.shopper_entered_address:
                changes.pop("billing_address", None)
                changes.pop("shipping_address", None)
            merged = {**order.data, **changes}
            writable = {k: v for k, v in merged.items() if k in WRITABLE}
            errors = order_errors(writable, allow_http_callbacks=self.allow_http_callbacks)
            errors += _region_errors(writable, region, errors)
            if errors:
                raise bad_value(errors)
            now = self.clock.now()
            order.data, order.last_modified_at, order.touched_at = merged, now, now
            self.shipping_assistant(order)
            return copy.deepcopy(order)

    def shipping_assistant(self, order: Order, wanted: str | None = None) -> None:
        """Klarna's Shipping Assistant adds its shipping line after every change (lock held)."""
        if self.assistant is not None:
            self.assistant.refresh(order, wanted)

    # Order Management API

    def merchant_order(self, order_id: str, account: str | None = None) -> Order:
        with self.lock:
            order = self._orders.get(order_id)
            if order is None or not order.complete or not _visible(order, account):
                raise no_such_order(order_id)
            return copy.deepcopy(order)

    def acknowledge(self, order_id: str, idempotency_key: str | None,
                    account: str | None = None) -> Order:
        with self.lock:
            order = self._orders.get(order_id)
            if order is None or not order.complete or not _visible(order, account):
                raise no_such_order(order_id, acknowledge=True)
            order.acknowledged += 1
            order.acknowledge_keys.append(idempotency_key)
            return copy.deepcopy(order)

    # the shopper's side (control endpoints now, shopper.py later)

    def mutate(self, order_id: str, change: Callable[[Order], Any], *, checkout: bool = True) -> Order:
        """Apply `change(order)` under the lock. `checkout=True`: the order must still be
        readable in the Checkout API (not expired). Returns a copy of the changed order."""
        with self.lock:
            order = self._checkout_order(order_id) if checkout else self._orders.get(order_id)
            if order is None:
                raise not_found(order_id)
            change(order)
            return copy.deepcopy(order)

    def touch(self, order_id: str) -> Order:
        """A shopper interaction: restarts the 48 h expiry."""
        def interact(order: Order):
            order.touched_at = self.clock.now()
        return self.mutate(order_id, interact)

    def complete(self, order_id: str, fraud_status: str = "ACCEPTED",
                 details: Mapping | None = None, displayed: Mapping | None = None) -> Order:
        if fraud_status not in FRAUD_STATUSES:
            raise bad_value(["fraud_status"])

        def purchase(order: Order):
            if order.complete:
                raise ApiError(409, "CONFLICT", f"Order {order_id} is already complete")
            data = order.data
            for key in ("billing_address", "shipping_address", "customer"):
                if details and isinstance(details.get(key), Mapping):
                    data[key] = copy.deepcopy(dict(details[key]))
            data.setdefault("billing_address", {
                "given_name": "Testperson", "family_name": "Approved",
                "email": "customer@example.com", "country": data["purchase_country"].upper()})
            data.setdefault("shipping_address", copy.deepcopy(data["billing_address"]))
            data.setdefault("customer", {"type": "person"})
            options = data.get("shipping_options") or []
            if options and "selected_shipping_option" not in data:
                data["selected_shipping_option"] = copy.deepcopy(
                    next((o for o in options if o.get("preselected")), options[0]))
            now = self.clock.now()
            order.status, order.completed_at = "checkout_complete", now
            order.last_modified_at = order.touched_at = now
            order.fraud_status, order.klarna_reference = fraud_status, _klarna_reference()
            order.shopper_entered_address = True
            order.displayed_at_purchase = dict(displayed) if displayed is not None else None
        return self.mutate(order_id, purchase)

    def set_fraud_status(self, order_id: str, fraud_status: str) -> Order:
        if fraud_status not in FRAUD_STATUSES:
            raise bad_value(["fraud_status"])

        def decide(order: Order):
            if not order.complete:
                raise ApiError(409, "CONFLICT", f"Order {order_id} is not complete")
            order.fraud_status = fraud_status
        return self.mutate(order_id, decide, checkout=False)

    # inspection

    def inspect(self, order_id: str) -> tuple[Order, bool]:
        """(order, alive) regardless of expiry; 404 only for an id never seen."""
        with self.lock:
            order = self._orders.get(order_id)
            if order is None:
                raise not_found(order_id)
            return copy.deepcopy(order), self._alive(order)

    def all(self) -> list[tuple[Order, bool]]:
        with self.lock:
            return [(copy.deepcopy(o), self._alive(o)) for o in self._orders.values()]

    def reset(self) -> None:
        with self.lock:
            self._orders.clear()
            self._create_keys.clear()

    # internals (call with the lock held)

    def _alive(self, order: Order) -> bool:
        return self.clock.now() < order.expires_at(self.ttl)

    def _checkout_order(self, order_id: str, account: str | None = None) -> Order:
        order = self._orders.get(order_id)
        if order is None or not self._alive(order) or not _visible(order, account):
            raise not_found(order_id)
        return order

    def _prune_expired(self) -> None:
        """Forget expired orders nobody completed; completed ones stay for Order Management."""
        dead = [i for i, o in self._orders.items() if not o.complete and not self._alive(o)]
        for order_id in dead:
            del self._orders[order_id]
        if dead:
            gone = set(dead)
            self._create_keys = {k: v for k, v in self._create_keys.items() if v not in gone}



def _visible(order: Order, account: str | None) -> bool:
    """An API caller sees only its own account's orders; a control (None) sees them all."""
    return account is None or order.account == account


def _region_errors(data: Mapping, region: str | None, errors: list[str]) -> list[str]:
    """Klarna refuses a purchase currency the account's region does not sell."""
    currency = data.get("purchase_currency")
    if "purchase_currency" in errors or not isinstance(currency, str) or regions.sells(region, currency):
        return []
    return ["purchase_currency"]
