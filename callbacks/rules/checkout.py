"""The session's state (docs/design.md §7.2) and the decisions that change it, as pure functions.

Views parse, call one function here, record what it returns and reply. Each function takes the
current state and returns the new one (or raises Rejected with Klarna's error type), so the same
rules serve Klarna's callbacks, the storefront API and the tests, and nothing here touches the
database, Flask or the network. They never change a state they are given, nor anything inside
it, so a new state shares the parts that did not change with the old one (a shallow copy, not a
deep one: deep-copying a 1000-line order took ~5 ms per callback; BENCHMARKS.md).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from callbacks.rules import compare, ksa, markets, pricing
from callbacks.rules.pricing import CartItem, PricingError
from callbacks.rules.shop import Coupon, Market, Shop
from callbacks.rules.state import EventType, SessionState
from callbacks.rules.texts import Text

GOODS_TYPES = {"physical", "digital", None}
VOLATILE = ("version", "updated_at")


class Rejected(Exception):
    """A callback we must refuse; becomes Klarna's 400 `{error_type, error_text}`. The text is
    one or more message ids (rules/texts.py), since only the view knows the shopper's language."""

    def __init__(self, error_type: str, text: Text | Sequence[Text], errors: Mapping[str, Any] | None = None):
        self.texts = (text,) if isinstance(text, Text) else tuple(text)
        super().__init__(self.error_text)
        self.error_type, self.errors = error_type, errors

    @property
    def error_text(self) -> str:
        """In English, for logs; the reply renders `texts` in the order's language."""
        return " ".join(t.english() for t in self.texts)


@dataclass
class Decision:
    state: dict[str, Any]
    event_type: EventType | None  # None: nothing changed, record nothing
    data: dict[str, Any]
    refusal: Exception | None = None  # recorded, then raised: a validation that fails
    reply: dict[str, Any] | None = None  # a callback's 200 body, when it is not reply_body(state)


def new_state(shop: Shop, sid: str, *, country: str | None = None, locale: str | None = None,
              items: Iterable[CartItem] = (), coupon: str | None = None) -> dict[str, Any]:
    market = shop.market(country) or shop.default_market
    state: SessionState = {
        "session": sid, "version": 0,
        "cart": {"items": [{"reference": i.reference, "quantity": i.quantity}
                           for i in pricing.merge_items(items)], "coupon": coupon},
        "market": {"country": market.country, "currency": market.currency,
                   "locale": markets.pick_locale(market, locale or market.default_locale)},
        "purchase_country": market.country, "pending_purchase_country": None,
        "billing_country": None, "billing_region": None,
        "shipping_country": None, "shipping_region": None,
        "selected_shipping_option": None,
        "order": {"order_amount": 0, "order_tax_amount": 0, "order_lines": []},
        "shipping_options": [],
        "klarna": {"order_id": None, "status": None},
        "merchant_reference1": None,
        "validation": None,
        "updated_at": None,
    }
    return reprice(shop, state)


def cart_items(state: Mapping[str, Any]) -> list[CartItem]:
    return [CartItem(i["reference"], i["quantity"]) for i in state["cart"]["items"]]


def tax_country(shop: Shop, state: Mapping[str, Any]) -> str:
    return markets.tax_country(shop, state["shipping_country"], state["billing_country"],
                               state["purchase_country"])


@dataclass(frozen=True)
class Pricing:
    """What one re-pricing took (everything price_order reads of a state) and what it gave."""

    items: Any  # the state's cart["items"] list, compared as it is (the same object, mostly)
    coupon: Coupon | None
    currency: str
    tax_market: Market
    language: str
    region: str | None
    selected: str | None
    shipping_assistant: bool
    priced: pricing.PricedOrder

    def gives(self, other: Pricing) -> bool:
        """Pricing `other`'s inputs gives this one's result: the same inputs, except that the
        selected shipping option may be the one this pricing picked (from the same options, it
        picks it again: pricing._shipping) and the region may differ where prices include tax
        (a region only sets a net-price market's sales tax: pricing.price_order)."""
        return ((self.selected == other.selected
                 or other.selected == self.priced.selected_shipping_option)
                and (self.items is other.items or self.items == other.items) and self.coupon is other.coupon
                and self.currency == other.currency and self.tax_market is other.tax_market
                and self.language == other.language
                and (self.region == other.region or self.tax_market.prices_include_tax)
                and self.shipping_assistant == other.shipping_assistant)


