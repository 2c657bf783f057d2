"""A market's Klarna checkout `options` (docs/design.md §4.2): checked when the shop file loads.

Klarna's order `options` decide what the checkout iframe asks of the shopper: business
customers (`allowed_customer_types`), a separate shipping address, mandatory date of birth,
national id, title or phone, extra checkboxes, colours (docs/klarna.md §4.5). A shop file names
them per market in `[markets.<C>.options]`, in Klarna's own words, and only the keys and value
types Klarna's published `options` schema documents are accepted: Klarna answers an order with
an unknown colour format or a string where it wants a boolean with `400 BAD_VALUE`, and that
would surface as a shopper who cannot pay, hours after start-up. An unknown key is refused too,
since a misspelt `allow_separate_shiping_address` would otherwise be sent, ignored by Klarna,
and silently leave the option off.

Pure: no Flask, no database; shop.py turns an OptionsError into its ShopFileError, naming the
file. The sandbox (sandbox/order_schema.py) keeps its own, independent copy of Klarna's schema;
tests/test_shop_options.py holds the two to the same set of keys.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

# Klarna's `options` schema (docs/klarna.md §4.5, S21), by value type.
BOOLEAN = frozenset({
    "require_validate_callback_success", "vat_removed", "allow_separate_shipping_address",
    "date_of_birth_mandatory", "title_mandatory", "national_identification_number_mandatory",
    "phone_mandatory", "show_subtotal_detail", "verify_national_identification_number",
    "auto_capture", "require_client_validation", "enable_discount_module",
    "show_vat_registration_number_field",
})
COLOR = frozenset({"color_button", "color_button_text", "color_checkbox",
                   "color_checkbox_checkmark", "color_header", "color_link"})
TEXT = {"shipping_details": 255, "additional_merchant_terms": None, "radius_border": None}
ACQUIRING_CHANNELS = ("ECOMMERCE", "MOTO", "IN_STORE", "TELESALES")
CUSTOMER_TYPES = ("person", "organization")
CHECKBOX_TEXT = 1000
KNOWN = frozenset(BOOLEAN | COLOR | set(TEXT) | {
    "acquiring_channel", "allowed_customer_types", "additional_checkbox", "additional_checkboxes"})
COLOR_RE = re.compile(r"#[A-Fa-f0-9]{6}")

# What kco-sync itself needs of every order, whatever the shop file says: a validation it cannot
# answer must fail the purchase, not approve an unchecked order (docs/design.md §10).
REQUIRED = MappingProxyType({"require_validate_callback_success": True})
# Klarna's default of allow_separate_shipping_address: false, except for purchase country DE
# (docs/klarna.md §4.5).
SEPARATE_SHIPPING_BY_DEFAULT = frozenset({"DE"})


class OptionsError(ValueError):
    """An option Klarna would not take: `key` is the dotted key, `problem` says why."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


def parse(raw: Any, key: str) -> Mapping[str, Any]:
    """The options of `[markets.<C>.options]` (`key` is that dotted key), frozen; raises
    OptionsError naming the first key that is unknown or of the wrong type."""
    if not isinstance(raw, dict):
        raise OptionsError(key, "must be a table of Klarna's checkout options")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{key}.{name}"
        if name not in KNOWN:
            raise OptionsError(where, f"unknown key (Klarna's options are {', '.join(sorted(KNOWN))})")
        out[name] = _value(name, value, where)
    return MappingProxyType(out)


