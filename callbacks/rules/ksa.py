"""Klarna's Shipping Assistant (KSA), per market (docs/design.md §5.8), as pure functions.

With KSA, Klarna prices shipping itself: its shipping selector asks the merchant's transport
management system (nShift, Ingrid, Unifaun, …) for options in real time, and Klarna adds the
chosen option as a `shipping_fee` order line of its own (docs/klarna.md §4.6). Klarna's guide
says the merchant should then not use `shipping_option_update`, may send fallback
`shipping_options` (used when the TMS does not answer), `shipping_countries`, and
`shipping_attributes` (weight, dimensions, tags) on the order lines, which reach the TMS.

So for a market with `shipping_assistant = true` kco-sync prices the goods and their tax and
leaves shipping to Klarna: the order it sends has no shipping line and no
`shipping_option_update` URL, the market's `[[shipping]]` options go as the fallback, and
validation accepts exactly one `shipping_fee` line Klarna priced — within Klarna's amount rules
and at the tax rate the market charges on shipping — on top of goods that match the priced
cart. Everything else still has to be ours.

Nothing here touches Flask, the database or the network. shop.py imports this module, so the
shop's types are imported for the type checker only.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from callbacks.rules import amounts, compare

if TYPE_CHECKING:
    from callbacks.rules.shop import Market, Product, Shop

SHIPPING_FEE = "shipping_fee"
DIMENSIONS = ("height", "width", "length")  # millimetres, Klarna's `dimensions`
MAX_MEASURE = 10**9                          # 1000 t in grams, 1000 km in millimetres
MAX_TAGS = 50
MAX_TAG = 100


class AttributesError(ValueError):
    """A product's shipping_attributes Klarna would not take; `key` is the dotted key."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


# -- product data: Klarna's shipping_attributes ---------------------------------------------
def parse_shipping_attributes(raw: Any, key: str) -> Mapping[str, Any]:
    """`{weight = 250, dimensions = {height, width, length}, tags = [...]}` (grams,
    millimetres), frozen; raises AttributesError naming the first bad key. Shared by the shop
    file and the catalog (callbacks/catalog/rows.py), so both accept the same products."""
    if not isinstance(raw, Mapping):
        raise AttributesError(key, "must be a table like { weight = 250, dimensions = { height = 30, "
                                   "width = 200, length = 300 }, tags = [\"fragile\"] }")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{key}.{name}"
        if name == "weight":
            out["weight"] = _measure(value, where, "grams")
        elif name == "dimensions":
            if not isinstance(value, Mapping) or not value:
                raise AttributesError(where, "must be a table of height, width and length in mm")
            dims = {}
            for dim, size in value.items():
                if dim not in DIMENSIONS:
                    raise AttributesError(f"{where}.{dim}", f"unknown key (expected {', '.join(DIMENSIONS)})")
                dims[dim] = _measure(size, f"{where}.{dim}", "millimetres")
            out["dimensions"] = MappingProxyType(dims)
        elif name == "tags":
            if not isinstance(value, list) or len(value) > MAX_TAGS:
                raise AttributesError(where, f"must be a list of at most {MAX_TAGS} strings like "
                                             "[\"fragile\", \"bulky\"]")
            for i, tag in enumerate(value):
                if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
                    raise AttributesError(f"{where}[{i}]", f"{tag!r} is not a tag of 1–{MAX_TAG} characters")
            out["tags"] = tuple(value)
        else:
            raise AttributesError(where, "unknown key (expected dimensions, tags, weight)")
    if not out:
        raise AttributesError(key, "names none of weight, dimensions or tags")
    return MappingProxyType(out)


