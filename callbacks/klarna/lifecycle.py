"""One Klarna order per session, kept in step with the cart (Klarna's cart-update guide,
docs/klarna.md §6; docs/design.md §7.1).

Klarna's guide: keep the order id of the shopper's session; on checkout load read the order and
update it if the cart changed; create a new one on 404, any other 4xx, 5xx or network error. A
checkout load holds the session's lease (Store.lease) across its Klarna calls, so two tabs
loading at once end with one order, and no database transaction stays open during a network
call. Push and notification are verified by reading the order from Order Management; push is
recorded once per Klarna order id by a primary key, not by a check-then-insert.

No Flask here: views and the CLI call these functions with the app's shop, store and client.
"""
from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from callbacks.klarna.client import KlarnaClient, KlarnaError
from callbacks.klarna.order import Urls, differs, order_payload, sent_version
from callbacks.orders.paid_check import record_mismatch
from callbacks.rules import cart, checkout
from callbacks.rules.checkout import Decision
from callbacks.rules.shop import Shop
from callbacks.rules.state import EventType, SessionState
from callbacks.store.activity import for_session, with_session
from callbacks.store.database import LeaseBusy, SessionTx, Store

log = logging.getLogger(__name__)

INCOMPLETE = "checkout_incomplete"
COMPLETE = "checkout_complete"
FRAUD_EVENTS = {"FRAUD_RISK_ACCEPTED": "ACCEPTED", "FRAUD_RISK_REJECTED": "REJECTED",
                "FRAUD_RISK_STOPPED": "REJECTED"}


class NoSession(Exception):
    pass


class EmptyCart(Exception):
    pass


class KlarnaUnavailable(Exception):
    """Klarna refused or could not be reached even for a new order."""

    def __init__(self, error: KlarnaError):
        super().__init__(str(error))
        self.error = error


class NotSynced(Exception):
    """A storefront change is saved, but the open Klarna order could not be brought in step:
    `cause` is the KlarnaUnavailable or LeaseBusy that stopped it."""

    def __init__(self, cause: KlarnaUnavailable | LeaseBusy):
        super().__init__(str(cause))
        self.cause = cause


class WrongSession(Exception):
    """A push or notification whose Klarna order belongs to another session."""


@dataclass
class Loaded:
    state: SessionState
    order: dict  # Klarna's order, with html_snippet
    outcome: EventType | None  # the event recorded, or None when nothing changed


def reason(error: KlarnaError) -> str:
    if error.is_network_error:
        return f"network: {error.error_code}"
    return f"{error.status} {error.error_code}"


