"""One product as the importer, the API and the database see it, checked in one place.

The API takes the nested shape of the shop file (`prices = {SEK = 19900}`, `names = {sv =
"…"}`); CSV and JSON Lines take flat columns (`price_SEK`, `name_sv`), which are folded into
the nested shape first, so both go through the same schema and the same shop checks (a tax
class every VAT market can tax). Errors come back under the caller's own field names.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from callbacks.rules import ksa
from callbacks.rules.amounts import MAX_AMOUNT
from callbacks.rules.shop import PRODUCT_TYPES, Product, Shop
from callbacks.web.errors import flatten
from callbacks.web.schemas import NOT_AN_OBJECT

SKU_SHAPE = re.compile(r"[^\s\x00\ud800-\udfff]{1,255}")  # fullmatch: what a SKU can be
SKU = validate.Regexp(rf"^{SKU_SHAPE.pattern}\Z", error="A SKU is 1–255 characters without spaces.")
TEXT = validate.Regexp(r"^[^\x00-\x1f\x7f\ud800-\udfff]*\Z",
                       error="Contains a control character or a lone surrogate.")
PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f\ud800-\udfff]*\Z")
CURRENCY_KEY = re.compile(r"^[A-Z]{3}\Z")
LANGUAGE_KEY = re.compile(r"^[a-z]{2}\Z")
FLAT_PRICE = re.compile(r"^price_(.*)\Z")
FLAT_NAME = re.compile(r"^name_(.*)\Z")


class ProductSchema(Schema):
    error_messages = NOT_AN_OBJECT

    class Meta:
        unknown = RAISE

    reference = fields.String(required=True, validate=SKU)
    name = fields.String(required=True, validate=[validate.Length(1, 255), TEXT])
    # Plain dicts, their entries checked in `entries` below: marshmallow's per-key and
    # per-value fields were 60 % of an import's CPU (bench/catalog.py, BENCHMARKS.md).
    names = fields.Dict(load_default=dict)
    type = fields.String(load_default="physical", validate=validate.OneOf(sorted(PRODUCT_TYPES)))
    tax_class = fields.String(required=True, validate=[validate.Length(1, 64), TEXT])
    prices = fields.Dict(required=True)
    stock = fields.Integer(strict=True, allow_none=True, load_default=None,
                           validate=validate.Range(0, 10**9, error="Must be from 0 to 1000000000."))
    # Klarna's shipping_attributes (weight g, dimensions mm, tags), for the Shipping Assistant;
    # checked by the shop file's own rule (rules/ksa.py) in `entries`.
    shipping_attributes = fields.Raw(allow_none=True, load_default=None)

    @validates_schema(skip_on_field_errors=False)  # every bad field at once, not the first few
    def entries(self, data, **_):
        errors: dict[str, list[str]] = {}
        for currency, amount in (data.get("prices") or {}).items():
            if not isinstance(currency, str) or not CURRENCY_KEY.match(currency):
                errors[f"prices.{currency}"] = ["Not an ISO 4217 currency code like SEK."]
            elif (isinstance(amount, bool) or not isinstance(amount, int)
                  or not 1 <= amount <= MAX_AMOUNT):
                errors[f"prices.{currency}"] = [f"Must be a whole number from 1 to {MAX_AMOUNT} "
                                                "minor units."]
        if "prices" in data and not data["prices"]:
            errors["prices"] = ["The product has no price in any currency."]
        for language, name in (data.get("names") or {}).items():
            if not isinstance(language, str) or not LANGUAGE_KEY.match(language):
                errors[f"names.{language}"] = ["Not a two-letter language code like sv."]
            elif not isinstance(name, str) or not 1 <= len(name) <= 255 or not PRINTABLE.match(name):
                errors[f"names.{language}"] = ["Must be 1 to 255 characters without control "
                                               "characters."]
        attributes = data.get("shipping_attributes")
        if attributes is not None:
            try:
                data["shipping_attributes"] = ksa.parse_shipping_attributes(attributes, "shipping_attributes")
            except ksa.AttributesError as exc:
                errors[exc.key] = [exc.problem[:1].upper() + exc.problem[1:] + "."]
        if errors:
            raise ValidationError(errors)


_schema = ProductSchema()
_without_reference = ProductSchema(exclude=("reference",))


def check(shop: Shop, raw, *, reference: str | None = None) -> tuple[Product | None, dict]:
    """(product, {}) or (None, {field: [problems]}) for the nested shape. With `reference`
    (the API's URL) the body carries no reference of its own."""
    if not isinstance(raw, Mapping):
        return None, {"_schema": ["A product must be a JSON object."]}
    try:
        data = (_without_reference if reference is not None else _schema).load(raw)
    except ValidationError as exc:
        # marshmallow files a Dict's problems under .key / .value: name the entry instead
        errors = {re.sub(r"\.(key|value)$", "", k): v for k, v in flatten(exc.messages).items()}
        tax_class = raw.get("tax_class")
        untaxed = taxable_everywhere(shop, tax_class) if isinstance(tax_class, str) else []
        if untaxed and "tax_class" not in errors:  # the shop's rule too, not only the schema's
            errors["tax_class"] = untaxed
        return None, errors
    return checked(shop, data, reference=reference)


def checked(shop: Shop, data: Mapping, *, reference: str | None = None) -> tuple[Product | None, dict]:
    """The checks past the schema, for data it has loaded (the API's bodies): the SKU from the
    URL and the shop's tax rule."""
    if reference is not None:
        try:
            SKU(reference)
        except ValidationError as exc:
            return None, {"reference": exc.messages}
        data = {**data, "reference": reference}
    problems = taxable_everywhere(shop, data["tax_class"])
    if problems:
        return None, {"tax_class": problems}
    attributes = data.get("shipping_attributes")
    if attributes is not None and not isinstance(attributes, MappingProxyType):
        attributes = ksa.parse_shipping_attributes(attributes, "shipping_attributes")
    return Product(sku=data["reference"], name=data["name"], type=data["type"],
                   tax_class=data["tax_class"], prices=MappingProxyType(data["prices"]),
                   names=MappingProxyType(data["names"]), stock=data["stock"],
                   shipping_attributes=attributes), {}


def taxable_everywhere(shop: Shop, tax_class: str) -> list[str]:
    """The shop file's own rule: every VAT market has a rate for the product's tax class."""
    missing = [m.country for m in shop.markets.values()
               if m.prices_include_tax and tax_class not in m.tax]
    if missing:
        return [f"Tax class {tax_class!r} has no rate in {', '.join(missing)}."]
    return []


# -- the flat shape of CSV and JSON Lines -----------------------------------------------------
# shipping_attributes, flat: shipping_weight (g), shipping_height/_width/_length (mm) and
# shipping_tags (comma-separated in CSV, a list in JSON Lines).
FLAT_SHIPPING = {"shipping_weight": ("weight",), "shipping_height": ("dimensions", "height"),
                 "shipping_width": ("dimensions", "width"), "shipping_length": ("dimensions", "length"),
                 "shipping_tags": ("tags",)}
INTEGER_COLUMNS = ("stock", "shipping_weight", "shipping_height", "shipping_width", "shipping_length")


def nest(row: Mapping, *, from_csv: bool) -> tuple[dict, dict[str, str], dict]:
    """(nested, {nested field: flat column}, errors) for one flat row. CSV cells are text:
    empty optional cells are absent, prices and stock are parsed as whole numbers."""
    nested: dict = {}
    columns: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for column, value in row.items():
        if column is None:  # csv: more cells than the header has columns
            errors["_row"] = ["More cells than the header has columns."]
            continue
        if from_csv:
            value = value.strip() if isinstance(value, str) else value
            if value in ("", None):
                continue
        price, name = FLAT_PRICE.match(column), FLAT_NAME.match(column)
        if price:
            key, target = price.group(1), "prices"
        elif name:
            key, target = name.group(1), "names"
        else:
            key, target = None, column
        if from_csv and (price or column in INTEGER_COLUMNS):
            if not re.fullmatch(r"-?[0-9]{1,12}", value):
                errors[column] = ["Not a whole number."]
                continue
            value = int(value)
        if column in FLAT_SHIPPING:
            path = FLAT_SHIPPING[column]
            if column == "shipping_tags" and from_csv:
                value = [tag.strip() for tag in value.split(",") if tag.strip()]
            target_table = nested.setdefault("shipping_attributes", {})
            for part in path[:-1]:
                target_table = target_table.setdefault(part, {})
            target_table[path[-1]] = value
            columns["shipping_attributes." + ".".join(path)] = column
        elif key is None:
            nested[column] = value
            columns[column] = column
        else:
            nested.setdefault(target, {})[key] = value
            columns[f"{target}.{key}"] = column
    if "prices" not in nested and not any(FLAT_PRICE.match(c) for c in errors):
        errors["price_<CURRENCY>"] = ["No price column has a value (price_SEK, price_EUR, …)."]
    return nested, columns, errors


def check_flat(shop: Shop, row: Mapping, *, from_csv: bool) -> tuple[Product | None, dict]:
    """Every bad field of the row: the cells that could not be read (nest) and what the
    schema and the shop say of the others, each under its own column."""
    nested, columns, errors = nest(row, from_csv=from_csv)
    product, problems = check(shop, nested)
    price_named = any(FLAT_PRICE.match(c) or c == "price_<CURRENCY>" for c in errors)
    for key, messages in problems.items():
        column = columns.get(key, key)
        if column in errors or (key == "prices" and price_named):
            continue  # the cell's own problem is already named; or "prices" names no column
        errors[column] = messages
    return (product if not errors else None), errors
