"""Klarna's amount rules (docs/klarna.md §5), written as a checker independent of pricing.py.

Kept apart from pricing on purpose: the property tests, `flask kco replay` and the sandbox all
judge our replies with this module, so it must not share code with what it judges. It returns
every broken rule as a Klarna-style message (`order_lines[3].total_tax_amount`), empty when the
order would be accepted.
"""
from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

# Klarna's limits (docs/klarna.md §5), defined here once: pricing, the shop file, the storefront
# and callback schemas and the sandbox import them. Only the numbers are shared, not the checks.
MAX_AMOUNT = 100_000_000
MAX_LINES = 1000
LINE_TYPES = {"physical", "discount", "shipping_fee", "sales_tax", "digital", "gift_card",
              "store_credit", "surcharge"}
REQUIRED_LINE_FIELDS = ("name", "quantity", "tax_rate", "total_amount", "total_tax_amount",
                        "unit_price")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def line_errors(line: Mapping[str, Any], index: int) -> list[str]:
    where = f"order_lines[{index}]"
    errors = [f"{where}.{f}" for f in REQUIRED_LINE_FIELDS if not _int(line.get(f)) and f != "name"]
    if not isinstance(line.get("name"), str) or not 1 <= len(line["name"]) <= 255:
        errors.append(f"{where}.name")
    discount = line.get("total_discount_amount", 0)
    if not _int(discount) or discount < 0:
        errors.append(f"{where}.total_discount_amount")
    if "type" in line and line["type"] not in LINE_TYPES:
        errors.append(f"{where}.type")
    if errors:
        return errors
    if line["quantity"] < 0 or line["quantity"] > MAX_AMOUNT:
        errors.append(f"{where}.quantity")
    if not 0 <= line["tax_rate"] <= 10000:
        return errors + [f"{where}.tax_rate"]
    if abs(line["unit_price"]) > MAX_AMOUNT:
        errors.append(f"{where}.unit_price")
    if abs(line["total_amount"]) > MAX_AMOUNT:
        errors.append(f"{where}.total_amount")
    if line["total_amount"] != line["quantity"] * line["unit_price"] - discount:
        errors.append(f"{where}.total_amount")
    expected_tax = line["total_amount"] - Fraction(line["total_amount"] * 10000, 10000 + line["tax_rate"])
    if abs(line["total_tax_amount"] - expected_tax) > 1:
        errors.append(f"{where}.total_tax_amount")
    return errors


def order_errors(order: Mapping[str, Any]) -> list[str]:
    """All broken rules of an order or a callback reply; [] when Klarna would accept it."""
    lines = order.get("order_lines")
    if not isinstance(lines, list):
        return ["order_lines"]
    errors = []
    if len(lines) > MAX_LINES:
        errors.append("order_lines")
    for i, line in enumerate(lines):
        errors += line_errors(line, i) if isinstance(line, Mapping) else [f"order_lines[{i}]"]
    for key in ("order_amount", "order_tax_amount"):
        if not _int(order.get(key)) or not 0 <= order[key] <= MAX_AMOUNT:
            errors.append(key)
    if errors:
        return errors
    if order["order_amount"] != sum(line["total_amount"] for line in lines):
        errors.append("order_amount")
    sales_tax = [line for line in lines if line.get("type") == "sales_tax"]
    if sales_tax:
        # US style: tax lives on its own line, every other line carries tax_rate 0.
        expected_tax = sum(line["total_amount"] for line in sales_tax)
        errors += [f"order_lines[{i}].tax_rate" for i, line in enumerate(lines) if line["tax_rate"] != 0]
    else:
        expected_tax = sum(line["total_tax_amount"] for line in lines)
    if order["order_tax_amount"] != expected_tax:
        errors.append("order_tax_amount")
    return errors


def shipping_option_errors(options: Any) -> list[str]:
    if not isinstance(options, list):
        return ["shipping_options"]
    errors = []
    for i, opt in enumerate(options):
        where = f"shipping_options[{i}]"
        if not isinstance(opt, Mapping):
            errors.append(where)
            continue
        for f in ("id", "name"):
            if not isinstance(opt.get(f), str) or not opt[f]:
                errors.append(f"{where}.{f}")
        for f in ("price", "tax_amount", "tax_rate"):
            if not _int(opt.get(f)) or opt[f] < 0:
                errors.append(f"{where}.{f}")
        if not any(e.startswith(where) for e in errors):
            expected = opt["price"] - Fraction(opt["price"] * 10000, 10000 + opt["tax_rate"])
            if abs(opt["tax_amount"] - expected) > 1:
                errors.append(f"{where}.tax_amount")
    return errors


def shipping_service_reply_errors(reply: Any) -> list[str]:
    """Rules for an address_update / shipping_option_update / country_change 200 reply."""
    if not isinstance(reply, Mapping):
        return ["body"]
    errors = order_errors(reply)
    currency = reply.get("purchase_currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        errors.append("purchase_currency")
    if "shipping_options" in reply:
        errors += shipping_option_errors(reply["shipping_options"])
    locale = reply.get("locale")
    if locale is not None and not (isinstance(locale, str) and len(locale) == 5 and locale[2] == "-"):
        errors.append("locale")
    return errors