def _pricing(shop: Shop, state: Mapping[str, Any], earlier: Pricing | None) -> Pricing:
    taxed_in = tax_country(shop, state)
    tax_market = shop.market(taxed_in) or shop.market(state["market"]["country"])
    assert tax_market is not None, "a state's market is one of the shop's"
    shipped_to = markets.country(state["shipping_country"])
    region = state["shipping_region"] if taxed_in == shipped_to else state["billing_region"]
    coupon = shop.coupons.get(state["cart"]["coupon"] or "")
    currency, language = state["market"]["currency"], markets.language(state["market"]["locale"])
    selected, assistant = state["selected_shipping_option"], ksa.applies(shop, state)
    items = state["cart"]["items"]
    if earlier is not None:
        wanted = Pricing(items, coupon, currency, tax_market, language, region, selected,
                         assistant, earlier.priced)
        if earlier.gives(wanted):
            return wanted
    priced = pricing.price_order(
        shop, cart_items(state), currency=currency, tax_market=tax_market, language=language,
        coupon=coupon, region=region, selected_shipping=selected, shipping_assistant=assistant)
    return Pricing(items, coupon, currency, tax_market, language, region, selected, assistant,
                   priced)


def reprice(shop: Shop, state: Mapping[str, Any]) -> dict[str, Any]:
    """Recompute order and shipping options from the cart; raises PricingError."""
    return _repriced(shop, state)[0]


def _repriced(shop: Shop, state: Mapping[str, Any],
              earlier: Pricing | None = None) -> tuple[dict[str, Any], Pricing]:
    """reprice, and its Pricing; `earlier` (a pricing of the same decision) is reused when its
    inputs give the same result: a session built from a callback's body is priced once, not
    once without the body's addresses and once with them."""
    found = _pricing(shop, state, earlier)
    priced = found.priced
    return ({**state, "order": priced.order(), "shipping_options": priced.shipping_options,
             "selected_shipping_option": priced.selected_shipping_option}, found)


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    if old is None:
        return True
    def strip(s: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in s.items() if k not in VOLATILE}

    return strip(old) != strip(new)


COMPLETE = "checkout_complete"


class OrderComplete(Exception):
    """The session's Klarna order is complete: its cart and market can no longer change."""


