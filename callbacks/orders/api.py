"""/api/orders/{order_id}: the paid order read live from Order Management, and the actions on
it (API key only). Each action needs the caller's `Idempotency-Key` header: a retry with the
same key is the same action, once at Klarna and once in the event feed. Klarna's refusals come
back in our error body, with Klarna's own `error_code`, `error_messages` and `correlation_id`
under `klarna` (and the same HTTP status; 502 when Klarna did not answer or failed).
"""
from __future__ import annotations

from flask import current_app, jsonify
from marshmallow import EXCLUDE, Schema, fields, validate

from callbacks.klarna.client import KlarnaError
from callbacks.orders.service import Orders, UnknownOrder
from callbacks.storefront.api import Blueprint
from callbacks.storefront.schemas import MERCHANT_REFERENCE, ApiSchema, Reply, Str
from callbacks.web import auth, errors
from callbacks.web.errors import api_error
from callbacks.web.schemas import Int

bp = Blueprint("orders", __name__, url_prefix="/api/orders",
               description="Klarna orders after purchase, through Order Management (API key only).")
auth.require_api_key(bp)
errors.answer_body_errors(bp)


class IdempotencySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    idempotency_key = fields.String(data_key="Idempotency-Key", required=True,
                                    validate=validate.Length(1, 255), metadata={
                                        "description": "Your key for this action: a retry with "
                                                       "the same key is the same action."})


class OrderLineSchema(Schema):
    """One of Klarna's order_lines, passed to Klarna as given (Klarna checks it)."""

    class Meta:
        unknown = EXCLUDE

    reference = fields.String(validate=validate.Length(max=255))
    name = fields.String(required=True, validate=validate.Length(1, 255))
    quantity = Int(required=True, validate=validate.Range(0, 10**9))
    unit_price = Int(required=True)
    tax_rate = Int(required=True, validate=validate.Range(0, 10000))
    total_amount = Int(required=True)
    total_discount_amount = Int(load_default=0)
    total_tax_amount = Int(required=True)
    type = fields.String()


class CaptureSchema(ApiSchema):
    captured_amount = Int(required=True, validate=validate.Range(0, 10**12))
    order_lines = fields.List(fields.Nested(OrderLineSchema), validate=validate.Length(max=1000))
    description = fields.String(validate=validate.Length(max=255))
    reference = fields.String(validate=validate.Length(max=255))


class RefundSchema(ApiSchema):
    refunded_amount = Int(required=True, validate=validate.Range(0, 10**12))
    order_lines = fields.List(fields.Nested(OrderLineSchema), validate=validate.Length(max=1000))
    description = fields.String(validate=validate.Length(max=255))
    reference = fields.String(validate=validate.Length(max=255))


class ReferencesSchema(ApiSchema):
    merchant_reference1 = fields.String(required=True, validate=MERCHANT_REFERENCE)


class ActionSchema(Reply):
    """The event recorded for the action (order_captured, …), as the feed carries it."""

    order_id = Str()
    idempotency_key = Str(metadata={"description": "The Klarna-Idempotency-Key sent (UUIDv5)."})
    capture_id = fields.String()
    refund_id = fields.String()
    captured_amount = fields.Integer()
    refunded_amount = fields.Integer()
    merchant_reference1 = fields.String()
    reference = fields.String()
    description = fields.String()
    order_line_references = fields.List(fields.String(allow_none=True))


class KlarnaOrderSchema(Reply):
    """Klarna's order as Order Management gives it (every property passed through)."""

    class Meta:
        unknown = EXCLUDE

    order_id = Str()
    status = Str()


@bp.errorhandler(UnknownOrder)
def _unknown(exc: UnknownOrder):
    return api_error(404, f"No session of ours holds order {exc.args[0]!r}.",
                     {"order_id": ["Unknown order."]})


@bp.errorhandler(KlarnaError)
def _refused(exc: KlarnaError):
    status = exc.status if exc.status and 400 <= exc.status < 500 and exc.status != 401 else 502
    message = (f"Klarna refused: {exc.error_code}: {'; '.join(exc.error_messages)}"
               if status != 502 else f"Klarna did not answer as expected: {exc}")
    response, code, headers = api_error(status, message, {"klarna": [exc.error_code or ""]})
    body = response.get_json()
    body["klarna"] = {"error_code": exc.error_code, "error_messages": exc.error_messages,
                      "correlation_id": exc.correlation_id}
    return jsonify(body), code, headers


def orders() -> Orders:
    return current_app.extensions["kco_orders"]


DOCUMENTED = (400, 401, 403, 404, 422, 502)


@bp.get("/<order_id>")
@bp.response(200, KlarnaOrderSchema, description="Klarna's order, read now.")
@bp.documents(401, 404, 502)
def read(order_id: str):
    """The order as Order Management has it now"""
    return jsonify(orders().read(order_id))


def _action(action: str, event: str, doc: str, schema: type[Schema] | None = None, *,
            method: str = "post", path: str | None = None, status: int = 200) -> None:
    """One Order Management action: the caller's Idempotency-Key, the body's schema if the
    action takes one, and `Orders.act`, which calls Klarna and records `event`."""
    def view(headers: dict, *args, order_id: str):
        body = args[0] if args else None
        return orders().act(order_id, action, headers["idempotency_key"], body), status
    view.__name__, view.__doc__ = action.replace("-", "_"), doc
    view = bp.documents(*DOCUMENTED)(view)
    view = bp.response(status, ActionSchema, description=f"Done; {event} recorded.")(view)
    if schema is not None:
        view = bp.arguments(schema)(view)
    view = bp.arguments(IdempotencySchema, location="headers")(view)
    bp.route(f"/<order_id>/{path or action}", methods=[method.upper()])(view)


_action("capture", "order_captured", "Capture (all or part of) the order", CaptureSchema,
        path="captures", status=201)
_action("refund", "order_refunded", "Refund (all or part of) what was captured", RefundSchema,
        path="refunds", status=201)
_action("cancel", "order_cancelled", "Cancel the order (nothing captured yet)")
_action("extend-authorization-time", "authorization_extended", "Extend the authorization's expiry")
_action("release-remaining-authorization", "authorization_released",
        "Release what is not captured")
_action("merchant-references", "merchant_reference_updated",
        "Set merchant_reference1 (merchant_reference2 stays kco-sync's session binding)",
        ReferencesSchema, method="patch")


def init_app(app, api) -> None:
    kco = app.extensions["kco"]

    def client_for_order(order_id: str):
        """The client of the Klarna account holding the order (its completed row's, else its
        session's): an order made at the North America account is captured there."""
        lifecycle = kco.lifecycle
        return lifecycle.client_for(lifecycle.order_account(order_id))
    app.extensions["kco_orders"] = Orders(kco.store, client_for_order)
    api.register_blueprint(bp)
