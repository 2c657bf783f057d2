"""What Klarna sends us (docs/klarna.md): the callback bodies, loaded by callbacks/klarna/views.py.

Klarna keeps adding fields to its bodies, so these schemas EXCLUDE what they do not know, and
they only load what a decision needs: names, e-mails, phones and street addresses are never
loaded, so they cannot leak into the state or the event feed.
"""
from __future__ import annotations

import re
from typing import Any, cast

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from callbacks.rules.amounts import MAX_LINES
from callbacks.web.schemas import COUNTRY, CURRENCY, LOCALE, NOT_AN_OBJECT, Int

MAX = 100_000_000
# A line's bounds, shared by the line schemas and their fast path (_plain_goods_line, _plain_line).
MAX_REFERENCE = 255
MAX_TAX_RATE = 10000  # 100.00 %
# An order id lands in a text column and in log lines: PostgreSQL refuses NUL, no driver can
# encode a lone surrogate (a JSON "\ud800"), and a line break or other control character would
# let a caller forge log lines (`order_id=x%0AWARNING:fake`). Klarna's ids are UUIDs.
_ID_CHARS = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]"
STORABLE = validate.Regexp(rf"^{_ID_CHARS}*\Z",
                           error="Contains a control character, a line break or a lone surrogate.")
ORDER_ID = re.compile(rf"^{_ID_CHARS}{{1,255}}\Z")  # the order_id in a callback URL


class KlarnaSchema(Schema):
    error_messages = NOT_AN_OBJECT

    class Meta:
        unknown = EXCLUDE


class AddressSchema(KlarnaSchema):
    country = fields.String(validate=COUNTRY, allow_none=True)
    region = fields.String(allow_none=True, validate=validate.Length(max=100))

    @post_load
    def upper(self, data, **_):
        for key in ("country", "region"):
            if data.get(key):
                data[key] = data[key].strip().upper()
        return data


class GoodsLineSchema(KlarnaSchema):
    """What building a session from Klarna's lines uses (rules/checkout.items_from_lines)."""

    type = fields.String(allow_none=True, load_default=None)
    reference = fields.String(allow_none=True, validate=validate.Length(max=MAX_REFERENCE),
                              load_default=None)
    quantity = Int(required=True, validate=validate.Range(0, MAX))


class OrderLineSchema(GoodsLineSchema):
    """What validation compares (rules/compare.py): the amounts as well."""

    unit_price = Int(load_default=0)
    tax_rate = Int(load_default=0, validate=validate.Range(0, MAX_TAX_RATE))
    total_amount = Int(load_default=0)
    total_discount_amount = Int(load_default=0)
    total_tax_amount = Int(load_default=0)


class LineObjects(fields.Field):
    """Klarna's order_lines, checked for shape only: a list of at most 1000 JSON objects.

    The shipping-service callbacks price the session's own cart and never read Klarna's copy of
    the lines, except to build a session they have not seen (goods_lines below). Loading all
    1000 lines field by field was over half of a 1000-line callback's CPU (BENCHMARKS.md), so
    the lines are loaded only when they are used.
    """

    default_error_messages = {"invalid": f"Must be a list of at most {MAX_LINES} JSON objects."}

    def _deserialize(self, value, attr, data, **kwargs):
        if (not isinstance(value, list) or len(value) > MAX_LINES
                or not all(type(line) is dict for line in value)):
            raise self.make_error("invalid")
        return value


class SelectedShippingOptionSchema(KlarnaSchema):
    id = fields.String(required=True, validate=validate.Length(1, 255))


class ShippingServiceRequestSchema(KlarnaSchema):
    """address_update, shipping_option_update and country_change (docs/klarna.md §2.3)."""

    order_amount = Int(required=True, validate=validate.Range(0, MAX))
    order_tax_amount = Int(required=True, validate=validate.Range(0, MAX))
    order_lines = LineObjects(required=True)  # loaded by goods_lines() when a decision needs them
    purchase_currency = fields.String(required=True, validate=CURRENCY)
    locale = fields.String(allow_none=True, validate=LOCALE)
    billing_address = fields.Nested(AddressSchema, allow_none=True)
    shipping_address = fields.Nested(AddressSchema, allow_none=True)
    selected_shipping_option = fields.Nested(SelectedShippingOptionSchema, allow_none=True)
    order_id = fields.String(allow_none=True, validate=[validate.Length(max=255), STORABLE])

    @post_load
    def upper(self, data, **_):
        data["purchase_currency"] = data["purchase_currency"].upper()
        return data


