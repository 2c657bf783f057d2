"""Klarna's Checkout API v3 `order` schema, as the sandbox enforces it on create and update.

The constraints are Klarna's published OpenAPI document's (`components.schemas.order` and what
it references: `order_line`, `shipping_option`, `merchant_urls`, `options`, `customer`,
`address`, `payment_provider`, `discount_line`, …; docs/klarna.md §4), written down here as
JSON Schema so that an order the sandbox accepts is one Klarna accepts. Where the document says
a rule in words only ("must be https", "Non-negative", "possible values: …", "1-8 characters"),
the rule is here too. Klarna's amount arithmetic (line totals, taxes within ±1, order totals)
is not schema: `callbacks.rules.amounts` checks it, and `order_errors` runs both.

Two local liberties, both of the sandbox's own making, not Klarna's: a URL Klarna wants on
https may be http on a loopback host (127.0.0.1, ::1, localhost), which is how kco-sync runs on a
laptop; and SANDBOX_ALLOW_HTTP_CALLBACKS lets any http URL through.

Every violation becomes Klarna's `Bad value: <field>` with the field's path, e.g.
`order_lines[3].quantity_unit`, `options.color_button`, `merchant_urls.push`.
"""
from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, validators

from callbacks.rules import amounts

MAX_AMOUNT = amounts.MAX_AMOUNT
COUNTRY = re.compile(r"[A-Za-z]{2}")  # ISO 3166 alpha-2, either case


# -- building blocks ---------------------------------------------------------------------------
def text(max_length: int | None = None, min_length: int = 0) -> dict:
    spec: dict[str, Any] = {"type": "string"}
    if min_length:
        spec["minLength"] = min_length
    if max_length is not None:
        spec["maxLength"] = max_length
    return spec


def obj(properties: Mapping, required: Iterable[str] = ()) -> dict:
    """Unknown properties are let through: Klarna ignores what it does not know."""
    spec: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        spec["required"] = list(required)
    return spec


def array(items: Mapping, max_items: int | None = None, min_items: int = 0) -> dict:
    spec: dict[str, Any] = {"type": "array", "items": dict(items)}
    if min_items:
        spec["minItems"] = min_items
    if max_items is not None:
        spec["maxItems"] = max_items
    return spec


def same(spec: Mapping, *names: str) -> dict:
    return dict.fromkeys(names, spec)