def _measure(value: Any, where: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MEASURE:
        raise AttributesError(where, f"{value!r} is not a whole number of {unit} from 0 to {MAX_MEASURE}")
    return value


def line_attributes(product: Product | None) -> dict[str, Any] | None:
    """The product's shipping_attributes as an order line carries them (plain JSON)."""
    attributes = getattr(product, "shipping_attributes", None)
    if not attributes:
        return None
    out: dict[str, Any] = {}
    if "weight" in attributes:
        out["weight"] = attributes["weight"]
    if "dimensions" in attributes:
        out["dimensions"] = dict(attributes["dimensions"])
    if "tags" in attributes:
        out["tags"] = list(attributes["tags"])
    return out


# -- which orders ---------------------------------------------------------------------------
def session_market(shop: Shop, state: Mapping[str, Any] | None) -> Market | None:
    """The market of the session's Klarna order (its currency's), not the tax country's: KSA
    is set up for a Klarna store, not for where the parcel goes."""
    if not state:
        return None
    return shop.market((state.get("market") or {}).get("country"))


def applies(shop: Shop, state: Mapping[str, Any] | None) -> bool:
    """Whether Klarna's Shipping Assistant prices this session's shipping."""
    market = session_market(shop, state)
    return bool(market and market.shipping_assistant)


def shipping_tax_rate(tax_market: Market) -> int:
    """The rate the tax country charges on shipping: what Klarna's shipping line must carry."""
    if not tax_market.prices_include_tax:
        return 0  # net prices: every line but the sales-tax one carries 0 (docs/klarna.md §5.7)
    return tax_market.tax[tax_market.shipping_tax_class or ""]


# -- validation: Klarna's line on top of our goods -------------------------------------------
def split_lines(lines: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(Klarna's shipping_fee lines, every other line)."""
    fees: list[Mapping[str, Any]] = []
    rest: list[Mapping[str, Any]] = []
    for line in lines:
        (fees if line.get("type") == SHIPPING_FEE else rest).append(line)
    return fees, rest


def fee_problems(line: Mapping[str, Any], rate: int) -> list[str]:
    """What is wrong with Klarna's shipping line: Klarna's own amount rules (the independent
    checker, rules/amounts.py), a price below zero, or a tax rate other than the market's
    for shipping."""
    label = f"shipping_fee line {line.get('reference') or ''!r}"
    problems = [f"{label}: {error.split('.', 1)[1]} breaks Klarna's amount rules"
                for error in amounts.line_errors({**line, "name": "shipping"}, 0)
                if "." in error]
    if (line.get("unit_price") or 0) < 0 or (line.get("total_amount") or 0) < 0:
        problems.append(f"{label}: a shipping fee below zero")
    if line.get("tax_rate", 0) != rate:
        problems.append(f"{label}: tax_rate {line.get('tax_rate', 0)} ≠ {rate}, the market's rate for shipping")
    return problems


def mismatch(expected: Mapping[str, Any], body: Mapping[str, Any], rate: int) -> list[str]:
    """What differs between Klarna's order and the cart we price (`expected`, a state priced
    without a shipping line), when Klarna's Shipping Assistant adds the shipping: at most one
    `shipping_fee` line, priced within Klarna's rules at `rate`, may sit on top of our goods;
    every other line, and both totals less that line, must be ours exactly (compare.py's
    rules). [] when the order may be bought."""
    fees, rest = split_lines(body["order_lines"])
    problems = []
    if body["purchase_currency"] != expected["market"]["currency"]:
        problems.append(f"purchase_currency {body['purchase_currency']} ≠ {expected['market']['currency']}")
    if len(fees) > 1:
        problems.append(f"{len(fees)} shipping_fee lines; Klarna's Shipping Assistant adds one")
    fee_amount = fee_tax = 0
    for line in fees[:1]:
        problems.extend(fee_problems(line, rate))
        fee_amount, fee_tax = line.get("total_amount", 0), line.get("total_tax_amount", 0)
    for total, extra in (("order_amount", fee_amount), ("order_tax_amount", fee_tax)):
        wanted = expected["order"][total] + extra
        if body[total] != wanted:
            problems.append(f"{total} {body[total]} ≠ {wanted} (goods {expected['order'][total]} "
                            f"+ Klarna's shipping {extra})")
    ours = [line for line in expected["order"]["order_lines"] if line.get("type") != SHIPPING_FEE]
    problems.extend(compare.line_mismatch(ours, rest))
    return problems


def without_klarna_shipping(order: Mapping[str, Any]) -> dict[str, Any]:
    """Klarna's copy of an order with the shipping line(s) Klarna added taken out, totals
    included: what to compare with the order we send (klarna/order.differs)."""
    fees, rest = split_lines(order.get("order_lines") or [])
    out = dict(order)
    out["order_lines"] = rest
    for total, key in (("order_amount", "total_amount"), ("order_tax_amount", "total_tax_amount")):
        if isinstance(order.get(total), int):
            out[total] = order[total] - sum(line.get(key) or 0 for line in fees)
    return out


# -- after the purchase: what Klarna's selector chose ----------------------------------------
_DETAIL_TEXT = ("carrier", "class")
_PRODUCT = ("name", "identifier")
_TIMESLOT = ("id", "start", "end")
_PICKUP = ("id", "name")  # a pickup point's address is a place, but may carry names: left out


def _texts(source: Any, keys: Iterable[str]) -> dict[str, str]:
    if not isinstance(source, Mapping):
        return {}
    return {k: source[k] for k in keys if isinstance(source.get(k), str) and source[k]}


def completed_option(order: Mapping[str, Any]) -> dict[str, Any] | None:
    """The completed order's `selected_shipping_option` for the `order_completed` event: its
    `id`, `name`, `price`, `tms_reference` (the shipment the TMS reserved) and
    `delivery_details` (carrier, class, product, timeslot, and a pickup point's id and name),
    and nothing of the shopper's (no addresses, no add-on free text). Klarna's Checkout API
    nests the details in `delivery_details`; its Order Management API puts them on the option
    itself (`carrier`, `class`, `carrier_product`, `location`, `timeslot`): both are read.
    None when the order has no selected option."""
    option = order.get("selected_shipping_option")
    if not isinstance(option, Mapping):
        return None
    out: dict[str, Any] = _texts(option, ("id", "name", "tms_reference"))
    if isinstance(option.get("price"), int) and not isinstance(option["price"], bool):
        out["price"] = option["price"]
    found = option.get("delivery_details")
    nested: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    details: dict[str, Any] = {**_texts(option, _DETAIL_TEXT), **_texts(nested, _DETAIL_TEXT)}
    for name, source, keys in (("product", nested.get("product") or option.get("carrier_product"), _PRODUCT),
                               ("timeslot", nested.get("timeslot") or option.get("timeslot"), _TIMESLOT),
                               ("pickup_location", nested.get("pickup_location") or option.get("location"), _PICKUP)):
        kept = _texts(source, keys)
        if kept:
            details[name] = kept
    out["delivery_details"] = details
    return out


def customer_type(order: Mapping[str, Any]) -> str | None:
    """`customer.type` of a completed order ("person" or "organization"), and nothing else of
    the customer: names, registration and VAT numbers stay at Klarna."""
    customer = order.get("customer")
    kind = customer.get("type") if isinstance(customer, Mapping) else None
    return kind if kind in ("person", "organization") else None
