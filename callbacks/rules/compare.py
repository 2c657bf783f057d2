"""Validation's comparison: the order Klarna holds against the cart we price (docs/design.md §6.2).

Kept apart from the decisions because it is the one place where a forged or stale order is
caught: Klarna charges what it holds, so every line and both totals must be ours.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

LINE_FIELDS = ("quantity", "unit_price", "total_discount_amount", "total_amount", "tax_rate")
TAX_TOLERANCE = 1  # minor units a line's total_tax_amount may differ by (rounding)


def mismatch(expected: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
    """What differs between the order Klarna holds and the one we price: every line (goods,
    shipping, discounts, sales tax, and anything else Klarna holds, such as a gift card) and the
    totals. Klarna charges what it holds, so a line we did not price is a change of cart."""
    problems = []
    if body["purchase_currency"] != expected["market"]["currency"]:
        problems.append(f"purchase_currency {body['purchase_currency']} ≠ {expected['market']['currency']}")
    for total in ("order_amount", "order_tax_amount"):
        if body[total] != expected["order"][total]:
            problems.append(f"{total} {body[total]} ≠ {expected['order'][total]}")
    problems.extend(line_mismatch(expected["order"]["order_lines"], body["order_lines"]))
    return problems


def line_key(line: Mapping[str, Any]) -> tuple[str, str]:
    return (line.get("type") or "physical", line.get("reference") or "")


def line_mismatch(ours: Iterable[Mapping[str, Any]], theirs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Lines are paired by (type, reference), in order; Klarna keeps the order we sent."""
    problems = []
    waiting: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for line in ours:
        waiting.setdefault(line_key(line), []).append(line)
    for line in theirs:
        key = line_key(line)
        label = f"{key[0]} line {key[1]!r}"
        if not waiting.get(key):
            problems.append(f"{label} is not in the cart")
            continue
        expected = waiting[key].pop(0)
        for name in LINE_FIELDS:
            if line.get(name, 0) != expected.get(name, 0):
                problems.append(f"{label}: {name} {line.get(name, 0)} ≠ {expected.get(name, 0)}")
        if abs(line.get("total_tax_amount", 0) - expected.get("total_tax_amount", 0)) > TAX_TOLERANCE:
            problems.append(f"{label}: total_tax_amount {line.get('total_tax_amount', 0)} ≠ "
                            f"{expected.get('total_tax_amount', 0)}")
    problems.extend(f"{key[0]} line {key[1]!r} is missing" for key, lines in waiting.items()
                    for _ in lines)
    return problems
