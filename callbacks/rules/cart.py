"""The storefront's writes to a session (PUT /api/sessions/{sid}/cart, the checkout load's
merchant_reference1), as pure functions like rules/checkout.py's, whose state they share."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Final, Literal

from callbacks.rules import pricing
from callbacks.rules.checkout import Decision, OrderComplete, changed, is_complete, new_state, reprice, totals
from callbacks.rules.pricing import CartItem, PricingError
from callbacks.rules.shop import Shop
from callbacks.rules.state import EventType


class CartRefused(Exception):
    """A cart the storefront cannot have: `errors` names the field, the message the problem."""

    def __init__(self, message: str, errors: Mapping[str, list[str]]):
        super().__init__(message)
        self.message, self.errors = message, dict(errors)


def coupon_code(shop: Shop, code: str | None) -> str | None:
    """The shop's spelling of `code`: exact, else the one coupon equal ignoring case (shoppers
    type "summer10"); raises CartRefused for a coupon the shop does not have."""
    if code is None:
        return None
    if code in shop.coupons:
        return code
    folded = [c for c in shop.coupons if c.casefold() == code.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    problem = f"Unknown coupon {code!r}."
    raise CartRefused(problem, {"coupon": [problem]})


class _Keep(Enum):
    """The type of KEEP, a sentinel mypy can narrow away with `is not KEEP`."""

    KEEP = "keep"


KEEP: Final = _Keep.KEEP  # set_cart without merchant_reference1: the state's stays as it is
Reference = str | None | Literal[_Keep.KEEP]


def set_cart(shop: Shop, state: dict[str, Any] | None, sid: str, items: Iterable[CartItem],
             coupon: str | None, merchant_reference1: Reference = KEEP) -> Decision:
    """Replace the cart (a new session starts in the shop's default market) and re-price.
    Raises CartRefused naming the coupon or the SKU; a cart equal to the current one is no
    change (event_type None)."""
    if is_complete(state):
        raise OrderComplete(sid)
    items = list(items)
    code = coupon_code(shop, coupon)
    base = state or new_state(shop, sid)
    new = dict(base)  # only top-level keys are set below; reprice returns a new dict
    if merchant_reference1 is not KEEP:
        new["merchant_reference1"] = merchant_reference1
    new["cart"] = {"items": [{"reference": i.reference, "quantity": i.quantity}
                             for i in pricing.merge_items(items)], "coupon": code}
    try:
        new = reprice(shop, new)
    except PricingError as exc:
        field = next((f"items.{n}.reference" for n, item in enumerate(items)
                      if exc.reference is not None and item.reference == exc.reference), "items")
        raise CartRefused(f"{field}: {exc}", {field: [str(exc)]}) from exc
    data = {"cart": {"old": state["cart"] if state else None, "new": new["cart"]},
            "totals": {"old": totals(state), "new": totals(new)}}
    if (state or {}).get("merchant_reference1") != new.get("merchant_reference1"):
        data["merchant_reference1"] = {"old": (state or {}).get("merchant_reference1"),
                                       "new": new.get("merchant_reference1")}
    return Decision(new, EventType.CART_UPDATED if changed(state, new) else None, data)


def set_merchant_reference(state: dict[str, Any], reference: str | None) -> Decision:
    """The shop's own order number, sent to Klarna as merchant_reference1 (the session id
    stays merchant_reference2: push and notification find their session by it)."""
    old = state.get("merchant_reference1")
    if old == reference:
        return Decision(state, None, {})
    return Decision({**state, "merchant_reference1": reference},
                    EventType.MERCHANT_REFERENCE_CHANGED,
                    {"merchant_reference1": {"old": old, "new": reference}})
