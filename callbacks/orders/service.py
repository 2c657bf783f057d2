"""Order Management actions for the orders API: find the session that holds the order, call
Klarna at the account that holds it, record the action as an event (and so as a webhook).

Which client: `client_for_order(order_id)` — that of the Klarna account recorded with the
order (callbacks/klarna/accounts.py), whatever market the session is in now. Personal data in Klarna's order
(addresses, customer) passes through the read and is never stored: the events record ids,
amounts and the caller's references only.

A retried action (the caller's same Idempotency-Key) is one action at Klarna (idempotency.order_management)
and one event here: the event carries the Klarna key, and an event of that type with that key
already in the session's feed is not recorded twice.
"""
from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from callbacks.klarna import idempotency, om
from callbacks.klarna.client import KlarnaClient
from callbacks.rules.checkout import Decision
from callbacks.rules.state import EventType
from callbacks.store.database import SessionTx, Store
from callbacks.store.tables import events


class UnknownOrder(Exception):
    """No session of ours holds this order."""


class Orders:
    def __init__(self, store: Store, client_for_order: Callable[[str], KlarnaClient]):
        self.store = store
        self.client_for_order = client_for_order

    def owner(self, order_id: str) -> str:
        owners = self.store.order_owners(order_id)
        if len(owners) != 1:
            raise UnknownOrder(order_id)
        return next(iter(owners))

    def read(self, order_id: str) -> dict:
        self.owner(order_id)
        return self.client_for_order(order_id).read_merchant_order(order_id)

    def act(self, order_id: str, operation: str, caller_key: str, body: dict | None = None) -> dict:
        """Run one action at Klarna and record it; returns the event's data."""
        sid = self.owner(order_id)
        key = idempotency.order_management(operation, order_id, caller_key)
        client = self.client_for_order(order_id)
        event_type, data = ACTIONS[operation](client, order_id, body or {}, key)
        data = {"order_id": order_id, **data, "idempotency_key": key}
        self.store.apply(sid, lambda tx: _once(tx, event_type, data))
        return data


def _once(tx: SessionTx, event_type: EventType, data: dict) -> Decision | None:
    """The action's event, unless a retry of the same action already recorded it."""
    seen = tx.conn.execute(sa.select(events.c.data).where(
        events.c.session == tx.sid, events.c.type == event_type.value)).scalars()
    if any((d or {}).get("idempotency_key") == data["idempotency_key"] for d in seen):
        return None
    assert tx.state is not None  # the session owns the order (Service.owner): it exists
    state = dict(tx.state)
    if event_type is EventType.MERCHANT_REFERENCE_UPDATED:
        state["merchant_reference1"] = data["merchant_reference1"]
    return Decision(state, event_type, data)


def _money(body: dict, amount: str) -> dict:
    """What an event records of a capture or refund: amounts and the merchant's texts, no lines
    (they are Klarna's order's, read with GET /api/orders/{id})."""
    out = {amount: body[amount]}
    for name in ("reference", "description"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("order_lines"):
        out["order_line_references"] = [line.get("reference") for line in body["order_lines"]]
    return out


def _capture(client, order_id, body, key):
    capture_id = om.capture(client, order_id, body, key)
    return EventType.ORDER_CAPTURED, {"capture_id": capture_id, **_money(body, "captured_amount")}


def _refund(client, order_id, body, key):
    refund_id = om.refund(client, order_id, body, key)
    return EventType.ORDER_REFUNDED, {"refund_id": refund_id, **_money(body, "refunded_amount")}


def _cancel(client, order_id, body, key):
    om.cancel(client, order_id, key)
    return EventType.ORDER_CANCELLED, {}


def _extend(client, order_id, body, key):
    om.extend_authorization_time(client, order_id, key)
    return EventType.AUTHORIZATION_EXTENDED, {}


def _release(client, order_id, body, key):
    om.release_remaining_authorization(client, order_id, key)
    return EventType.AUTHORIZATION_RELEASED, {}


def _references(client, order_id, body, key):
    om.update_merchant_references(client, order_id,
                                  {"merchant_reference1": body["merchant_reference1"]}, key)
    return EventType.MERCHANT_REFERENCE_UPDATED, {"merchant_reference1": body["merchant_reference1"]}


ACTIONS = {"capture": _capture, "refund": _refund, "cancel": _cancel,
           "extend-authorization-time": _extend, "release-remaining-authorization": _release,
           "merchant-references": _references}
