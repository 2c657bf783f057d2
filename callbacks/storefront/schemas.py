"""The storefront API's schemas (docs/design.md §7): what it accepts, what it answers, its errors.

flask-smorest loads requests and dumps replies with these, and builds /openapi.json from the
same classes, so the document cannot drift from the API. Requests RAISE on unknown fields (a
storefront typo is an error, not an ignored value); replies are documented open to new fields.
The state document's keys are `rules.state.SessionState`'s, checked by tests/test_storefront.py.
"""
from __future__ import annotations

import re

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate
from marshmallow.utils import missing

from callbacks.rules import attachment
from callbacks.rules.amounts import MAX_LINES
from callbacks.rules.state import EventType
from callbacks.store.notify import MAX_WAIT
from callbacks.web.schemas import COUNTRY, CURRENCY, LOCALE, NOT_AN_OBJECT, Int

MAX_EVENT_ID = 10**18 - 1  # at most 18 digits: more than any database id, less than int64
EVENT_ID = re.compile(r"^[0-9]{1,18}\Z")
BROWSER_TOKEN_PATTERN = r"^[0-9]{1,12}\.[A-Za-z0-9_-]{43}$"  # web/tokens.py: expiry.HMAC
# The shop's order number: Klarna prints it on the confirmation and in e-mails, and the support
# console shows it, so no control characters (C0, DEL, C1, the line and paragraph separators)
# and no direction marks, embeddings, overrides or isolates (U+200E/F, U+061C, U+202A-E,
# U+2066-9: "\u202eEVIL" reads backwards); Klarna's limit is 255.
MERCHANT_REFERENCE = [
    validate.Length(1, 255, error="Must be 1 to 255 characters."),
    # One pattern, not two: apispec documents only a field's first Regexp and warns about the
    # second on every start, which the quiet CLI must not print.
    validate.Regexp(r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
                    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*\Z",
                    error="Contains a control character, a lone surrogate or a text direction "
                          "mark or override."),
]


def MerchantReference():  # noqa: N802 - reads like a field class
    return fields.String(allow_none=True, validate=MERCHANT_REFERENCE, metadata={
        "description": "The shop's order number, sent to Klarna as merchant_reference1 (null "
                       "clears it; absent keeps it)."})


# -- requests ----------------------------------------------------------------------------------
class ApiSchema(Schema):
    error_messages = NOT_AN_OBJECT

    class Meta:
        unknown = RAISE


class CartItemSchema(ApiSchema):
    reference = fields.String(required=True, validate=validate.Length(1, 255))
    quantity = Int(required=True, validate=validate.Range(1, 10_000, error="Must be a whole number from 1 to 10000."))


class CartSchema(ApiSchema):
    items = fields.List(fields.Nested(CartItemSchema), required=True,
                        validate=validate.Length(max=MAX_LINES, error=f"At most {MAX_LINES} items."))
    coupon = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 64))
    merchant_reference1 = MerchantReference()


class CheckoutLoadSchema(ApiSchema):
    """POST …/checkout's optional body."""

    merchant_reference1 = MerchantReference()


class MarketChangeSchema(ApiSchema):
    country = fields.String(required=True, validate=COUNTRY)
    locale = fields.String(allow_none=True, load_default=None, validate=LOCALE,
                           metadata={"description": "Without it the market's locale is picked "
                                                    "as in docs/design.md §5.7."})

    @post_load
    def upper(self, data, **_):
        data["country"] = data["country"].upper()
        return data


def _emd_body(value: str) -> None:
    problem = attachment.body_problem(value)
    if problem:
        raise ValidationError(problem)


class AttachmentSchema(ApiSchema):
    """PUT …/attachment: the order's extra merchant data, as Klarna takes it."""

    content_type = fields.String(required=True, validate=validate.OneOf(
        [attachment.EMD_CONTENT_TYPE], error=f"Must be {attachment.EMD_CONTENT_TYPE}."),
        metadata={"description": "Klarna's content type for extra merchant data."})
    body = fields.String(required=True, validate=_emd_body, metadata={
        "description": "A JSON object serialised to a string, at most 100 kB (Klarna's EMD "
                       "packages, e.g. customer_account_info)."})


