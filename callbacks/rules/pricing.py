"""Cart + market → Klarna `order_lines` and totals (docs/design.md §5), in integer minor units.

Klarna rejects an order (or shows the shopper "something went wrong") when a line's tax is more
than 1 off `total_amount − total_amount·10000/(10000+tax_rate)` or when the totals do not add up
exactly. Every amount is therefore derived with integer arithmetic and exact half-up rounding,
and the order totals are the plain sums of what is on the lines, never recomputed separately.
No floats, no exchange rates, no Flask.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from callbacks.rules.amounts import MAX_AMOUNT, MAX_LINES
from callbacks.rules.shop import Coupon, Market, ShippingOption, Shop


@dataclass(frozen=True)
class CartItem:
    reference: str
    quantity: int


class PricingError(Exception):
    """The cart cannot be sold as asked; `reference` names the SKU when there is one."""

    def __init__(self, message: str, reference: str | None = None):
        super().__init__(message)
        self.reference = reference


class UnknownSku(PricingError):
    pass


class NoPrice(PricingError):
    pass


class LimitExceeded(PricingError):
    pass


@dataclass(frozen=True)
class PricedOrder:
    purchase_currency: str
    order_amount: int
    order_tax_amount: int
    order_lines: list[dict[str, Any]]
    shipping_options: list[dict[str, Any]]
    selected_shipping_option: str | None

    def order(self) -> dict[str, Any]:
        return {"order_amount": self.order_amount, "order_tax_amount": self.order_tax_amount,
                "order_lines": self.order_lines}


def round_half_up(numerator: int, denominator: int) -> int:
    """Exact half-up rounding of a non-negative fraction."""
    return (2 * numerator + denominator) // (2 * denominator)


def line_tax(total_amount: int, tax_rate: int) -> int:
    """Klarna's formula, rounded exactly: always within ½ of the true value, so within ±1."""
    return total_amount - round_half_up(total_amount * 10000, 10000 + tax_rate)


def merge_items(items: Iterable[CartItem]) -> list[CartItem]:
    """One line per SKU, first position kept: two lines of one SKU are one line at Klarna."""
    return [CartItem(ref, qty) for ref, qty in _merged(items).items()]


