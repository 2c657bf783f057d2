"""The push's check of what was paid (rules/paid.py), recorded as `order_mismatch`."""
from __future__ import annotations

from callbacks.rules import ksa, paid
from callbacks.rules.checkout import Decision
from callbacks.rules.shop import Shop
from callbacks.rules.state import EventType
from callbacks.store.database import SessionTx, Store


def record_mismatch(store: Store, sid: str, order_id: str, om_order: dict,
                    shop: Shop | None = None) -> dict | None:
    """Compare Order Management's order with the session's priced cart; record a difference.
    Returns the difference, or None when the order is what we priced. With the `shop`, a
    market whose shipping Klarna's Shipping Assistant prices expects Klarna's shipping line."""
    def decide(tx: SessionTx) -> Decision | None:
        klarna_shipping = shop is not None and ksa.applies(shop, tx.state)
        found = paid.mismatch(tx.state or {}, om_order, klarna_shipping=klarna_shipping)
        if found is None:
            return None
        assert tx.state is not None  # the push recorded the completion first: the session exists
        return Decision(tx.state, EventType.ORDER_MISMATCH, {"order_id": order_id, **found})
    decision = store.apply(sid, decide)[1]
    return decision.data if decision else None
