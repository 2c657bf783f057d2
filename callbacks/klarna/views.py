"""Klarna's callbacks (docs/design.md §6): verify the token, parse, decide, record, reply.

The synchronous ones (address_update, shipping_option_update, country_change, validation) touch
only our own database: Klarna is waiting (3 s for validation) and approves on silence.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, request
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from callbacks.klarna import binding, loghooks, order, schemas
from callbacks.klarna.accounts import UnknownAccount
from callbacks.klarna.binding import WrongOrder
from callbacks.klarna.client import KlarnaError
from callbacks.klarna.lifecycle import FRAUD_EVENTS, WrongSession
from callbacks.rules import checkout, markets
from callbacks.rules.checkout import CartChanged, Rejected
from callbacks.rules.texts import Text
from callbacks.store import faults
from callbacks.web import deadline, i18n, slots
from callbacks.web.body import BodyError, read_json
from callbacks.web.errors import api_error, klarna_error
from callbacks.web.schemas import SESSION_ID
from callbacks.web.tokens import CALLBACK, check_token

log = logging.getLogger(__name__)
bp = Blueprint("kco", __name__, url_prefix="/kco")
loghooks.install(bp)  # the callback log (docs/design.md §8): one after_request hook, before the token check

SHOPPER_PARSE_ERROR = Text("unreadable_order")


def kco():
    return current_app.extensions["kco"]


def shopper_text(*texts: Text) -> str:
    """Klarna shows error_text to the shopper: in the locale Klarna sent with this callback,
    else the session's market locale, else English (callbacks/web/i18n.py)."""
    locale = g.get("klarna_locale")
    if not locale and g.get("sid"):
        try:
            state = kco().store.get_state(g.sid)
        except SQLAlchemyError as exc:  # only the language is at stake: English, not a 500
            log.warning("no locale for session %s's error_text: %s", g.sid, exc)
            state = None
        locale = state["market"]["locale"] if state else None
    return i18n.render_all(texts, locale, kco().shop.texts)


@bp.before_request
def verify_token():
    """Before the body is even read: a forged or stale URL gets 401 and leaves no trace."""
    sid, token = request.args.get("session"), request.args.get("token")
    if not check_token(current_app.config["KCO_CALLBACK_SECRET"], CALLBACK, sid, token):
        return api_error(401, "Missing or wrong token for this session.")
    deadline.trust()  # Klarna: its body is bounded by the deadline, never refused a place
    if not SESSION_ID.match(sid or ""):
        return api_error(400, "The session id must be 1–128 characters of A–Z a–z 0–9 . _ ~ -.",
                         {"session": ["Not a valid session id."]})
    g.sid = sid
    g.order_id = request.args.get("order_id")
    if g.order_id and not schemas.ORDER_ID.match(g.order_id):
        # It may become the session's Klarna order id (a text column of 255) and is logged. A
        # bad URL is our 400, like a bad session id: the URL is ours, not Klarna's order.
        return api_error(400, "The order_id must be 1–255 characters without control characters.",
                         {"order_id": ["Not a valid order id."]})
    if request.content_length != 0 and not request.is_json and request.get_data(cache=True):
        return refuse(415, "The body must be JSON (Content-Type: application/json).",
                      {"_body": ["Not application/json."]}, SHOPPER_PARSE_ERROR)


ASYNCHRONOUS = frozenset(f"kco.{name}" for name in order.ASYNCHRONOUS)


def refuse(status: int, message: str, errors: dict, text: Text):
    """Our error body (`message`) for push and notification; Klarna's, with `approval_failed`,
    for the four synchronous callbacks, where Klarna shows error_text (`text`) to the shopper."""
    if request.endpoint in ASYNCHRONOUS:
        return api_error(status, message, errors)
    body, _ = klarna_error("approval_failed", shopper_text(text), errors)
    return body, status


def parse(schema) -> dict:
    """The body, read as both blueprints read JSON (web/body.py), loaded by a Klarna schema."""
    raw = read_json(request)
    if isinstance(raw, dict) and isinstance(raw.get("locale"), str):
        g.klarna_locale = markets.normalize_locale(raw["locale"][:35])  # only chooses a catalog
    return _load(schema.load, raw)


