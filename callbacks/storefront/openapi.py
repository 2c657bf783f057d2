"""The storefront API's OpenAPI 3.1 document (DESIGN.md §7), served at `GET /openapi.json`.

Request bodies come from the very marshmallow schemas the views load with (callbacks/schemas.py:
`CartSchema`, `MarketChangeSchema`), so the document cannot drift from what the API accepts.
The replies (state, events, markets, checkout, the error body of §7.4) have no load schema;
they are described here by documentation-only marshmallow schemas that stay open to new fields
(`additionalProperties` is not closed), while our request schemas are closed (unknown → 422).

No authentication: the document describes the API, it opens nothing. tests/reliability checks
that it validates and that every /api route is in it, and schemathesis fuzzes the API from it.
"""
from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify
from marshmallow import EXCLUDE, Schema, fields, validate

from callbacks.store.notify import MAX_WAIT
from callbacks.web import schemas

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
EVENT_TYPES = ["cart_updated", "market_changed", "address_updated", "shipping_option_selected",
               "validation_passed", "validation_failed", "order_created", "order_updated",
               "order_recreated", "order_completed", "order_acknowledged", "fraud_status_changed"]
MAX_EVENT_ID = 10**18 - 1  # storefront.EVENT_ID: at most 18 digits
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # base64url without padding of a SHA-256 HMAC


# -- documentation-only schemas for the replies (open to new fields) -------------------------
class Reply(Schema):
    class Meta:
        unknown = EXCLUDE


def Str(**kw):  # noqa: N802 - reads like a field class
    return fields.String(required=True, **kw)


def Opt(field):  # noqa: N802 - a required key whose value may be null
    field.required, field.allow_none = True, True
    return field


class ErrorSchema(Reply):
    """Our error body (DESIGN.md §7.4), for every 4xx and 5xx of the API."""

    code = fields.Integer(required=True, validate=validate.Range(400, 599))
    status = Str()
    message = Str()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True)


class MarketRefSchema(Reply):
    country = Str(validate=schemas.COUNTRY)
    currency = Str(validate=schemas.CURRENCY)
    locale = Str()


class StateCartItemSchema(Reply):
    reference = Str()
    quantity = fields.Integer(required=True)


class StateCartSchema(Reply):
    items = fields.List(fields.Nested(StateCartItemSchema), required=True)
    coupon = Opt(fields.String())


class OrderLineReplySchema(Reply):
    type = Str()
    reference = Str()
    name = Str()
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True)
    tax_rate = fields.Integer(required=True)
    total_amount = fields.Integer(required=True)
    total_discount_amount = fields.Integer(required=True)
    total_tax_amount = fields.Integer(required=True)


class OrderSchema(Reply):
    order_amount = fields.Integer(required=True)
    order_tax_amount = fields.Integer(required=True)
    order_lines = fields.List(fields.Nested(OrderLineReplySchema), required=True)


class ShippingOptionSchema(Reply):
    id = Str()
    name = Str()
    price = fields.Integer(required=True)
    tax_amount = fields.Integer(required=True)
    tax_rate = fields.Integer(required=True)
    preselected = fields.Boolean(required=True)
    description = fields.String()
    shipping_method = fields.String()


class KlarnaRefSchema(Reply):
    order_id = Opt(fields.String())
    status = Opt(fields.String())


class StateSchema(Reply):
    """The session's state (DESIGN.md §7.2)."""

    session = Str()
    version = fields.Integer(required=True, validate=validate.Range(min=0))
    cart = fields.Nested(StateCartSchema, required=True)
    market = fields.Nested(MarketRefSchema, required=True)
    purchase_country = Str()
    pending_purchase_country = Opt(fields.String())
    billing_country = Opt(fields.String())
    shipping_country = Opt(fields.String())
    selected_shipping_option = Opt(fields.String())
    order = fields.Nested(OrderSchema, required=True)
    shipping_options = fields.List(fields.Nested(ShippingOptionSchema), required=True)
    klarna = fields.Nested(KlarnaRefSchema, required=True)
    updated_at = Opt(fields.String())


class CheckoutReplySchema(Reply):
    order_id = Str()
    html_snippet = Opt(fields.String())
    poll_token = Str()
    state = fields.Nested(StateSchema, required=True)


class EventSchema(Reply):
    """One event (DESIGN.md §7.3); `data` holds old and new values, never personal data."""

    id = fields.Integer(required=True, validate=validate.Range(min=1))
    session = Str()
    type = Str(validate=validate.OneOf(EVENT_TYPES))
    version = fields.Integer(required=True)
    at = Str()
    data = fields.Dict(required=True)