def _value(name: str, value: Any, where: str) -> Any:
    if name in BOOLEAN:
        if not isinstance(value, bool):
            raise OptionsError(where, f"{value!r} is not true or false")
        if name == "require_validate_callback_success" and value is False:
            raise OptionsError(where, "kco-sync always sends true: a validation it cannot answer "
                                      "must fail the purchase rather than approve it unchecked")
        return value
    if name in COLOR:
        if not isinstance(value, str) or not COLOR_RE.fullmatch(value):
            raise OptionsError(where, f"{value!r} is not a CSS hex colour like \"#FF9900\"")
        return value
    if name in TEXT:
        return _text(value, where, TEXT[name])
    if name == "acquiring_channel":
        if value not in ACQUIRING_CHANNELS:
            raise OptionsError(where, f"{value!r} is not one of {', '.join(ACQUIRING_CHANNELS)}")
        return value
    if name == "allowed_customer_types":
        return _customer_types(value, where)
    if name == "additional_checkbox":
        return _checkbox(value, where, with_id=False)
    # additional_checkboxes
    if not isinstance(value, list) or not value:
        raise OptionsError(where, "must be a non-empty array of tables "
                                  f"([[{where}]] with id, text, checked, required)")
    boxes = tuple(_checkbox(box, f"{where}[{i}]", with_id=True) for i, box in enumerate(value))
    ids = [box["id"] for box in boxes]
    for i, box_id in enumerate(ids):
        if ids.index(box_id) != i:
            raise OptionsError(f"{where}[{i}].id", f"{box_id!r} is used twice: Klarna reports "
                                                   "each box's answer by its id")
    return boxes


def _text(value: Any, where: str, max_length: int | None) -> str:
    if not isinstance(value, str):
        raise OptionsError(where, f"{value!r} is not a string")
    if max_length is not None and len(value) > max_length:
        raise OptionsError(where, f"is {len(value)} characters; Klarna takes at most {max_length}")
    return value


def _customer_types(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= len(CUSTOMER_TYPES):
        raise OptionsError(where, 'must be a list of one or two of "person" and "organization"')
    for i, kind in enumerate(value):
        if kind not in CUSTOMER_TYPES:
            raise OptionsError(f"{where}[{i}]", f"{kind!r} is not \"person\" or \"organization\"")
    if len(set(value)) != len(value):
        raise OptionsError(where, f"names {value[0]!r} twice")
    return tuple(value)


def _checkbox(value: Any, where: str, *, with_id: bool) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise OptionsError(where, "must be a table with text, checked and required")
    keys = {"text", "checked", "required"} | ({"id"} if with_id else set())
    for name in value:
        if name not in keys:
            raise OptionsError(f"{where}.{name}", f"unknown key (expected {', '.join(sorted(keys))})")
    for name in sorted(keys):
        if name not in value:
            raise OptionsError(f"{where}.{name}", "is required by Klarna")
    box: dict[str, Any] = {"text": _text(value["text"], f"{where}.text", CHECKBOX_TEXT)}
    for flag in ("checked", "required"):
        if not isinstance(value[flag], bool):
            raise OptionsError(f"{where}.{flag}", f"{value[flag]!r} is not true or false")
        box[flag] = value[flag]
    if with_id:
        if not isinstance(value["id"], str) or not value["id"].strip():
            raise OptionsError(f"{where}.id", "must be a non-empty string")
        box["id"] = value["id"]
    return MappingProxyType(box)


# -- using them --------------------------------------------------------------------------------
def thawed(value: Any) -> Any:
    """A frozen option (tuples, mapping proxies) as plain JSON-ready lists and dicts."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [thawed(v) for v in value]
    return value


def order_options(market_options: Mapping[str, Any]) -> dict[str, Any]:
    """The `options` of the order sent to Klarna for a market: the shop file's, and what
    kco-sync needs of every order."""
    return {**thawed(market_options), **REQUIRED}


def allows_organization(market_options: Mapping[str, Any]) -> bool:
    """Whether the market sells to businesses (Klarna's B2B flow)."""
    return "organization" in market_options.get("allowed_customer_types", ())


def separate_shipping_address(market_options: Mapping[str, Any], purchase_country: str) -> bool:
    """Whether Klarna lets the shopper give a shipping address of its own. Without it Klarna
    makes the shipping address the billing address (docs/klarna.md §4.5), so the shipping
    country's tax rules (docs/design.md §5) only ever apply where this is true."""
    default = purchase_country.upper() in SEPARATE_SHIPPING_BY_DEFAULT
    return bool(market_options.get("allow_separate_shipping_address", default))
