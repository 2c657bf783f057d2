"""What was paid against what we priced: the push's check of the Order Management order.

Validation already compared Klarna's order with our cart before the purchase (compare.py); this
is the second look, after it, at the order Klarna actually holds and will charge. A difference
changes nothing at Klarna (the order stays acknowledged, or Klarna pushes again for 48 hours);
it is recorded as `order_mismatch`, with both totals and the references of the lines that
differ, for a person to look at. Lines pair by (type, reference); every amount must match
except a line's tax, which may differ by one minor unit (rounding).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TAX_TOLERANCE = 1
EXACT = ("quantity", "unit_price", "total_amount", "total_discount_amount")


def _lines(lines: Iterable[Mapping[str, Any]] | None) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for line in lines or []:
        out.setdefault((line.get("type") or "physical", line.get("reference") or ""), []).append(line)
    return out


def _same(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    if any((ours.get(f) or 0) != (theirs.get(f) or 0) for f in EXACT):
        return False
    tax: int = abs((ours.get("total_tax_amount") or 0) - (theirs.get("total_tax_amount") or 0))
    return tax <= TAX_TOLERANCE


def mismatch(priced: Mapping[str, Any], paid: Mapping[str, Any], *,
             klarna_shipping: bool = False) -> dict[str, Any] | None:
    """None when the paid order is the priced cart; else both sides' totals and the differing
    line references, sorted. `priced` is the session state (its `order` and `market`), `paid`
    Order Management's order. With `klarna_shipping` (Klarna's Shipping Assistant priced the
    shipping, rules/ksa.py) one shipping line of Klarna's is expected on top of our goods:
    validation judged it, so here it only adds to the total we expect."""
    order = priced.get("order") or {}
    paid_lines = list(paid.get("order_lines") or [])
    extra = 0
    if klarna_shipping:
        fees = [line for line in paid_lines if line.get("type") == "shipping_fee"]
        if len(fees) == 1:
            paid_lines.remove(fees[0])
            extra = fees[0].get("total_amount") or 0
    amount = order.get("order_amount")
    if extra and isinstance(amount, int):
        amount += extra
    expected = {"order_amount": amount,
                "purchase_currency": (priced.get("market") or {}).get("currency")}
    got = {"order_amount": paid.get("order_amount"),
           "purchase_currency": (paid.get("purchase_currency") or "").upper() or None}
    ours, theirs = _lines(order.get("order_lines")), _lines(paid_lines)
    references = set()
    for key in ours.keys() | theirs.keys():
        a, b = ours.get(key, []), theirs.get(key, [])
        if len(a) != len(b) or not all(_same(x, y) for x, y in zip(a, b, strict=True)):
            references.add(key[1])
    if expected == got and not references:
        return None
    return {"expected": expected, "paid": got, "references": sorted(references)}