class Lifecycle:
    def __init__(self, shop: Shop, store: Store, make_client: Callable[[], KlarnaClient], urls: Urls):
        self.shop, self.store, self.urls = shop, store, urls
        self._make_client = make_client
        self._local = threading.local()

    @property
    def client(self) -> KlarnaClient:
        """One client per thread: requests' Session is not documented as thread-safe."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
        return client

    # -- checkout load, cart and market changes -----------------------------------------------
    def load_checkout(self, sid: str, merchant_reference1: object = cart.KEEP) -> Loaded:
        """The guide's load flow: read → (update if it differs) → else create. The storefront
        may set the shop's order number (`merchant_reference1`) on the way."""
        with for_session(sid), self.store.lease(sid):
            if merchant_reference1 is not cart.KEEP:
                self._set_reference(sid, merchant_reference1)
            state = self._state(sid)
            payload = order_payload(self.shop, state, self.urls)
            order_id = state["klarna"]["order_id"]
            if not order_id:
                return self._create(sid, payload, None, None)
            try:
                order = self.client.read_order(order_id)
            except KlarnaError as exc:
                return self._create(sid, payload, order_id, reason(exc))
            if (order.get("status") or "").lower() != INCOMPLETE:
                return self._create(sid, payload, order_id, f"order is {order.get('status')}")
            if not differs(order, payload):
                return Loaded(self._record(sid, order, None, {}, sent_version(payload)), order, None)
            return self._update_or_recreate(sid, order_id, payload)

    def _set_reference(self, sid: str, reference: str | None) -> None:
        def decide(tx: SessionTx) -> Decision:
            if tx.state is None:
                raise NoSession(sid)
            return cart.set_merchant_reference(tx.state, reference)
        self.store.apply(sid, decide)

    def sync(self, sid: str) -> Loaded | None:
        """After a cart or market change: update an open Klarna order (a new one when Klarna
        refuses); None when the session has no open order yet (nothing at Klarna to update).
        Raises NotSynced when Klarna cannot be brought in step: the change itself stays."""
        try:
            return self._sync(sid)
        except (KlarnaUnavailable, LeaseBusy) as exc:
            raise NotSynced(exc) from exc

    def _sync(self, sid: str) -> Loaded | None:
        with for_session(sid), self.store.lease(sid):
            state = self.store.get_state(sid)
            if state is None:
                raise NoSession(sid)
            order_id = state["klarna"]["order_id"]
            if not order_id or state["klarna"].get("status") != INCOMPLETE:
                return None
            if not state["cart"]["items"]:
                return None  # Klarna needs lines; the next checkout load will refuse an empty cart
            return self._update_or_recreate(sid, order_id, order_payload(self.shop, state, self.urls))

    def change_market(self, sid: str, country: str, locale: str | None) -> SessionState:
        """PUT …/market: the purchase country itself changes (a callback cannot do that).
        Changes the session only; `sync` then brings the open Klarna order in step."""
        def decide(tx: SessionTx) -> Decision:
            if tx.state is None:
                raise NoSession(sid)
            if checkout.is_complete(tx.state):
                raise checkout.OrderComplete(sid)
            market = self.shop.market(country)
            base = {**copy.deepcopy(tx.state), "purchase_country": market.country}
            new = checkout.reprice(self.shop, checkout.switch_market(
                self.shop, base, country, locale or tx.state["market"]["locale"]))
            return Decision(new, EventType.MARKET_CHANGED if checkout.changed(tx.state, new) else None,
                            {"market": {"old": tx.state["market"], "new": new["market"]},
                             "purchase_country": {"old": tx.state["purchase_country"], "new": market.country}})
        return self.store.apply(sid, decide)[0]

    def _state(self, sid: str) -> dict:
        state = self.store.get_state(sid)
        if state is None:
            raise NoSession(sid)
        if not state["cart"]["items"]:
            raise EmptyCart(sid)
        return state

    def _update_or_recreate(self, sid: str, order_id: str, payload: dict) -> Loaded:
        try:
            order = self.client.update_order(order_id, payload,
                                             idempotency_key=f"{sid}:{order_id}:{payload['merchant_data']}")
        except KlarnaError as exc:
            return self._create(sid, payload, order_id, reason(exc))
        return Loaded(self._record(sid, order, EventType.ORDER_UPDATED, {"order_id": order_id},
                                   sent_version(payload)), order, EventType.ORDER_UPDATED)

    def _create(self, sid: str, payload: dict, old_order_id: str | None, why: str | None) -> Loaded:
        try:
            order = self.client.create_order(payload)
        except KlarnaError as exc:
            raise KlarnaUnavailable(exc) from exc
        if old_order_id:
            outcome = EventType.ORDER_RECREATED
            data = {"order_id": order["order_id"], "old_order_id": old_order_id, "reason": why}
        else:
            outcome, data = EventType.ORDER_CREATED, {"order_id": order["order_id"]}
        log.info("session %s: %s %s", sid, outcome, data)
        return Loaded(self._record(sid, order, outcome, data, sent_version(payload)), order, outcome)

    def _record(self, sid: str, order: dict, outcome: EventType | None, data: dict,
                version: int | None = None) -> SessionState:
        """`version` (needed with an outcome) is the state version whose cart Klarna received,
        from the payload's merchant_data (order.sent_version). A cart write may have
        landed while Klarna was answering (it does not wait for the lease), so the session's
        version now may be newer: naming that one would claim Klarna has a cart it never got,
        and the storefront would skip the sync it still needs."""
        def decide(tx: SessionTx) -> Decision | None:
            state = copy.deepcopy(tx.state)
            status = (order.get("status") or INCOMPLETE).lower()
            known = state["klarna"]
            if known.get("order_id") == order["order_id"] and known.get("status") == COMPLETE:
                status = COMPLETE  # a push recorded completion meanwhile: never move it back
            state["klarna"] = {**known, "order_id": order["order_id"], "status": status}
            if outcome:
                if version is None:
                    raise ValueError("an order_created/updated/recreated names the version sent")
                state["klarna"]["synced_version"] = version
                return Decision(state, outcome, {**data, "order_amount": order.get("order_amount"),
                                                 "purchase_currency": order.get("purchase_currency")})
            if checkout.changed(tx.state, state):
                return Decision(state, EventType.ORDER_UPDATED,
                                {"order_id": order["order_id"], "status": state["klarna"]["status"]})
            return None
        return self.store.apply(sid, decide)[0]

    # -- push and notification ----------------------------------------------------------------
    @with_session
    def claim(self, sid: str, order_id: str) -> None:
        """Before a push is answered: is `order_id` this session's? Raises WrongSession when it
        is not, KlarnaError when Order Management cannot say. Only the database is asked when
        the session already has the order (every push of a checkout we created), so the push
        is still answered at once; an order we do not know is read from Order Management."""
        owners = self.store.order_owners(order_id)
        if sid in owners and len(owners) == 1:
            return
        try:
            om = self.client.read_merchant_order(order_id)
        except KlarnaError as exc:
            if exc.status in (400, 404):  # 401/403: our credentials; retried like a 5xx
                raise WrongSession(f"order {order_id} is not one Klarna knows "
                                   f"({reason(exc)})") from None
            raise
        self._check_owner(sid, om, owners)

    @with_session
    def push(self, sid: str, order_id: str) -> str:
        """Read the order from Order Management, record it once, acknowledge it. Returns what
        happened, for the log; every step is safe to repeat."""
        try:
            om = self.client.read_merchant_order(order_id)
        except KlarnaError as exc:
            log.warning("push %s: reading the order failed (%s); Klarna will push again", order_id, exc)
            return f"read failed: {reason(exc)}"
        self._check_owner(sid, om, self.store.order_owners(order_id))

        def decide(tx: SessionTx) -> Decision | None:
            if not tx.record_completed(order_id, om):
                return None  # another push recorded it first
            state = copy.deepcopy(tx.state) if tx.state else checkout.new_state(self.shop, sid)
            state["klarna"] = {**state["klarna"], "order_id": order_id, "status": COMPLETE,
                               "fraud_status": om.get("fraud_status"), "acknowledged": False}
            reference = om.get("merchant_reference1") or state.get("merchant_reference1")
            state["merchant_reference1"] = reference
            return Decision(state, EventType.ORDER_COMPLETED,
                            {"order_id": order_id, "order_amount": om.get("order_amount"),
                             "purchase_currency": om.get("purchase_currency"),
                             "fraud_status": om.get("fraud_status"),
                             "merchant_reference1": reference})
        if self.store.apply(sid, decide)[1] is not None:  # first push: what was paid? (rules/paid.py)
            record_mismatch(self.store, sid, order_id, om)
        return self.acknowledge(sid, order_id)

    @with_session
    def acknowledge(self, sid: str, order_id: str) -> str:
        known = self.store.completed_order(order_id)
        if known and known["acknowledged_at"] is not None:
            return "already acknowledged"
        try:
            # One key per order: a retried or repeated acknowledge is one acknowledge at Klarna.
            self.client.acknowledge_order(order_id, idempotency_key=f"acknowledge:{order_id}")
        except KlarnaError as exc:
            log.warning("acknowledge %s failed (%s); the next push or `flask kco reconcile` retries",
                        order_id, exc)
            return f"acknowledge failed: {reason(exc)}"
        def decide(tx: SessionTx) -> Decision | None:
            if not tx.mark_acknowledged(order_id):
                return None  # a concurrent acknowledge recorded it first
            state = copy.deepcopy(tx.state)
            state["klarna"] = {**state["klarna"], "acknowledged": True}
            return Decision(state, EventType.ORDER_ACKNOWLEDGED, {"order_id": order_id})
        return "acknowledged" if self.store.apply(sid, decide)[1] else "already acknowledged"

    def reconcile(self) -> list[tuple[str, str]]:
        """Acknowledge every completed order that is not yet acknowledged."""
        return [(row["order_id"], self.acknowledge(row["session"], row["order_id"]))
                for row in self.store.unacknowledged_orders()]

    @with_session
    def notification(self, sid: str, order_id: str, event_type: str) -> dict:
        """Record the fraud decision as Order Management reports it (the notification itself is
        only a hint: Klarna asks merchants to verify it against fraud_status)."""
        om = self.client.read_merchant_order(order_id)  # KlarnaError → the view answers 503
        self._check_owner(sid, om, self.store.order_owners(order_id))
        fraud_status = om.get("fraud_status")
        data = {"order_id": order_id, "event_type": event_type, "fraud_status": fraud_status,
                "verified": FRAUD_EVENTS[event_type] == fraud_status}

        def decide(tx: SessionTx) -> Decision | None:
            state = copy.deepcopy(tx.state) if tx.state else checkout.new_state(self.shop, sid)
            old = state["klarna"].get("fraud_status")
            tx.set_fraud_status(order_id, fraud_status)
            state["klarna"] = {**state["klarna"], "order_id": order_id, "fraud_status": fraud_status}
            return (Decision(state, EventType.FRAUD_STATUS_CHANGED, {**data, "old": old})
                    if old != fraud_status else None)
        self.store.apply(sid, decide)
        return data

    def _check_owner(self, sid: str, om: dict, owners: set[str]) -> None:
        """Order Management's merchant_reference2 (set by us when we created the order) names
        the owner; without it, only the order's stored binding does (issue 10.3). The URL
        names a session, but a URL may have leaked: it decides nothing."""
        owner = om.get("merchant_reference2")
        order_id = om.get("order_id")
        if owner and owner != sid:
            raise WrongSession(f"order {order_id} belongs to another session")
        if not owner and sid not in owners:
            raise WrongSession(f"order {order_id} has no merchant_reference2 and is not bound "
                               "to this session")
        if owners - {sid}:
            raise WrongSession(f"order {order_id} is bound to another session")