class EventsSchema(Reply):
    events = fields.List(fields.Nested(EventSchema), required=True)
    last_id = fields.Integer(required=True, validate=validate.Range(min=0))


class MarketSchema(Reply):
    country = Str(validate=schemas.COUNTRY)
    currency = Str(validate=schemas.CURRENCY)
    locales = fields.List(fields.String(), required=True)
    default_locale = Str()


class MarketsSchema(Reply):
    default_country = Str()
    markets = fields.List(fields.Nested(MarketSchema), required=True)


class HealthSchema(Reply):
    status = Str(validate=validate.Equal("ok"))


# -- the document ---------------------------------------------------------------------------
def _error(description: str, retry_after: bool = False) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": "Error"}}}
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"},
                                               "description": "Seconds to wait before retrying."}}
    return response


def _json(schema: str, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


SID = {"name": "sid", "in": "path", "required": True,
       "description": "The session id the storefront chose (DESIGN.md §3).",
       "schema": {"type": "string", "minLength": 1, "maxLength": 128,
                  "pattern": r"^[A-Za-z0-9._~-]{1,128}$"}}
AFTER = {"name": "after", "in": "query", "required": False,
         "description": "Return events with an id greater than this (the last `last_id`).",
         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID, "default": 0}}
WAIT = {"name": "wait", "in": "query", "required": False,
        "description": f"Long-poll: wait up to this many seconds (at most {MAX_WAIT:g}) for the "
                       "first event; larger values are capped.",
        "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": 0}}
TOKEN = {"name": "token", "in": "query", "required": False,
         "description": "The session's poll token (from POST …/checkout): opens this one "
                        "session's GETs without the API key, for the shopper's browser.",
         "schema": {"type": "string", "pattern": TOKEN_PATTERN}}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "description": "The ETag of a state already held: 304 when unchanged.",
                 "schema": {"type": "string"}}
ETAG = {"ETag": {"schema": {"type": "string"}, "description": "Changes with the state."}}

BEARER = [{"bearerAuth": []}]
BEARER_OR_POLL = [{"bearerAuth": []}, {"pollToken": []}]

COMMON = {"401": {"$ref": "#/components/responses/Unauthorized"},
          "default": {"$ref": "#/components/responses/Error"}}
SESSION_COMMON = {**COMMON, "400": {"$ref": "#/components/responses/BadRequest"}}
WRITE_COMMON = {**SESSION_COMMON, "413": {"$ref": "#/components/responses/TooLarge"},
                "422": {"$ref": "#/components/responses/Unprocessable"},
                "503": {"$ref": "#/components/responses/Unavailable"}}
SYNCED = {"409": {"$ref": "#/components/responses/Busy"},
          "502": {"$ref": "#/components/responses/KlarnaUnavailable"}}