# -- query strings (unknown parameters are ignored there: webargs loads them with EXCLUDE) -----
class EventIdField(fields.Integer):
    """ASCII digits only: int() would also take "+5", " 5", "1_0" and "٥". Empty means 0."""

    def deserialize(self, value, attr=None, data=None, **kwargs):
        return super().deserialize(missing if value == "" else value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not EVENT_ID.match(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class WaitField(fields.Float):
    def deserialize(self, value, attr=None, data=None, **kwargs):
        return super().deserialize(missing if value == "" else value, attr, data, **kwargs)


class PollTokenQuery(Schema):
    token = fields.String(metadata={
        "description": "The session's browser token (from POST …/checkout or …/browser-token), "
                       "for the shopper's browser; also taken as `Authorization: Bearer`.",
        "pattern": BROWSER_TOKEN_PATTERN})


class FeedQuery(Schema):
    after = EventIdField(load_default=0, validate=validate.Range(0, MAX_EVENT_ID), error_messages={
        "invalid": f"Must be an event id: a whole number from 0 to {MAX_EVENT_ID}."}, metadata={
        "description": "Return events with an id greater than this (the last `last_id`)."})
    wait = WaitField(load_default=0.0, validate=validate.Range(min=0, error="Must be 0 or more."),
                     error_messages={"invalid": "Must be a number of seconds.",
                                     "special": "Must be a number of seconds."},
                     metadata={"maximum": MAX_WAIT, "description": (
                         f"Long-poll: wait up to this many seconds (at most {MAX_WAIT:g}) for the "
                         "first event; larger values are capped.")})

    @post_load
    def cap(self, data, **_):
        data["wait"] = min(data["wait"], MAX_WAIT)
        return data


class SessionFeedQuery(FeedQuery, PollTokenQuery):
    pass


# -- replies: documented open to new fields (additionalProperties is not closed) ---------------
class Reply(Schema):
    class Meta:
        unknown = EXCLUDE


def Str(**kw):  # noqa: N802 - reads like a field class
    return fields.String(required=True, **kw)


def Num(**kw):  # noqa: N802 - reads like a field class
    return fields.Integer(required=True, **kw)


def Opt(field):  # noqa: N802 - a required key whose value may be null
    field.required, field.allow_none = True, True
    return field


class ErrorSchema(Reply):
    """Our error body (docs/design.md §7.4), for every 4xx and 5xx of the API."""

    code = Num(validate=validate.Range(400, 599))
    status = Str()
    message = Str()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True)


class MarketRefSchema(Reply):
    country = Str(validate=COUNTRY)
    currency = Str(validate=CURRENCY)
    locale = Str()


class CartLineSchema(Reply):
    reference = Str()
    quantity = Num()


class Stored(fields.List):
    """A list of objects this service wrote itself (a state's cart items and order lines), sent
    as stored. Dumping a 1000-line cart item by item through the nested schema was 85 % of a
    state read's CPU (BENCHMARKS.md); the nested schema still documents the items in
    /openapi.json, and tests/test_storefront.py checks that both dumps agree."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else list(value)


class StateCartSchema(Reply):
    items = Stored(fields.Nested(CartLineSchema), required=True)
    coupon = Opt(fields.String())


class OrderLineReplySchema(Reply):
    type = Str()
    reference = Str()
    name = Str()
    quantity = Num()
    unit_price = Num()
    tax_rate = Num()
    total_amount = Num()
    total_discount_amount = Num()
    total_tax_amount = Num()


class OrderSchema(Reply):
    order_amount = Num()
    order_tax_amount = Num()
    order_lines = Stored(fields.Nested(OrderLineReplySchema), required=True)


class ShippingOptionSchema(Reply):
    id = Str()
    name = Str()
    price = Num()
    tax_amount = Num()
    tax_rate = Num()
    preselected = fields.Boolean(required=True)
    description = fields.String()
    shipping_method = fields.String()


class KlarnaRefSchema(Reply):
    order_id = Opt(fields.String())
    status = Opt(fields.String())
    synced_version = fields.Integer()
    fraud_status = fields.String(allow_none=True)
    acknowledged = fields.Boolean()
    account = fields.String(metadata={
        "description": "The shop file's Klarna account holding the order (docs/design.md §4.1); "
                       "absent: the environment's account."})


class ValidationResultSchema(Reply):
    result = Str(validate=validate.OneOf(["passed", "failed"]))
    order_id = Opt(fields.String())
    reason = fields.String()
    details = fields.List(fields.String())


class StateSchema(Reply):
    """The session's state (docs/design.md §7.2): rules.state.SessionState."""

    session = Str()
    version = Num(validate=validate.Range(min=0))
    cart = fields.Nested(StateCartSchema, required=True)
    market = fields.Nested(MarketRefSchema, required=True)
    purchase_country = Str()
    pending_purchase_country = Opt(fields.String())
    billing_country = Opt(fields.String())
    billing_region = Opt(fields.String())
    shipping_country = Opt(fields.String())
    shipping_region = Opt(fields.String())
    selected_shipping_option = Opt(fields.String())
    order = fields.Nested(OrderSchema, required=True)
    shipping_options = fields.List(fields.Nested(ShippingOptionSchema), required=True)
    klarna = fields.Nested(KlarnaRefSchema, required=True)
    merchant_reference1 = fields.String(allow_none=True)  # absent in states older than it
    validation = Opt(fields.Nested(ValidationResultSchema))
    updated_at = Opt(fields.String())


class BrowserTokenSchema(Reply):
    browser_token = Str(metadata={"pattern": BROWSER_TOKEN_PATTERN})
    expires_at = Str(metadata={"description": "When the token stops working (ISO 8601, UTC)."})


class CheckoutReplySchema(BrowserTokenSchema):
    status = Str(validate=validate.OneOf(["checkout_incomplete", "checkout_complete"]), metadata={
        "description": "checkout_incomplete: `html_snippet` is a buyable checkout. checkout_complete: "
                       "the session's order is paid; `html_snippet` is Klarna's confirmation, or "
                       "null once the Checkout API no longer renders one. A new purchase needs "
                       "a new session."})
    order_id = Str()
    html_snippet = Opt(fields.String())
    poll_token = Str(metadata={"description": "The browser token, under its first name."})
    state = fields.Nested(StateSchema, required=True)


class NewBrowserTokenSchema(BrowserTokenSchema):
    session = Str()


class AttachmentReplySchema(Reply):
    """PUT …/attachment's reply: what is stored, never the body itself."""

    session = Str()
    content_type = Str()
    size = Num(metadata={"description": "The body's length in bytes (UTF-8)."})
    version = Num(metadata={"description": "The session's version after the change."})


class EventSchema(Reply):
    """One event (docs/design.md §7.3); `data` holds old and new values, never personal data."""

    id = Num(validate=validate.Range(min=1))
    session = Str()
    type = Str(validate=validate.OneOf([t.value for t in EventType]))
    version = Num()
    at = Str()
    data = fields.Dict(required=True)


class EventsSchema(Reply):
    events = fields.List(fields.Nested(EventSchema), required=True)
    last_id = Num(validate=validate.Range(min=0))


class MarketSchema(Reply):
    country = Str(validate=COUNTRY)
    currency = Str(validate=CURRENCY)
    locales = fields.List(fields.String(), required=True)
    default_locale = Str()


class MarketsSchema(Reply):
    default_country = Str()
    markets = fields.List(fields.Nested(MarketSchema), required=True)


class HealthSchema(Reply):
    status = Str(validate=validate.Equal("ok"))