def one_of(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


STRING = text()
BOOLEAN = {"type": "boolean"}
INTEGER = {"type": "integer"}
NON_NEGATIVE = {"type": "integer", "minimum": 0}
TAX_RATE = {"type": "integer", "minimum": 0, "maximum": 10000}    # 2500 = 25 %
COUNTRY_CODE = {"type": "string", "pattern": r"^[A-Za-z]{2}\Z"}
COLOR = {"type": "string", "pattern": r"^#[A-Fa-f0-9]{6}\Z"}         # options.color_*
MERCHANT_URL = {**text(2000), "format": "url"}
HTTPS_URL = {**text(2000), "format": "https-url"}                  # "(must be https, …)"

# -- Klarna's schemas --------------------------------------------------------------------------
ADDRESS = obj({
    **same(STRING,
        "given_name", "family_name", "email", "title", "street_address", "street_address2",
        "street_name", "street_number", "house_extension", "postal_code", "city", "region",
        "phone", "care_of", "organization_name", "attention"),
    "country": COUNTRY_CODE,
})

CUSTOMER = obj({
    "type": one_of("person", "organization"),
    "gender": one_of("male", "female"),
    "date_of_birth": {"type": "string", "format": "date"},          # yyyy-mm-dd
    "organization_registration_id": STRING,
    "vat_id": STRING,
})

ORDER_LINE = obj({
    "type": one_of(*sorted(amounts.LINE_TYPES)),
    "reference": text(255),
    "name": text(255, 1),
    "quantity": NON_NEGATIVE,
    "quantity_unit": text(8, 1),
    "unit_price": {"type": "integer", "maximum": MAX_AMOUNT},
    "tax_rate": TAX_RATE,
    "total_amount": {"type": "integer", "maximum": MAX_AMOUNT},
    "total_discount_amount": NON_NEGATIVE,
    "total_tax_amount": INTEGER,
    "merchant_data": text(1024),
    "product_url": text(1024),
    "image_url": text(1024),
    "product_identifiers": obj({
        "brand": text(70), "color": text(64), "category_path": text(750),
        "global_trade_item_number": text(50), "manufacturer_part_number": text(70),
        "size": text(64),
    }),
    "shipping_attributes": obj({
        "weight": NON_NEGATIVE,
        "dimensions": obj({"height": NON_NEGATIVE, "width": NON_NEGATIVE, "length": NON_NEGATIVE}),
        "tags": array(STRING),
    }),
    "subscription": obj({
        "name": STRING,
        "interval": one_of("DAY", "WEEK", "MONTH", "YEAR"),
        "interval_count": {"type": "integer", "minimum": 1},
    }, required=("interval", "interval_count")),
}, required=("name", "quantity", "tax_rate", "total_amount", "total_tax_amount", "unit_price"))

DISCOUNT_LINE = obj({
    "name": text(255, 1),
    "quantity": NON_NEGATIVE,
    "unit_price": {"type": "integer", "maximum": 0},
    "tax_rate": TAX_RATE,
    "total_amount": {"type": "integer", "maximum": 0},
    "total_tax_amount": INTEGER,
    "reference": text(255),
    "merchant_data": text(1024),
}, required=("name", "quantity", "tax_rate", "total_amount", "total_tax_amount", "unit_price"))

SHIPPING_OPTION = obj({
    "id": STRING,
    "name": text(255, 1),
    "description": STRING,
    "promo": STRING,
    "price": INTEGER,
    "preselected": BOOLEAN,
    "tax_amount": INTEGER,
    "tax_rate": TAX_RATE,
    "shipping_method": one_of("PickUpStore", "Home", "BoxReg", "BoxUnreg", "PickUpPoint", "Own",
                              "Postal", "DHLPackstation", "Digital"),
    "delivery_details": obj({
        "carrier": STRING, "class": STRING,
        "product": obj({"name": STRING, "identifier": STRING}),
        "timeslot": obj({"id": STRING, "start": STRING, "end": STRING}),
        "pickup_location": obj({"id": STRING, "name": STRING, "address": ADDRESS}),
    }),
    "tms_reference": STRING,
    "selected_addons": array(obj({"type": STRING, "price": INTEGER, "external_id": STRING,
                                  "user_input": STRING})),
}, required=("id", "name", "price", "tax_amount", "tax_rate"))

MERCHANT_URLS = obj({
    **same(MERCHANT_URL, "terms", "checkout", "confirmation", "push", "notification",
                                       "cancellation_terms"),
    **same(HTTPS_URL, "validation", "shipping_option_update", "address_update",
                                    "country_change"),
}, required=("terms", "checkout", "confirmation", "push"))

CHECKBOX = obj({"text": text(1000), "checked": BOOLEAN, "required": BOOLEAN},
               required=("checked", "required", "text"))

OPTIONS = obj({
    **same(BOOLEAN,
        "require_validate_callback_success", "vat_removed", "allow_separate_shipping_address",
        "date_of_birth_mandatory", "title_mandatory", "national_identification_number_mandatory",
        "phone_mandatory", "show_subtotal_detail", "verify_national_identification_number",
        "auto_capture", "require_client_validation", "enable_discount_module",
        "show_vat_registration_number_field"),
    **same(COLOR, "color_button", "color_button_text", "color_checkbox",
                                "color_checkbox_checkmark", "color_header", "color_link"),
    "acquiring_channel": one_of("ECOMMERCE", "MOTO", "IN_STORE", "TELESALES"),
    "shipping_details": text(255),
    "additional_merchant_terms": STRING,
    "radius_border": STRING,
    "allowed_customer_types": array(one_of("person", "organization"), max_items=2, min_items=1),
    "additional_checkbox": CHECKBOX,
    "additional_checkboxes": array(obj({**CHECKBOX["properties"], "id": STRING},
                                       required=("checked", "id", "required", "text"))),
})

PAYMENT_PROVIDER = obj({
    "name": text(255),
    "fee": INTEGER,
    "description": text(500),
    "countries": array(COUNTRY_CODE),
    "label": one_of("continue", "complete"),
    "redirect_url": {**HTTPS_URL, "minLength": 7},
    "image_url": HTTPS_URL,
}, required=("name", "redirect_url"))

ORDER = obj({
    "purchase_country": COUNTRY_CODE,
    "purchase_currency": {"type": "string", "pattern": r"^[A-Za-z]{3}\Z"},
    "locale": {"type": "string", "pattern": r"^[A-Za-z]{2}(?:-[A-Za-z]{2})*\Z"},
    "billing_address": ADDRESS,
    "shipping_address": ADDRESS,
    "order_amount": {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT},
    "order_tax_amount": {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT},
    "order_lines": array(ORDER_LINE, max_items=amounts.MAX_LINES),
    "customer": CUSTOMER,
    "merchant_urls": MERCHANT_URLS,
    "merchant_reference1": text(255),
    "merchant_reference2": text(255),
    "options": OPTIONS,
    # Extra merchant data: "the content of the extra merchant data … serialised to JSON" [S21].
    "attachment": obj({"body": {"type": "string", "format": "json-text"}, "content_type": text(min_length=1)},
                      required=("body", "content_type")),
    "external_payment_methods": array(PAYMENT_PROVIDER),
    "external_checkouts": array(PAYMENT_PROVIDER),
    "shipping_countries": array(COUNTRY_CODE),
    "billing_countries": array(COUNTRY_CODE),
    "shipping_options": array(SHIPPING_OPTION),
    "merchant_data": text(6000),
    "gui": obj({"options": array(STRING)}),
    "merchant_requested": obj({"additional_checkbox": BOOLEAN,
                               "additional_checkboxes": array(obj({"id": STRING, "checked": BOOLEAN}))}),
    "recurring": BOOLEAN,
    "tags": array(STRING),
    "discount_lines": array(DISCOUNT_LINE),
}, required=("purchase_country", "purchase_currency", "locale", "order_amount",
             "order_tax_amount", "order_lines", "merchant_urls"))


# -- checking ----------------------------------------------------------------------------------
def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "type" says what is wrong
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return len(value) == 10 and date.fromisoformat(value) is not None
    except ValueError:
        return False


def _is_json_text(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _strict_integer(checker, value) -> bool:
    """JSON Schema counts 2.0 as an integer and True as none; Klarna's minor units are whole
    numbers written as such, like the amount rules want them."""
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer))