def _paths() -> dict[str, dict]:
    state = _json("State", "The session's state.", ETAG)
    feed = _json("Events", "Events with id > `after`, oldest first (at most 500).")
    return {
        "/api/sessions/{sid}/cart": {"parameters": [SID], "put": {
            "operationId": "putCart", "summary": "Replace the cart and re-price it",
            "description": "Stores the cart (a new session starts in the shop's default market), "
                           "re-prices it and updates the open Klarna order, if any.",
            "security": BEARER,
            "requestBody": {"required": True, "content": {"application/json": {"schema": "Cart"}}},
            "responses": {"200": state, **WRITE_COMMON, **SYNCED}}},
        "/api/sessions/{sid}/checkout": {"parameters": [SID], "post": {
            "operationId": "loadCheckout", "summary": "Load Klarna Checkout for the session",
            "description": "Reads the session's Klarna order, updates it when it differs, and "
                           "creates a new one on any error or once complete. Takes no body.",
            "security": BEARER,
            "responses": {"200": _json("Checkout", "The order and its snippet."),
                          **WRITE_COMMON, **SYNCED,
                          "404": {"$ref": "#/components/responses/NoSession"}}}},
        "/api/sessions/{sid}/market": {"parameters": [SID], "put": {
            "operationId": "putMarket", "summary": "Move the session to another market",
            "description": "Without `locale` the market's locale is picked as in DESIGN.md §5.7.",
            "security": BEARER,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": "MarketChange"}}},
            "responses": {"200": state, **WRITE_COMMON, **SYNCED,
                          "404": {"$ref": "#/components/responses/NoSession"}}}},
        "/api/sessions/{sid}/state": {"parameters": [SID], "get": {
            "operationId": "getState", "summary": "The session's state, with an ETag",
            "security": BEARER_OR_POLL, "parameters": [TOKEN, IF_NONE_MATCH],
            "responses": {"200": state,
                          "304": {"description": "Unchanged since the ETag sent.",
                                  "headers": ETAG},
                          **SESSION_COMMON,
                          "404": {"$ref": "#/components/responses/NoSession"}}}},
        "/api/sessions/{sid}/events": {"parameters": [SID], "get": {
            "operationId": "getSessionEvents", "summary": "The session's events (long-poll)",
            "security": BEARER_OR_POLL, "parameters": [AFTER, WAIT, TOKEN],
            "responses": {"200": feed, **SESSION_COMMON,
                          "404": {"$ref": "#/components/responses/NoSession"},
                          "503": {"$ref": "#/components/responses/Unavailable"}}}},
        "/api/events": {"get": {
            "operationId": "getEvents", "summary": "Every session's events (long-poll)",
            "security": BEARER, "parameters": [AFTER, WAIT],
            "responses": {"200": feed, **COMMON,
                          "400": {"$ref": "#/components/responses/BadRequest"},
                          "503": {"$ref": "#/components/responses/Unavailable"}}}},
        "/api/markets": {"get": {
            "operationId": "getMarkets", "summary": "The shop's markets",
            "security": BEARER,
            "responses": {"200": _json("Markets", "Country, currency and locales per market."),
                          **COMMON}}},
        "/healthz": {"get": {
            "operationId": "healthz", "summary": "Liveness: the database answers",
            "security": [],
            "responses": {"200": _json("Health", "The database answers."),
                          "503": {"$ref": "#/components/responses/Unavailable"}}}},
    }


def _ecma_patterns(node):
    """Python's end-of-string `\\Z` is `$` in the ECMA-262 regexes OpenAPI uses."""
    if isinstance(node, dict):
        return {k: (v.replace(r"\Z", "$") if k == "pattern" and isinstance(v, str)
                    else _ecma_patterns(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_ecma_patterns(v) for v in node]
    return node


def build_spec(app: Flask) -> dict:
    spec = APISpec(
        title="kco-sync storefront API", version="1", openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": "The storefront side of kco-sync (DESIGN.md §7). Errors use one "
                             "body: {code, status, message, errors}. Klarna's callbacks under "
                             "/kco are not part of this document."},
        servers=[{"url": app.config.get("KCO_PUBLIC_URL") or "/"}],
        security=BEARER,
    )
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer", "description": "KCO_API_KEY"})
    spec.components.security_scheme("pollToken", {
        "type": "apiKey", "in": "query", "name": "token",
        "description": "A session's poll token: the two session GETs only."})
    for name, schema in (("Cart", schemas.CartSchema), ("MarketChange", schemas.MarketChangeSchema),
                         ("Error", ErrorSchema), ("State", StateSchema),
                         ("Checkout", CheckoutReplySchema), ("Events", EventsSchema),
                         ("Markets", MarketsSchema), ("Health", HealthSchema)):
        spec.components.schema(name, schema=schema)
    for name, description, retry in (
            ("BadRequest", "Not JSON, or a malformed session id or query parameter.", False),
            ("Unauthorized", "Missing or wrong API key (or poll token).", False),
            ("NoSession", "No such session: PUT its cart first.", False),
            ("Busy", "The session's checkout is being loaded elsewhere; retry.", True),
            ("TooLarge", "The body is larger than 1 MiB.", False),
            ("Unprocessable", "The body does not fit the schema, or the cart cannot be sold.",
             False),
            ("KlarnaUnavailable", "Saved here, but Klarna refused or could not be reached.",
             False),
            ("Unavailable", "The database is busy, or too many long-polls wait; retry.", True),
            ("Error", "Any other error, in the same body.", False)):
        spec.components.response(name, _error(description, retry))
    for path, operations in _paths().items():
        params = operations.pop("parameters", None)
        spec.path(path=path, operations=operations, parameters=params)
    return _ecma_patterns(spec.to_dict())


@bp.get("/openapi.json")
def openapi_json():
    document = current_app.extensions.get("kco_openapi")
    if document is None:
        document = current_app.extensions["kco_openapi"] = build_spec(current_app)
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
