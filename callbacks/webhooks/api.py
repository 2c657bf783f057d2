"""/api/webhook-endpoints: subscribe the merchant's systems to the event feed (API key only).

A flask-smorest blueprint on the storefront's Api, so the endpoints, their bodies and errors are
in /openapi.json. URLs are checked against server-side request forgery (ssrf.py) when they are
registered; the worker checks again at each delivery.
"""
from __future__ import annotations

from flask import current_app
from flask_smorest import abort
from marshmallow import fields, validate

from callbacks.rules.state import EventType
from callbacks.storefront.api import Blueprint
from callbacks.storefront.schemas import ApiSchema, Num, Opt, Reply, Str
from callbacks.web import auth, errors
from callbacks.webhooks import endpoints
from callbacks.webhooks.ssrf import url_problem

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhook-endpoints",
               description="Signed webhooks for every event of the feed (API key only; "
                           "docs/webhooks.md).")
auth.require_api_key(bp)
errors.answer_body_errors(bp)
EVENT_TYPES = sorted(t.value for t in EventType)


class EndpointBodySchema(ApiSchema):
    url = fields.String(required=True, validate=validate.Length(1, 2000), metadata={
        "description": "Where messages are POSTed: https:// and a public address in production."})
    event_types = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)),
                              load_default=None, allow_none=True,
                              validate=validate.Length(1, len(EVENT_TYPES)), metadata={
                                  "description": "Only these types (default: every type)."})
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=500))


class EndpointSchema(Reply):
    id = Str()
    url = Str()
    event_types = Opt(fields.List(fields.String()))
    description = Opt(fields.String())
    created_at = Str()
    enabled = fields.Boolean(required=True)
    disabled_reason = Opt(fields.String())
    failing_since = Opt(fields.String())


class CreatedEndpointSchema(EndpointSchema):
    secret = Str(metadata={"description": "The signing secret (whsec_…), shown only here."})


class EndpointListSchema(Reply):
    endpoints = fields.List(fields.Nested(EndpointSchema), required=True)


class DeliveriesQuerySchema(ApiSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(0, 10**15))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class DeliverySchema(Reply):
    id = Num(metadata={"description": "The attempt's id (the `after` cursor)."})
    message_id = Str(metadata={"description": "The message's webhook-id."})
    event_id = Num()
    event_type = Str()
    session = Str()
    attempt = Num()
    status = Opt(fields.Integer(metadata={"description": "The receiver's HTTP status."}))
    error = Opt(fields.String())
    duration_ms = fields.Float(required=True)
    at = Str()
    endpoint_id = Str()


class DeliveriesSchema(Reply):
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


class ResentSchema(Reply):
    message_id = Str()
    state = Str()


def _store():
    return current_app.extensions["kco"].store


def _endpoint(endpoint_id: str) -> dict:
    found = endpoints.get(_store(), endpoint_id)
    if found is None:
        abort(404, message=f"No webhook endpoint {endpoint_id!r}.", errors={"id": ["Unknown."]})
    assert found is not None  # abort raised (flask_smorest ships no type hints that say so)
    return found


@bp.post("")
@bp.arguments(EndpointBodySchema)
@bp.response(201, CreatedEndpointSchema, description="Subscribed; the secret is shown only now.")
@bp.documents(400, 401, 413, 422)
def create(body: dict):
    """Subscribe a URL to the event feed"""
    problem = url_problem(body["url"], current_app.config["KCO_WEBHOOK_PRIVATE_URLS"])
    if problem:
        abort(422, message=f"url: {problem}", errors={"url": [problem]})
    return endpoints.create(_store(), body["url"], body["event_types"], body["description"])


@bp.get("")
@bp.response(200, EndpointListSchema, description="Every endpoint.")
@bp.documents(401)
def list_endpoints():
    """List the endpoints"""
    return {"endpoints": endpoints.listed(_store())}


@bp.get("/<endpoint_id>")
@bp.response(200, EndpointSchema, description="The endpoint (without its secret).")
@bp.documents(401, 404)
def get_endpoint(endpoint_id: str):
    """One endpoint"""
    return _endpoint(endpoint_id)


@bp.delete("/<endpoint_id>")
@bp.response(204, description="Removed, with its queued messages.")
@bp.documents(401, 404)
def delete_endpoint(endpoint_id: str):
    """Remove an endpoint"""
    if not endpoints.remove(_store(), endpoint_id):
        abort(404, message=f"No webhook endpoint {endpoint_id!r}.", errors={"id": ["Unknown."]})
    return "", 204


@bp.get("/<endpoint_id>/deliveries")
@bp.arguments(DeliveriesQuerySchema, location="query")
@bp.response(200, DeliveriesSchema, description="Delivery attempts, oldest first.")
@bp.documents(401, 404, 422)
def deliveries(query: dict, endpoint_id: str):
    """The endpoint's delivery attempts after an attempt id"""
    _endpoint(endpoint_id)
    return {"deliveries": endpoints.deliveries(_store(), endpoint_id, query["after"],
                                               query["limit"])}


@bp.post("/<endpoint_id>/deliveries/<message_id>/resend")
@bp.response(202, ResentSchema, description="Queued again, due at once.")
@bp.documents(401, 404)
def resend(endpoint_id: str, message_id: str):
    """Send a message again (same webhook-id)"""
    _endpoint(endpoint_id)
    number = endpoints.message_number(message_id)
    if number is None or not endpoints.resend(_store(), endpoint_id, number):
        abort(404, message=f"No message {message_id!r} for this endpoint.",
              errors={"message_id": ["Unknown."]})
    assert number is not None  # abort raised (flask_smorest ships no type hints that say so)
    return {"message_id": endpoints.message_name(number), "state": "pending"}


def init_app(app, api) -> None:
    api.register_blueprint(bp)
