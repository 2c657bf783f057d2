"""Boundary schemas: what Klarna sends us and what the storefront sends us.

Klarna keeps adding fields to its bodies, so Klarna schemas EXCLUDE what they do not know, and
they only load what a decision needs: names, e-mails, phones and street addresses are never
loaded, so they cannot leak into the state or the event feed. Our own API RAISEs on unknown
fields, so that a storefront typo is an error rather than a silently ignored value.
"""
from __future__ import annotations

import re

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate

SESSION_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}\Z")  # \Z: "$" would accept a trailing newline
COUNTRY = validate.Regexp(r"^[A-Za-z]{2}\Z", error="Not an ISO 3166 alpha-2 country code.")
CURRENCY = validate.Regexp(r"^[A-Za-z]{3}\Z", error="Not an ISO 4217 currency code.")
LOCALE = validate.Regexp(r"^[A-Za-z]{2}(?:-[A-Za-z]{2})*\Z", error="Not an RFC 1766 locale.")
MAX = 100_000_000
# Text that lands in a text column (an order id): PostgreSQL refuses NUL and no driver can
# encode a lone surrogate (a JSON "\ud800"), so such a value is a parse error, not a 500.
STORABLE = validate.Regexp(r"^[^\x00\ud800-\udfff]*\Z", error="Contains a NUL or a lone surrogate.")
ORDER_ID = re.compile(r"^[^\x00\ud800-\udfff]{1,255}\Z")  # the order_id in a callback URL


def Int(**kw):  # noqa: N802 - reads like a field class
    """Integers only: no floats, strings or booleans, as in Klarna's int64 fields."""
    return fields.Integer(strict=True, **kw)


class KlarnaSchema(Schema):
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


class OrderLineSchema(KlarnaSchema):
    type = fields.String(allow_none=True, load_default=None)
    reference = fields.String(allow_none=True, validate=validate.Length(max=255), load_default=None)
    name = fields.String(allow_none=True)
    quantity = Int(required=True, validate=validate.Range(0, MAX))
    unit_price = Int(load_default=0)
    tax_rate = Int(load_default=0, validate=validate.Range(0, 10000))
    total_amount = Int(load_default=0)
    total_discount_amount = Int(load_default=0)
    total_tax_amount = Int(load_default=0)


class SelectedShippingOptionSchema(KlarnaSchema):
    id = fields.String(required=True, validate=validate.Length(1, 255))


class ShippingServiceRequestSchema(KlarnaSchema):
    """address_update, shipping_option_update and country_change (kco-reference §2.3)."""

    order_amount = Int(required=True, validate=validate.Range(0, MAX))
    order_tax_amount = Int(required=True, validate=validate.Range(0, MAX))
    order_lines = fields.List(fields.Nested(OrderLineSchema), required=True,
                              validate=validate.Length(max=1000))
    purchase_currency = fields.String(required=True, validate=CURRENCY)
    locale = fields.String(allow_none=True, validate=LOCALE)
    billing_address = fields.Nested(AddressSchema, allow_none=True)
    shipping_address = fields.Nested(AddressSchema, allow_none=True)
    selected_shipping_option = fields.Nested(SelectedShippingOptionSchema, allow_none=True)

    @post_load
    def upper(self, data, **_):
        data["purchase_currency"] = data["purchase_currency"].upper()
        return data


class ValidationRequestSchema(ShippingServiceRequestSchema):
    """The full order, as Read Order returns it (kco-reference §2.2)."""

    order_id = fields.String(allow_none=True, validate=[validate.Length(max=255), STORABLE])
    purchase_country = fields.String(allow_none=True, validate=COUNTRY)
    status = fields.String(allow_none=True)


class NotificationSchema(KlarnaSchema):
    order_id = fields.String(required=True, validate=[validate.Length(1, 255), STORABLE])
    event_type = fields.String(required=True, validate=validate.Length(1, 100))


# -- our own API ---------------------------------------------------------------------------
class ApiSchema(Schema):
    class Meta:
        unknown = RAISE


class CartItemSchema(ApiSchema):
    reference = fields.String(required=True, validate=validate.Length(1, 255))
    quantity = Int(required=True, validate=validate.Range(1, 10_000, error="Must be a whole number from 1 to 10000."))


class CartSchema(ApiSchema):
    items = fields.List(fields.Nested(CartItemSchema), required=True,
                        validate=validate.Length(max=1000, error="At most 1000 items."))
    coupon = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 64))


class MarketChangeSchema(ApiSchema):
    country = fields.String(required=True, validate=COUNTRY)
    locale = fields.String(allow_none=True, load_default=None, validate=LOCALE)

    @post_load
    def upper(self, data, **_):
        data["country"] = data["country"].upper()
        return data


def load(schema: Schema, data) -> dict:
    """`schema.load`, but a body that is not a JSON object is a field error too."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["The body must be a JSON object."]})
    return schema.load(data)


shipping_service_request = ShippingServiceRequestSchema()
validation_request = ValidationRequestSchema()
notification = NotificationSchema()
cart = CartSchema()
market_change = MarketChangeSchema()