def _merged(items: Iterable[CartItem]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for item in items:
        merged[item.reference] = merged.get(item.reference, 0) + item.quantity
    return {ref: qty for ref, qty in merged.items() if qty > 0}


def price_order(shop: Shop, items: Sequence[CartItem], *, currency: str, tax_market: Market,
                language: str, coupon: Coupon | None = None, region: str | None = None,
                selected_shipping: str | None = None, shipping_assistant: bool = False) -> PricedOrder:
    """Price `items` in `currency` under `tax_market`'s tax rules.

    With `shipping_assistant` Klarna prices the shipping (rules/ksa.py, docs/design.md §5.8):
    the order gets no shipping line of ours and the options are priced as KSA's fallback (the
    selected one is the fallback Klarna would preselect).

    Raises UnknownSku, NoPrice (the product has no price in `currency`) or LimitExceeded
    (an amount over Klarna's 100 000 000 or more than 1000 order lines).
    """
    net_prices = not tax_market.prices_include_tax
    # One pass, one dict per line: a 1000-line cart is priced on every callback.
    lines: list[dict[str, Any]] = []
    for reference, quantity in _merged(items).items():
        product = shop.products.get(reference)
        if product is None:
            raise UnknownSku(f"{reference} is not sold here", reference)
        unit_price = product.prices.get(currency)
        if unit_price is None:
            raise NoPrice(f"{reference} has no price in {currency}", reference)
        tax_rate = 0 if net_prices else tax_market.tax[product.tax_class]
        total = quantity * unit_price
        lines.append({"type": product.type, "reference": product.sku,
                      "name": product.display_name(language), "quantity": quantity,
                      "unit_price": unit_price, "tax_rate": tax_rate, "total_amount": total,
                      "total_discount_amount": 0, "total_tax_amount": line_tax(total, tax_rate)})
    if coupon is not None:
        discounts = _discounts([line["total_amount"] for line in lines],
                               [line["reference"] for line in lines], coupon, currency)
        for line, discount in zip(lines, discounts):
            if discount:
                line.update(_finish(line, discount))
    goods_total = sum(line["total_amount"] for line in lines)

    options, selected = _shipping(tax_market, currency, goods_total, language, selected_shipping)
    if selected is not None and not shipping_assistant:
        lines.append(_finish({"type": "shipping_fee", "reference": selected["id"],
                              "name": selected["name"], "quantity": 1,
                              "unit_price": selected["price"], "tax_rate": selected["tax_rate"]}, 0))

    if net_prices:
        shipped = selected is not None and tax_market.tax_shipping and not shipping_assistant
        taxable = goods_total + (lines[-1]["total_amount"] if shipped else 0)
        sales_tax = round_half_up(taxable * tax_market.sales_tax_rate(region), 10000)
        lines.append({"type": "sales_tax", "reference": "sales_tax", "name": "Sales tax",
                      "quantity": 1, "unit_price": sales_tax, "tax_rate": 0,
                      "total_amount": sales_tax, "total_discount_amount": 0, "total_tax_amount": 0})
        order_tax = sales_tax
    else:
        order_tax = sum(line["total_tax_amount"] for line in lines)
    order_amount = sum(line["total_amount"] for line in lines)
    _check_limits(lines, order_amount)
    return PricedOrder(currency, order_amount, order_tax, lines, options,
                       selected["id"] if selected else None)


def _finish(line: dict[str, Any], discount: int) -> dict[str, Any]:
    total = line["quantity"] * line["unit_price"] - discount
    return {**line, "total_amount": total, "total_discount_amount": discount,
            "total_tax_amount": line_tax(total, line["tax_rate"])}


def _discounts(gross: list[int], references: list[str], coupon: Coupon | None,
               currency: str) -> list[int]:
    if coupon is None:
        return [0] * len(gross)
    if coupon.percent is not None:
        return [round_half_up(g * coupon.percent, 100) for g in gross]
    total = sum(gross)
    budget = min(coupon.amount.get(currency, 0), total)
    if budget == 0:
        return [0] * len(gross)
    # Proportional shares, floored; the units left over go to the largest remainders. Ties are
    # broken by SKU, not by position, so that re-ordering the cart moves no cent between lines
    # with different tax rates.
    shares = [budget * g // total for g in gross]
    remainders = [budget * g % total for g in gross]
    leftover = budget - sum(shares)
    for i in sorted(range(len(gross)), key=lambda i: (-remainders[i], references[i]))[:leftover]:
        shares[i] += 1
    return shares


def _shipping(market: Market, currency: str, goods_total: int, language: str,
              chosen: str | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    offered = [o for o in market.shipping if currency in o.price]
    if not offered:
        return [], None
    selected = (next((o for o in offered if o.id == chosen), None)
                or next((o for o in offered if o.preselected), None)
                or offered[0])
    rate = 0 if not market.prices_include_tax else market.tax[market.shipping_tax_class or ""]
    options = [_option(o, currency, goods_total, rate, language, o is selected) for o in offered]
    return options, next(opt for opt in options if opt["preselected"])


def _option(option: ShippingOption, currency: str, goods_total: int, rate: int, language: str,
            selected: bool) -> dict[str, Any]:
    free_over = option.free_over.get(currency)
    price = 0 if free_over is not None and goods_total >= free_over else option.price[currency]
    out = {"id": option.id, "name": option.display_name(language), "price": price,
           "tax_amount": line_tax(price, rate), "tax_rate": rate, "preselected": selected}
    description = option.display_description(language)
    if description:
        out["description"] = description
    if option.method:
        out["shipping_method"] = option.method
    return out


def _check_limits(lines: list[dict[str, Any]], order_amount: int) -> None:
    if len(lines) > MAX_LINES:
        raise LimitExceeded(f"the order would have {len(lines)} order lines; Klarna accepts at "
                            f"most {MAX_LINES} including shipping and sales tax")
    for line in lines:
        for key in ("quantity", "unit_price", "total_amount", "total_discount_amount"):
            if line[key] > MAX_AMOUNT:
                raise LimitExceeded(f"{line['reference']}: {key} {line[key]} is over Klarna's "
                                    f"limit of {MAX_AMOUNT}", line["reference"])
    if order_amount > MAX_AMOUNT:
        raise LimitExceeded(f"order_amount {order_amount} is over Klarna's limit of {MAX_AMOUNT}")