def is_complete(state: Mapping[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return ((state or {}).get("klarna") or {}).get("status") == COMPLETE


def _unchanged(state: dict[str, Any]) -> Decision:
    """What a synchronous callback gets once the order is complete: the completed
    order, and nothing recorded but the callback log's row. Klarna charged what it holds, so
    letting a late country_change re-price the session would make our state lie about it."""
    return Decision(state, None, {})


def reply_body(state: Mapping[str, Any]) -> dict[str, Any]:
    """The 200 body of address_update, shipping_option_update and country_change."""
    return {**state["order"], "purchase_currency": state["market"]["currency"],
            "shipping_options": state["shipping_options"], "locale": state["market"]["locale"]}


# -- building an unknown session from a Klarna body ------------------------------------------
def items_from_lines(order_lines: Iterable[Mapping[str, Any]]) -> list[CartItem]:
    items = []
    for i, line in enumerate(order_lines):
        if line.get("type") not in GOODS_TYPES:
            continue
        if not line.get("reference"):
            raise Rejected("approval_failed", Text("item_unidentified"),
                           {f"order_lines.{i}.reference": ["A goods line needs a reference (SKU)."]})
        if line["quantity"] > 0:
            items.append(CartItem(line["reference"], line["quantity"]))
    return items


def state_from_body(shop: Shop, sid: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """An unknown session (a replayed sample): the cart is the body's goods lines, the market the
    one whose currency Klarna is using, preferring the billing country's."""
    return _from_body(shop, sid, body)[0]


def _known_or_from_body(shop: Shop, state: dict[str, Any] | None, sid: str,
                        body: Mapping[str, Any]) -> tuple[dict[str, Any], Pricing | None]:
    """The session's state, or one built from the body with its pricing (for _priced to reuse)."""
    return (state, None) if state else _from_body(shop, sid, body)


def _from_body(shop: Shop, sid: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], Pricing]:
    billing = (body.get("billing_address") or {}).get("country")
    market = markets.market_for_currency(shop, body["purchase_currency"], preferred=billing)
    if market is None:
        raise Rejected("approval_failed", Text("unknown_currency",
                                               {"currency": body["purchase_currency"]}),
                       {"purchase_currency": [f"No market uses {body['purchase_currency']}."]})
    items = items_from_lines(body["order_lines"])
    state = {**_unpriced(shop, sid, market.country, body.get("locale")),
             "cart": {"items": [{"reference": i.reference, "quantity": i.quantity}
                                for i in pricing.merge_items(items)], "coupon": None}}
    return _priced_with(shop, state)


def _priced_with(shop: Shop, state: dict[str, Any],
                 earlier: Pricing | None = None) -> tuple[dict[str, Any], Pricing]:
    try:
        return _repriced(shop, state, earlier)
    except PricingError as exc:
        raise Rejected("approval_failed", _shopper_text(exc),
                       {"order_lines": [str(exc)]}) from exc


def _unpriced(shop: Shop, sid: str, country: str, locale: str | None) -> dict[str, Any]:
    # new_state with an empty cart never fails to price.
    return new_state(shop, sid, country=country, locale=markets.normalize_locale(locale))


def _priced(shop: Shop, state: dict[str, Any], earlier: Pricing | None = None) -> dict[str, Any]:
    return _priced_with(shop, state, earlier)[0]


def _shopper_text(exc: PricingError) -> Text:
    if isinstance(exc, pricing.LimitExceeded):
        return Text("order_too_large")
    return Text("item_unavailable")


# -- Klarna's shipping-service callbacks -----------------------------------------------------
def _addresses(shop: Shop, state: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    billing = body.get("billing_address") or {}
    shipping = body.get("shipping_address") or {}
    state = dict(state)  # only top-level keys are set below
    if billing.get("country"):
        if not shop.market(billing["country"]):
            raise Rejected("address_error",
                           Text("unsupported_billing_country", {"country": billing["country"]}))
        state["billing_country"] = billing["country"]
        state["billing_region"] = billing.get("region")
    if shipping.get("country"):
        if not shop.market(shipping["country"]):
            raise Rejected("unsupported_shipping_address",
                           Text("unsupported_shipping_country", {"country": shipping["country"]}))
        state["shipping_country"] = shipping["country"]
        state["shipping_region"] = shipping.get("region")
    return state


def _location_data(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("billing_country", "billing_region", "shipping_country", "shipping_region")
    return {k: {"old": (old or {}).get(k), "new": new[k]} for k in keys
            if (old or {}).get(k) != new[k]}


def totals(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"order_amount": state["order"]["order_amount"],
            "order_tax_amount": state["order"]["order_tax_amount"],
            "purchase_currency": state["market"]["currency"]}


def address_update(shop: Shop, state: dict[str, Any] | None, sid: str, body: Mapping[str, Any]) -> Decision:
    if is_complete(state):
        return _unchanged(state)
    base, earlier = _known_or_from_body(shop, state, sid, body)
    new = _priced(shop, _addresses(shop, base, body), earlier)
    data = {**_location_data(state, new), "totals": {"old": totals(state), "new": totals(new)}}
    return Decision(new, EventType.ADDRESS_UPDATED if changed(state, new) else None, data)


def shipping_option_update(shop: Shop, state: dict[str, Any] | None, sid: str, body: Mapping[str, Any]) -> Decision:
    if is_complete(state):
        return _unchanged(state)
    known, earlier = _known_or_from_body(shop, state, sid, body)
    base = _addresses(shop, known, body)
    chosen = (body.get("selected_shipping_option") or {}).get("id")
    if chosen:
        base["selected_shipping_option"] = chosen
    new = _priced(shop, base, earlier)
    data = {"selected_shipping_option": {"old": (state or {}).get("selected_shipping_option"),
                                         "new": new["selected_shipping_option"]},
            "requested": chosen, "totals": {"old": totals(state), "new": totals(new)}}
    return Decision(new, EventType.SHIPPING_OPTION_SELECTED if changed(state, new) else None, data)


def country_change(shop: Shop, state: dict[str, Any] | None, sid: str, body: Mapping[str, Any]) -> Decision:
    """The billing country moved: switch to its market's currency and a locale (docs/design.md §5.7). Klarna's
    purchase_country cannot be changed by a callback, so a differing one is left pending for the
    storefront's suspend → PUT market → resume.

    When the new market sells through another Klarna account than the one holding the order
    (docs/design.md §4.1), the order cannot follow at all: the session moves to the new market
    (its state, the page's prices) and the storefront's PUT market makes the order at the new
    account (rules/lifecycle.py `account_moved`). Klarna gets the order as it stands in the
    reply, since this order's account may not even sell the new currency, and it is abandoned."""
    if is_complete(state):
        return _unchanged(state)
    known, earlier = _known_or_from_body(shop, state, sid, body)
    base = _addresses(shop, known, body)
    country = base["billing_country"]
    if country is None:
        raise Rejected("address_error", Text("billing_country_missing"),
                       {"billing_address.country": ["Missing data for required field."]})
    new = _priced(shop, switch_market(shop, base, country, base["market"]["locale"]), earlier)
    data = {"market": {"old": known["market"], "new": new["market"]},
            "pending_purchase_country": new["pending_purchase_country"],
            "totals": {"old": totals(state), "new": totals(new)}}
    held_by = (known["klarna"].get("account") if known["klarna"]["order_id"]
               else shop.account_of(known["market"]["country"]))
    moving_to = shop.account_of(new["market"]["country"])
    event = EventType.MARKET_CHANGED if changed(state, new) else None
    if moving_to != held_by:
        data["klarna_account"] = {"old": held_by, "new": moving_to}
        return Decision(new, event, data, reply=reply_body(known))
    return Decision(new, event, data)


def switch_market(shop: Shop, state: dict[str, Any], country: str, locale: str | None) -> dict[str, Any]:
    market = shop.market(country)
    assert market is not None, f"{country}: callers pass a country the shop serves"
    new = dict(state)  # only top-level keys are set below
    new["market"] = {"country": market.country, "currency": market.currency,
                     "locale": markets.pick_locale(market, locale)}
    new["pending_purchase_country"] = (market.country if market.country != state["purchase_country"]
                                       else None)
    return new


# -- validation --------------------------------------------------------------------------------
def out_of_stock(shop: Shop, state: Mapping[str, Any]) -> list[Text]:
    short = []
    for item in state["cart"]["items"]:
        stock = shop.products[item["reference"]].stock
        if stock is not None and item["quantity"] > stock:
            name = shop.products[item["reference"]].display_name(markets.language(state["market"]["locale"]))
            short.append(Text("out_of_stock", {"name": name}) if stock == 0
                         else Text("stock_left", {"name": name, "stock": stock}))
    return short


class CartChanged(Exception):
    """Klarna's order no longer matches our cart: deny with a 303 to the checkout page."""


def order_mismatch(shop: Shop, expected: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
    """Validation's comparison of Klarna's order with `expected` (a priced state): every line
    ours (compare.py), except that where Klarna's Shipping Assistant prices the shipping, one
    shipping line of Klarna's may sit on top of our goods (ksa.py)."""
    if not ksa.applies(shop, expected):
        return compare.mismatch(expected, body)
    taxed_in = tax_country(shop, expected)
    tax_market = shop.market(taxed_in) or shop.market(expected["market"]["country"])
    assert tax_market is not None, "a state's market is one of the shop's"
    return ksa.mismatch(expected, body, ksa.shipping_tax_rate(tax_market))


def validation(shop: Shop, state: dict[str, Any] | None, sid: str, body: Mapping[str, Any]) -> Decision:
    if is_complete(state):
        mismatch = order_mismatch(shop, state, body)  # against the completed order, re-pricing nothing
        if mismatch:
            return Decision(state, None, {}, CartChanged(mismatch))
        return _unchanged(state)
    known, earlier = _known_or_from_body(shop, state, sid, body)
    base = _addresses(shop, known, body)
    if (body.get("selected_shipping_option") or {}).get("id"):
        base["selected_shipping_option"] = body["selected_shipping_option"]["id"]
    expected = _priced(shop, base, earlier)
    order_id = body.get("order_id")
    short = out_of_stock(shop, expected)
    if short:
        result = {"result": "failed", "reason": "out_of_stock", "order_id": order_id}
        return _failed(state, {**expected, "validation": result}, result,
                       Rejected("approval_failed", short))
    mismatch = order_mismatch(shop, expected, body)
    if mismatch:
        result = {"result": "failed", "reason": "cart_changed", "order_id": order_id,
                  "details": mismatch}
        return _failed(state, {**expected, "validation": result}, result, CartChanged(mismatch))
    new = dict(expected)  # only top-level keys are set below
    new["validation"] = {"result": "passed", "order_id": order_id}
    if order_id and not new["klarna"]["order_id"]:
        new["klarna"] = {**new["klarna"], "order_id": order_id}
    return Decision(new, EventType.VALIDATION_PASSED if changed(state, new) else None,
                    {"order_id": order_id, "totals": totals(new)})


def _failed(state: Mapping[str, Any] | None, new: dict[str, Any], result: dict[str, Any],
            refusal: Exception) -> Decision:
    """A failed validation is recorded (once: a repeat that changes nothing records nothing),
    then refused: the caller raises `refusal` after saving."""
    return Decision(new, EventType.VALIDATION_FAILED if changed(state, new) else None, result, refusal)