class ComparedLines(fields.List):
    """validation's order_lines, every line loaded by OrderLineSchema: the comparison reads
    them all (rules/compare.py).

    A line that already is what the schema would load (each key the schema loads absent or of
    its exact type and in its range) is projected onto those keys directly: marshmallow's
    field-by-field machinery was three quarters of a 1000-line validation (BENCHMARKS.md). If
    any line is not, the whole list goes through the schema, which also words the errors.
    tests/test_klarna_schemas.py holds both ways to the same result."""

    def __init__(self, **kwargs):
        super().__init__(fields.Nested(OrderLineSchema), validate=validate.Length(max=MAX_LINES), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is list and len(value) <= MAX_LINES:
            plain = [_plain_line(line) for line in value]
            if None not in plain:
                return plain
        return super()._deserialize(value, attr, data, **kwargs)


_LINE_INTS = ("unit_price", "total_amount", "total_discount_amount", "total_tax_amount")


def _plain_goods_line(line: object) -> dict | None:
    """GoodsLineSchema().load(line) for a line that needs no conversion and has no error, else
    None. Exact types, as the schema's strict Int and String want them (a bool is no int)."""
    if type(line) is not dict:
        return None
    quantity, kind, reference = line.get("quantity"), line.get("type"), line.get("reference")
    if type(quantity) is not int or not 0 <= quantity <= MAX \
            or (kind is not None and type(kind) is not str) \
            or (reference is not None and (type(reference) is not str or len(reference) > MAX_REFERENCE)):
        return None
    return {"type": kind, "reference": reference, "quantity": quantity}


def _plain_line(line: Any) -> dict | None:
    """OrderLineSchema().load(line), likewise: the goods line's keys and the amounts."""
    out = _plain_goods_line(line)
    if out is None:
        return None
    tax_rate = line.get("tax_rate", 0)
    if type(tax_rate) is not int or not 0 <= tax_rate <= MAX_TAX_RATE:
        return None
    out["tax_rate"] = tax_rate
    for key in _LINE_INTS:
        amount = line.get(key, 0)
        if type(amount) is not int:
            return None
        out[key] = amount
    return out


class ValidationRequestSchema(ShippingServiceRequestSchema):
    """The full order, as Read Order returns it (docs/klarna.md §2.2). Every line is compared,
    so every line is loaded."""

    order_lines = ComparedLines(required=True)  # type: ignore[assignment]  # every line, compared
    order_id = fields.String(allow_none=True, validate=[validate.Length(max=255), STORABLE])
    purchase_country = fields.String(allow_none=True, validate=COUNTRY)
    status = fields.String(allow_none=True)


class NotificationSchema(KlarnaSchema):
    order_id = fields.String(required=True, validate=[validate.Length(1, 255), STORABLE])
    event_type = fields.String(required=True, validate=validate.Length(1, 100))


class LinesError(ValidationError):
    """A line of Klarna's order_lines that goods_lines() refused, keyed as in the body."""


def goods_lines(order_lines: list[dict]) -> list[dict]:
    """Klarna's lines, loaded for building a session from them (an unknown session id); as
    ComparedLines does, lines that need no conversion skip marshmallow's field machinery."""
    plain = [_plain_goods_line(line) for line in order_lines]
    if None not in plain:
        return cast(list[dict], plain)
    try:
        return _goods_lines.load(order_lines)
    except ValidationError as exc:
        raise LinesError({"order_lines": exc.messages}) from None


_goods_lines = GoodsLineSchema(many=True)
shipping_service_request = ShippingServiceRequestSchema()
validation_request = ValidationRequestSchema()
notification = NotificationSchema()