def _load(load, value):
    try:
        return load(value)
    except ValidationError as exc:
        raise BodyError("The body does not fit the schema.", exc.messages) from None  # type: ignore[arg-type]


def _shipping_service(decide):
    body = parse(schemas.shipping_service_request)
    app = kco()

    def bound_then_decide(tx):
        binding.check(tx, g.order_id, body.get("order_id"))
        if tx.state is None:  # a session built from Klarna's lines: only now are they read
            body["order_lines"] = _load(schemas.goods_lines, body["order_lines"])
        return decide(app.shop, tx.state, g.sid, body)

    _, reply = loghooks.apply_logged(app.store, g.sid, bound_then_decide,
                                     lambda decision: decision.reply or checkout.reply_body(decision.state))
    return reply


@bp.post("/address_update")
@slots.guarded
def address_update():
    return _shipping_service(checkout.address_update)


@bp.post("/shipping_option_update")
@slots.guarded
def shipping_option_update():
    return _shipping_service(checkout.shipping_option_update)


@bp.post("/country_change")
@slots.guarded
def country_change():
    return _shipping_service(checkout.country_change)


@bp.post("/validation")
@slots.guarded
def validation():
    body = parse(schemas.validation_request)
    body.setdefault("order_id", None)
    body["order_id"] = body["order_id"] or g.order_id
    app = kco()

    def bound_then_decide(tx):
        binding.check(tx, g.order_id, body["order_id"])
        return checkout.validation(app.shop, tx.state, g.sid, body)

    def approval(decision):
        if decision.refusal:  # logged by the hook, with its 303 or 400
            raise loghooks.NoReply
        return None  # an empty 200
    decision, reply = loghooks.apply_logged(app.store, g.sid, bound_then_decide, approval)
    if decision.refusal:  # recorded as validation_failed, now refused: Rejected or CartChanged
        raise decision.refusal
    return reply


# -- asynchronous callbacks: push and notification ---------------------------------------------
@bp.post("/push")
def push():
    """Reply 200 at once (the body is empty; the order id is in the URL), then read, record
    and acknowledge after the response has gone. Klarna pushes again until we acknowledge, so
    a failure here is retried by Klarna, and by `flask kco reconcile`."""
    if not g.order_id:
        return api_error(400, "The push URL carries no order_id.", {"order_id": ["Missing."]})
    request.get_data(cache=True)  # Klarna's push has no body; one over 1 MiB is a 413 all the same
    lifecycle, sid, order_id, named = kco().lifecycle, g.sid, g.order_id, account_named()
    try:
        lifecycle.claim(sid, order_id, named)  # not this session's order: 400, nothing acknowledged
    except WrongSession as exc:
        log.warning("push %s for session %s refused: %s", order_id, sid, exc)
        return api_error(400, "This order is not this session's.",
                         {"order_id": ["Not an order of this session."]})
    except KlarnaError as exc:
        log.warning("push %s: could not ask Klarna whose order it is: %s", order_id, exc)
        return api_error(503, "Could not verify the order with Klarna; please retry.",
                         headers={"Retry-After": "600"})

    def after_reply():
        try:
            log.info("push %s for session %s: %s", order_id, sid, lifecycle.push(sid, order_id, named))
        except WrongSession as exc:  # bound elsewhere between the claim and now: no traceback
            log.warning("push %s for session %s refused: %s", order_id, sid, exc)
        except Exception as exc:  # noqa: BLE001 - nothing may escape after the reply; Klarna retries
            if faults.is_fault(exc):  # the database is away: one line, as for any fault
                log.warning("push %s for session %s not done, the database is unavailable (%s); "
                            "Klarna pushes again", order_id, sid, faults.describe(exc))
            else:
                log.exception("push %s for session %s failed", order_id, sid)

    response = current_app.response_class(status=200)
    response.call_on_close(after_reply)
    return response


