"""One Klarna order per session, and one session per Klarna order, so a leaked callback URL
cannot move another shopper's order.

The callback token covers the session only: the `order_id` in the URL, and the one in a
validation body, are whatever the caller wrote. So a leaked callback URL must not be able to
move another shopper's order: once a session has an order, a callback naming any other order is
refused, and a session without one may not take an order that another session already has.
"""
from __future__ import annotations

from collections.abc import Mapping

from callbacks.store.database import SessionTx


class WrongOrder(Exception):
    """A callback naming an order that is not, or cannot become, this session's."""

    def __init__(self, message: str, field: str = "order_id"):
        super().__init__(message)
        self.message, self.field = message, field


def bound_order(state: Mapping | None) -> str | None:
    return ((state or {}).get("klarna") or {}).get("order_id")


def check(tx: SessionTx, url_order_id: str | None, body_order_id: str | None = None) -> str | None:
    """The order the callback names (None: it names none); raises WrongOrder when it names one
    the session does not have or cannot take. Runs inside the session's transaction, so the
    binding cannot change between this check and the save."""
    if url_order_id and body_order_id and url_order_id != body_order_id:
        raise WrongOrder("The body's order_id is not the one in the URL.")
    named = body_order_id or url_order_id
    if not named:
        return None
    bound = bound_order(tx.state)
    if bound and named != bound:
        raise WrongOrder("This callback names an order that is not this session's.")
    if not bound and tx.order_owners(named) - {tx.sid}:
        raise WrongOrder("This callback names an order that belongs to another session.")
    return named
