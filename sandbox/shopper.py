"""The shopper inside the sandbox's checkout: enters an address, picks a shipping option, buys;
and Klarna's fraud review deciding a pending order. (docs/klarna.md §2, §3, §11.)

Each action sends at most one callback to the order's `merchant_urls` (`{checkout.order.id}`
replaced), with Klarna's body, waits as Klarna does, judges the reply as Klarna does
(replies.py) and changes the order only when the reply lets it:

- address: `country_change` when the billing country differs from the order's (its billing
  address, else its purchase country), else `address_update`. The addresses are kept only when
  the reply is applied. A `country_change` reply may change currency and locale, never
  `purchase_country` (not in Klarna's reply schema).
- shipping option: `shipping_option_update` with the chosen option as `selected_shipping_option`
  and the cart as it was; without that URL Klarna puts the option's cost in the cart itself.
- purchase: `validation` with the full order; approved → checkout_complete → pushes
  (deliveries.py); denied or failed → the order stays incomplete.
- fraud decision (a PENDING order): fraud_status changes, notifications start.

While the storefront has suspended the checkout (window._klarnaCheckout suspend) the shopper
cannot act: 409. No lock is held while a callback is in flight; Flask-free.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.deliveries import CallbackLog, Deliveries, callback_url, post
from sandbox.orders import COUNTRY, FRAUD_STATUSES, ApiError, Order, OrderStore, bad_value
from sandbox.replies import APPLIED, APPROVED, Verdict, judge_shipping_service, judge_validation

SHIPPING_SERVICE_FIELDS = (
    "order_amount", "order_tax_amount", "order_lines", "billing_address", "shipping_address",
    "selected_shipping_option", "purchase_currency", "locale", "merchant_reference1",
    "merchant_reference2", "merchant_data", "customer", "tags",
)
REPLY_REQUIRED = ("order_lines", "order_amount", "order_tax_amount", "purchase_currency")
REPLY_OPTIONAL = ("locale", "shipping_options", "merchant_data", "attachment",
                  "external_payment_methods", "tags")
DECISIONS = {"ACCEPTED": ("FRAUD_RISK_ACCEPTED", "ACCEPTED"),
             "REJECTED": ("FRAUD_RISK_REJECTED", "REJECTED"),
             "STOPPED": ("FRAUD_RISK_STOPPED", "REJECTED")}
AUTO_RESUME_SECONDS = 10.0  # the JavaScript API's safeguard (docs/klarna.md §9)


@dataclass(frozen=True)
class Settings:
    callback_timeout: float = 3.0              # shipping-service callbacks (undocumented: 3 s)
    validation_timeout: float = 3.0            # then silence approves
    validation_required_timeout: float = 10.0  # with options.require_validate_callback_success
    default_fraud_status: str = "ACCEPTED"


# --- pure helpers -----------------------------------------------------------------------------

def selected_option(options: Any, chosen_id: str | None) -> dict | None:
    """The shopper's option if still offered, else the preselected one, else the first."""
    options = [o for o in options or [] if isinstance(o, Mapping)]
    return copy.deepcopy(next((o for o in options if o.get("id") == chosen_id), None)
                         or next((o for o in options if o.get("preselected")), None)
                         or (options[0] if options else None))


def current_option(data: Mapping, ksa: Mapping | None = None) -> dict | None:
    """The option the shopper has: the Shipping Assistant's choice for a KSA order (`ksa`,
    the order's), else the merchant's option selected as Klarna selects."""
    if ksa is not None:
        return copy.deepcopy(ksa.get("selected"))
    return selected_option(data.get("shipping_options"),
                           (data.get("selected_shipping_option") or {}).get("id"))


def separate_shipping_allowed(data: Mapping) -> bool:
    """Klarna makes the shipping address the billing address unless the order has
    options.allow_separate_shipping_address (docs/klarna.md §4.5). The sandbox takes the
    option's absence as allowed (how kco-sync's orders ran before they sent it); only an
    explicit false is held to Klarna's rule."""
    return (data.get("options") or {}).get("allow_separate_shipping_address") is not False


def customer_types(data: Mapping) -> list[str]:
    """Who may buy: options.allowed_customer_types, by default a private person only."""
    allowed = (data.get("options") or {}).get("allowed_customer_types")
    if not isinstance(allowed, list) or not allowed:
        return ["person"]
    return [t for t in allowed if t in ("person", "organization")] or ["person"]


def shipping_service_body(data: Mapping, **changes) -> dict:
    """Klarna's shipping_service_request: the cart and addresses, no order id, no purchase
    country (docs/klarna.md §2.3)."""
    merged = {**data, **{k: v for k, v in changes.items() if v is not None}}
    return {k: copy.deepcopy(merged[k]) for k in SHIPPING_SERVICE_FIELDS if merged.get(k) is not None}