@bp.post("/notification")
def notification():
    """A fraud decision. 200 stops Klarna's retries, so it is sent only after recording what
    Order Management says; 503 when Order Management cannot be asked (Klarna retries)."""
    body = parse(schemas.notification)
    if body["event_type"] not in FRAUD_EVENTS:  # not echoed: it is the caller's free text
        return api_error(400, f"Unknown event_type; expected one of {', '.join(sorted(FRAUD_EVENTS))}.",
                         {"event_type": ["Unknown."]})
    if g.order_id and g.order_id != body["order_id"]:
        return api_error(400, "The body's order_id is not the one in the URL.",
                         {"order_id": ["Does not match the URL."]})
    kco().lifecycle.notification(g.sid, body["order_id"], body["event_type"], account_named())
    return "", 200


def account_named() -> str | None:
    """The Klarna account the push or notification URL names (callbacks/klarna/order.py puts
    it there for an order at a named account; none: the environment's). A name the shop file
    does not have is a URL we never made: 400 (UnknownAccount's handler)."""
    return kco().lifecycle.accounts.named(request.args.get(order.ACCOUNT_PARAMETER))


# -- the domain's exceptions, as replies -------------------------------------------------------
@bp.errorhandler(Rejected)
def rejected(exc: Rejected):
    return klarna_error(exc.error_type, shopper_text(*exc.texts), dict(exc.errors or {}))


@bp.errorhandler(BodyError)
def unreadable(exc: BodyError):
    """Klarna shows a synchronous callback's error to the shopper, in Klarna's shape; the
    notification's goes back to Klarna's retries, in ours."""
    if request.endpoint == "kco.notification":
        return api_error(400, "The notification body is not {order_id, event_type}.", exc.errors)
    return klarna_error("approval_failed", shopper_text(SHOPPER_PARSE_ERROR), exc.errors)


@bp.errorhandler(deadline.SlowBody)
def slow_body(exc: deadline.SlowBody):
    """The body did not arrive in time (408): in Klarna's shape where Klarna shows error_text,
    though Klarna, whose own wait is shorter, has given up on the reply by then."""
    body, status = refuse(exc.code, exc.message, exc.errors, Text("temporarily_unavailable"))[:2]
    return body, status, exc.headers


@bp.errorhandler(CartChanged)
def cart_changed(exc: CartChanged):
    """Validation found Klarna's order out of step with the cart: back to the checkout page."""
    url = current_app.config["KCO_CHECKOUT_URL"]
    return "", 303, {"Location": f"{url}{'&' if '?' in url else '?'}kco_error=cart_changed"}


@bp.errorhandler(KlarnaError)
def unverified(exc: KlarnaError):
    """The notification could not be checked against Order Management: Klarna retries."""
    log.warning("notification for session %s not verified: %s", g.sid, exc)
    return api_error(503, "Could not verify the order with Klarna; please retry.", headers={"Retry-After": "600"})


@bp.errorhandler(WrongSession)
def wrong_session(exc: WrongSession):
    """A notification for an order that is not this session's: a warning, no traceback, and the
    owner is not named to whoever holds the URL."""
    log.warning("notification for session %s refused: %s", g.sid, exc)
    return api_error(400, "This order is not this session's.", {"order_id": ["Not an order of this session."]})


@bp.errorhandler(UnknownAccount)
def unknown_account(exc: UnknownAccount):
    """Not echoed: the name is whatever the caller wrote into the URL."""
    return api_error(400, "The URL names a Klarna account this shop does not have.",
                     {order.ACCOUNT_PARAMETER: ["Unknown account."]})


@bp.errorhandler(WrongOrder)
def wrong_order(exc: WrongOrder):
    return refuse(400, exc.message, {exc.field: ["Not this session's Klarna order."]},
                  Text("wrong_order"))


# POST only: Flask would answer OPTIONS itself, 200 after the token check, and the callback log
# would keep it as a callback; without it the router answers 405 with `Allow: POST`.
for _view in (address_update, shipping_option_update, country_change, validation, push, notification):
    _view.provide_automatic_options = False  # type: ignore[attr-defined]