@cache
def _validator(allow_http: bool) -> Any:
    formats = FormatChecker(formats=())
    formats.checks("url")(_is_url)
    formats.checks("date")(_is_date)
    formats.checks("json-text")(_is_json_text)

    @formats.checks("https-url")
    def _https(value: object) -> bool:
        if not isinstance(value, str) or not _is_url(value):
            return _is_url(value)
        parts = urlsplit(value)
        return parts.scheme == "https" or allow_http or _loopback(parts.hostname)

    return _Validator(ORDER, format_checker=formats)


def field_name(path: Iterable[Any]) -> str:
    """('order_lines', 3, 'reference') → 'order_lines[3].reference', Klarna's way."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def schema_errors(order: Mapping, *, allow_http_callbacks: bool = False) -> list[str]:
    """The fields of `order` that break Klarna's schema, each once."""
    found: list[str] = []
    for error in _validator(allow_http_callbacks).iter_errors(order):
        path = list(error.absolute_path)
        if error.validator == "required":
            found += [field_name([*path, name]) for name in error.validator_value
                      if name not in error.instance]
        else:
            found.append(field_name(path))
    return list(dict.fromkeys(found))


def fallback_errors(order: Mapping) -> list[str]:
    """An order without a shipping_option_update URL has Klarna put its shipping options in the
    cart itself — the Shipping Assistant's fallback (docs/klarna.md §4.6): each one must be
    one Klarna can pick by its id, and at most one preselected."""
    urls = order.get("merchant_urls")
    options = order.get("shipping_options")
    if not isinstance(urls, Mapping) or "shipping_option_update" in urls or not isinstance(options, list):
        return []
    errors, seen = [], set()
    for i, option in enumerate(options):
        if isinstance(option, Mapping) and isinstance(option.get("id"), str):
            if option["id"] in seen:
                errors.append(f"shipping_options[{i}].id")
            seen.add(option["id"])
    if sum(1 for o in options if isinstance(o, Mapping) and o.get("preselected") is True) > 1:
        errors.append("shipping_options")
    return errors


def order_errors(order: Mapping, *, allow_http_callbacks: bool = False) -> list[str]:
    """Every field Klarna would answer `Bad value: <field>` for; [] when the order is fine.
    `order` is the whole order (for an update: the stored one with the update applied)."""
    errors = schema_errors(order, allow_http_callbacks=allow_http_callbacks)
    if isinstance(order.get("shipping_options"), list):
        errors += amounts.shipping_option_errors(order["shipping_options"])
        errors += fallback_errors(order)
    errors += amounts.order_errors(order)  # line and order totals, taxes within ±1
    return list(dict.fromkeys(errors))