def sample_person(country: str) -> dict:
    return {"given_name": f"Testperson-{country.lower()}", "family_name": "Approved",
            "email": "customer@example.com", "street_address": "Teststreet 1",
            "postal_code": "12345", "city": "Testville", "phone": "+46765260000",
            "country": country.upper()}


def _address(value: Any, field: str, allowed: list[str]) -> dict:
    if not isinstance(value, Mapping) or not COUNTRY.fullmatch(str(value.get("country", ""))):
        raise bad_value([f"{field}.country"])
    address = {**copy.deepcopy(dict(value)), "country": value["country"].upper()}
    if address["country"] not in allowed:
        raise ApiError(400, "BAD_VALUE", [f"Bad value: {field}.country ({address['country']} is "
                                          f"not one of {', '.join(allowed)})"])
    return address


def _countries(values: Any, fallback: list[str]) -> list[str]:
    return [c.upper() for c in values] if isinstance(values, list) and values else fallback


def shipping_line(option: Mapping) -> dict:
    """The line Klarna adds itself for an option when there is no shipping_option_update URL."""
    return {"type": "shipping_fee", "reference": option["id"], "name": option["name"],
            "quantity": 1, "unit_price": option["price"], "tax_rate": option["tax_rate"],
            "total_amount": option["price"], "total_discount_amount": 0,
            "total_tax_amount": option["tax_amount"]}


def purchaser(data: Mapping, details: Mapping) -> dict:
    """Who buys: the purchase's addresses, else those entered before, else a test person."""
    shipping_countries = _countries(data.get("shipping_countries"), [data["purchase_country"].upper()])
    billing = data.get("billing_address") or sample_person(data["purchase_country"])
    if details.get("billing_address") is not None:
        billing = _address(details["billing_address"], "billing_address",
                           _countries(data.get("billing_countries"), shipping_countries))
    shipping = data.get("shipping_address") or billing
    if details.get("shipping_address") is not None:
        shipping = _address(details["shipping_address"], "shipping_address", shipping_countries)
    if not separate_shipping_allowed(data):
        shipping = billing
    allowed = customer_types(data)
    customer = details.get("customer") or data.get("customer") or {"type": allowed[0]}
    if not isinstance(customer, Mapping):
        raise bad_value(["customer"])
    if customer.get("type", "person") not in allowed:
        raise ApiError(400, "BAD_VALUE", [f"Bad value: customer.type ({customer.get('type')} is not one "
                                          f"of the order's allowed_customer_types: {', '.join(allowed)})"])
    return {"billing_address": copy.deepcopy(dict(billing)),
            "shipping_address": copy.deepcopy(dict(shipping)), "customer": dict(customer)}


# --- the shopper ------------------------------------------------------------------------------

class Shopper:
    def __init__(self, orders: OrderStore, log: CallbackLog, deliveries: Deliveries,
                 settings: Settings = Settings()):
        self.orders, self.log, self.deliveries, self.settings = orders, log, deliveries, settings
        self._suspended: dict[str, float] = {}   # order id → time.monotonic() it resumes at

    # actions

    def change_address(self, order_id: str, billing: Any, shipping: Any = None) -> dict:
        order = self._open(order_id)
        data = order.data
        purchase_country = data["purchase_country"].upper()
        shipping_countries = _countries(data.get("shipping_countries"), [purchase_country])
        billing = _address(billing, "billing_address",
                           _countries(data.get("billing_countries"), shipping_countries))
        if not separate_shipping_allowed(data):
            shipping = None  # Klarna: the shipping address is the billing address
        shipping = _address(shipping if shipping is not None else billing, "shipping_address",
                            shipping_countries)
        old_country = ((data.get("billing_address") or {}).get("country") or purchase_country).upper()
        urls = data.get("merchant_urls") or {}
        callback = "country_change" if billing["country"] != old_country else "address_update"
        if callback not in urls and "address_update" in urls:
            callback = "address_update"   # one callback per change (docs/klarna.md §2.3)
        body = shipping_service_body(data, billing_address=billing, shipping_address=shipping,
                                     selected_shipping_option=current_option(data, order.ksa))
        return self._shipping_service("address", order, callback, body,
                                      billing=billing, shipping=shipping)

    def select_shipping_option(self, order_id: str, option_id: Any) -> dict:
        order = self._open(order_id)
        if order.ksa is not None:
            return self._assistant_selects(order, option_id)
        option = next((o for o in order.data.get("shipping_options") or []
                       if isinstance(o, Mapping) and o.get("id") == option_id), None)
        if option is None:
            raise bad_value(["shipping_option.id"])
        if "shipping_option_update" not in (order.data.get("merchant_urls") or {}):
            return self._klarna_adds_shipping(order, option)
        body = shipping_service_body(order.data, selected_shipping_option=option)
        return self._shipping_service("shipping_option", order, "shipping_option_update", body,
                                      chosen=option["id"])

    def purchase(self, order_id: str, details: Mapping, displayed: Mapping | None = None) -> dict:
        """`displayed`: what the iframe showed as Buy was pressed, recorded with the order."""
        order = self._open(order_id)
        fraud_status = details.get("fraud_status", self.settings.default_fraud_status)
        if fraud_status not in FRAUD_STATUSES:
            raise bad_value(["fraud_status"])
        people = purchaser(order.data, details)
        option = current_option(order.data, order.ksa)
        if order.ksa is not None and option is not None:
            option = self.orders.assistant.reserve(option)  # the TMS reserves the shipment
        body = {**order.checkout_view(), **copy.deepcopy(people)}
        if option:
            body["selected_shipping_option"] = option
        entry, verdict = self._validate(order, body)
        if not verdict.goes_on:
            self.orders.touch(order_id)
            return self._result("purchase", entry, verdict)
        self.orders.mutate(order_id, lambda o: self._select(o, option))
        completed = self.orders.complete(order_id, fraud_status, people, displayed=displayed)
        self.deliveries.start_push(order_id)
        result = self._result("purchase", entry, verdict)
        confirmation = (completed.data.get("merchant_urls") or {}).get("confirmation")
        result["redirect_to"] = callback_url(confirmation, order_id) if confirmation else None
        return result

    def fraud_decision(self, order_id: str, decision: Any) -> dict:
        key = str(decision or "").upper().removeprefix("FRAUD_RISK_")
        if key not in DECISIONS:
            raise bad_value(["decision"])
        event_type, fraud_status = DECISIONS[key]

        def decide(order: Order):
            if not order.complete:
                raise ApiError(409, "CONFLICT", f"Order {order_id} is not complete")
            if order.fraud_status != "PENDING":
                raise ApiError(409, "CONFLICT", f"Order {order_id} is {order.fraud_status}, not "
                                                "PENDING: Klarna notifies only PENDING → decided")
            order.fraud_status = fraud_status
        self.orders.mutate(order_id, decide, checkout=False)
        campaign = self.deliveries.start_notification(order_id, event_type)
        return {"action": "fraud", "event_type": event_type, "fraud_status": fraud_status,
                "notification": campaign.summary(self.deliveries.scheduler)}

    def suspend(self, order_id: str, auto_resume: bool = True) -> dict:
        self.orders.read(order_id)
        until = time.monotonic() + AUTO_RESUME_SECONDS if auto_resume else float("inf")
        self._suspended[order_id] = until
        return {"suspended": True, "auto_resume_seconds": AUTO_RESUME_SECONDS if auto_resume else None}

    def resume(self, order_id: str) -> dict:
        self.orders.read(order_id)
        self._suspended.pop(order_id, None)
        return {"suspended": False}

    def is_suspended(self, order_id: str) -> bool:
        return self._suspended.get(order_id, 0.0) > time.monotonic()

    def reset(self) -> None:
        self._suspended.clear()

    # internals

    def _open(self, order_id: str) -> Order:
        order = self.orders.read(order_id)  # 404 when unknown or expired
        if order.complete:
            raise ApiError(409, "CONFLICT", f"Order {order_id} is complete; the shopper sees the confirmation")
        if self.is_suspended(order_id):
            raise ApiError(409, "SUSPENDED", f"The checkout of order {order_id} is suspended; resume it first")
        return order

    def _validate(self, order: Order, body: dict) -> tuple[dict, Verdict]:
        """POST validation and judge the answer; approved when the order has no such URL."""
        require = bool((order.data.get("options") or {}).get("require_validate_callback_success"))
        template = (order.data.get("merchant_urls") or {}).get("validation")
        if not template:
            return self.log.record(order.order_id, "validation", None, None, None, "no_url"), Verdict(APPROVED)
        url = callback_url(template, order.order_id)
        timeout = (self.settings.validation_required_timeout if require
                   else self.settings.validation_timeout)
        reply = post(url, body, timeout)
        verdict = judge_validation(reply, require)
        entry = self.log.record(order.order_id, "validation", url, body, reply, verdict.outcome,
                                problems=verdict.problems, shopper_sees=verdict.shopper_sees,
                                require_validate_callback_success=require, timeout_seconds=timeout)
        return entry, verdict

    def _shipping_service(self, action: str, order: Order, callback: str, body: dict, *,
                          billing=None, shipping=None, chosen=None) -> dict:
        order_id = order.order_id
        template = (order.data.get("merchant_urls") or {}).get(callback)
        if not template:  # no URL for it: the shopper's change simply holds
            def hold(o: Order) -> None:
                self._set_addresses(o, billing, shipping)
                self.orders.shipping_assistant(o)
            self.orders.mutate(order_id, hold)
            entry = self.log.record(order_id, callback, None, body, None, "no_url")
            return self._result(action, entry, Verdict(APPLIED))
        url = callback_url(template, order_id)
        reply = post(url, body, self.settings.callback_timeout)
        verdict = judge_shipping_service(reply)
        if verdict.outcome == APPLIED:
            chosen = chosen or (body.get("selected_shipping_option") or {}).get("id")
            self.orders.mutate(order_id, lambda o: self._apply(o, reply.body, billing, shipping, chosen))
        else:
            self.orders.touch(order_id)
        entry = self.log.record(order_id, callback, url, body, reply, verdict.outcome,
                                problems=verdict.problems, shopper_sees=verdict.shopper_sees,
                                timeout_seconds=self.settings.callback_timeout)
        return self._result(action, entry, verdict)

    def _assistant_selects(self, order: Order, option_id: Any) -> dict:
        """A KSA order: the shopper picks one of the Shipping Assistant's options; Klarna puts
        its line in the cart itself and calls no shipping_option_update (docs/klarna.md §4.6)."""
        offered = (order.ksa or {}).get("offered") or []
        if not any(isinstance(o, Mapping) and o.get("id") == option_id for o in offered):
            raise bad_value(["shipping_option.id"])

        def choose(o: Order) -> None:
            self.orders.shipping_assistant(o, wanted=option_id)
            self._touched(o)
        self.orders.mutate(order.order_id, choose)
        entry = self.log.record(order.order_id, "shipping_assistant", None, None, None,
                                "klarna_added_shipping", selected=option_id,
                                source=(order.ksa or {}).get("source"))
        return self._result("shipping_option", entry, Verdict(APPLIED))

    def _klarna_adds_shipping(self, order: Order, option: Mapping) -> dict:
        def add(o: Order):
            lines = [l for l in o.data["order_lines"] if l.get("type") != "shipping_fee"]
            lines.append(shipping_line(option))
            o.data["order_lines"] = lines
            o.data["order_amount"] = sum(l["total_amount"] for l in lines)
            o.data["order_tax_amount"] = sum(l["total_tax_amount"] for l in lines)
            self._select(o, option)
            self._touched(o)
        self.orders.mutate(order.order_id, add)
        entry = self.log.record(order.order_id, "shipping_option_update", None, None, None,
                                "klarna_added_shipping", selected=option["id"])
        return self._result("shipping_option", entry, Verdict(APPLIED))

    def _apply(self, order: Order, reply: Mapping, billing, shipping, chosen) -> None:
        if order.complete:
            raise ApiError(409, "CONFLICT", f"Order {order.order_id} completed meanwhile")
        for key in REPLY_REQUIRED:
            order.data[key] = copy.deepcopy(reply[key])
        for key in REPLY_OPTIONAL:
            if reply.get(key) is not None:
                order.data[key] = copy.deepcopy(reply[key])
        self._set_addresses(order, billing, shipping)
        self._select(order, selected_option(order.data.get("shipping_options"), chosen))
        self.orders.shipping_assistant(order)  # a KSA order: Klarna's line for the new address

    def _set_addresses(self, order: Order, billing, shipping) -> None:
        if billing is not None:
            order.data["billing_address"] = copy.deepcopy(billing)
            order.shopper_entered_address = True
        if shipping is not None:
            order.data["shipping_address"] = copy.deepcopy(shipping)
        self._touched(order)

    def _select(self, order: Order, option: Mapping | None) -> None:
        if option:
            order.data["selected_shipping_option"] = copy.deepcopy(dict(option))
        else:
            order.data.pop("selected_shipping_option", None)

    def _touched(self, order: Order) -> None:
        now = self.orders.clock.now()
        order.last_modified_at = order.touched_at = now

    @staticmethod
    def _result(action: str, entry: dict | None, verdict: Verdict) -> dict:
        return {"action": action, "callback": entry["callback"] if entry else None,
                "outcome": verdict.outcome, "shopper_sees": verdict.shopper_sees,
                "problems": verdict.problems, "location": verdict.location, "log_entry": entry}
