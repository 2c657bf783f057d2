"""The storefront API (DESIGN.md §7) and the operator endpoints `/healthz` and `/metrics`.

Views are thin: parse (schemas.py) → decide (checkout.py) → record (store.py, one
transaction) → reply. Every answer under /api, errors included, is JSON; errors use our body
(§7.4) and name the problem. Authentication is `Authorization: Bearer {KCO_API_KEY}`, or the
session's browser token (callbacks/web/browser.py), which opens that one session's state, feed,
cart, market and checkout load, and nothing else.

Long-polls (`wait=S`) sleep in callbacks/notify.py without a database connection; see
docs/long-poll.md for how many gunicorn threads serve how many waiting browsers.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from marshmallow import ValidationError

from callbacks.klarna.lifecycle import EmptyCart, KlarnaUnavailable, NoSession
from callbacks.rules import checkout
from callbacks.rules.checkout import CartRefused
from callbacks.rules.pricing import CartItem, PricingError
from callbacks.store import notify
from callbacks.store.database import LeaseBusy
from callbacks.web import browser, metrics, schemas
from callbacks.web.errors import api_error

log = logging.getLogger(__name__)

bp = Blueprint("storefront", __name__, url_prefix="/api")
ops = Blueprint("ops", __name__)

EVENT_ID = re.compile(r"^[0-9]{1,18}$")
MAX_LISTED_ERRORS = 5


class ApiError(Exception):
    def __init__(self, code: int, message: str, errors: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.errors, self.headers = code, message, errors, headers


def kco():
    return current_app.extensions["kco"]


# -- authentication ------------------------------------------------------------------------
def _bearer_ok() -> bool:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    expected = current_app.config["KCO_API_KEY"].encode()
    return hmac.compare_digest(key.strip().encode("utf-8", "replace"), expected)


@bp.before_request
def authenticate():
    sid = (request.view_args or {}).get("sid")
    if _bearer_ok():
        g.api_auth = "key"
    elif browser.token_opens():
        g.api_auth = "browser-token"
    else:
        message = ("Missing or wrong API key: send Authorization: Bearer {KCO_API_KEY}"
                   + (" (or this session's unexpired browser token)"
                      if request.endpoint in browser.OPENS else "") + ".")
        return api_error(401, message, headers={"WWW-Authenticate": 'Bearer realm="kco-sync"'})
    if sid is not None and not schemas.SESSION_ID.match(sid):
        return api_error(400, "The session id must be 1–128 characters of A–Z a–z 0–9 . _ ~ -.",
                         {"session": ["Not a valid session id."]})


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return api_error(exc.code, exc.message, exc.errors, exc.headers)


@bp.errorhandler(CartRefused)
def _cart_refused(exc: CartRefused):
    return api_error(422, exc.message, exc.errors)


# -- parsing ---------------------------------------------------------------------------------
def flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as `{"items.0.quantity": ["…"]}` (§7.4's field → list)."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for value in messages:
            out.update(flatten(value, prefix))
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


def summary(errors: dict[str, list[str]]) -> str:
    parts = [f"{field}: {' '.join(problems)}" for field, problems in errors.items()]
    more = len(parts) - MAX_LISTED_ERRORS
    text = "; ".join(parts[:MAX_LISTED_ERRORS])
    return text + (f"; and {more} more" if more > 0 else "")


def parse_body(schema) -> dict:
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # Recursion: [[[[… nesting
        raise ApiError(400, f"The body is not valid JSON: {exc}", {"_body": [str(exc)]}) from None
    try:
        return schemas.load(schema, data)
    except ValidationError as exc:
        errors = flatten(exc.messages)
        raise ApiError(422, summary(errors), errors) from None


def query_after() -> int:
    raw = request.args.get("after")
    if raw is None or raw == "":
        return 0
    if not EVENT_ID.match(raw):
        problem = f"after must be an event id, a whole number ≥ 0 (got {raw[:40]!r})."
        raise ApiError(400, problem, {"after": [problem]})
    return int(raw)


def query_wait() -> float:
    raw = request.args.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        problem = (f"wait must be a number of seconds from 0 to {notify.MAX_WAIT:g} "
                   f"(got {raw[:40]!r}).")
        raise ApiError(400, problem, {"wait": [problem]})
    return min(value, notify.MAX_WAIT)


# -- replies ---------------------------------------------------------------------------------
def etag(state: dict) -> str:
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return f"{state.get('version', 0)}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def state_response(state: dict, status: int = 200) -> Response:
    response = jsonify(state)
    response.status_code = status
    response.set_etag(etag(state))
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def unknown_session(sid: str):
    return api_error(404, f"No session {sid!r}: PUT its cart first.",
                     {"session": ["Unknown session."]})


# -- endpoints -------------------------------------------------------------------------------
@bp.put("/sessions/<sid>/cart")
def put_cart(sid: str):
    body = parse_body(schemas.cart)
    items = [CartItem(i["reference"], i["quantity"]) for i in body["items"]]
    app = kco()
    with app.store.session(sid) as tx:
        decision = checkout.set_cart(app.shop, tx.state, sid, items, body["coupon"])
        if decision.event_type:
            tx.save(decision.state, decision.event_type, decision.data)
        state, changed = tx.state, bool(decision.event_type)
    if changed:
        klarna_sync(sid)
        state = app.store.get_state(sid)
    return state_response(state)


def klarna_sync(sid: str) -> None:
    """After a change the storefront made: bring an open Klarna order in step (a new order when
    Klarna refuses). The storefront wraps this in suspend → … → resume."""
    try:
        kco().lifecycle.sync(sid)
    except KlarnaUnavailable as exc:
        raise ApiError(502, f"Saved, but Klarna could not be updated ({exc}); load checkout "
                            "again (POST …/checkout) to get a working order.",
                       {"klarna": klarna_errors(exc)}) from exc
    except LeaseBusy as exc:
        raise ApiError(409, f"Saved, but {exc}; load checkout again to bring Klarna in step.",
                       headers={"Retry-After": "1"}) from exc


def klarna_errors(exc: KlarnaUnavailable) -> list[str]:
    return [f"{exc.error.error_code}: {m}" for m in exc.error.error_messages] or [exc.error.error_code or "error"]


@bp.post("/sessions/<sid>/checkout")
def load_checkout(sid: str):
    """Klarna's load flow (kco-cart-updates.txt): the session's order is read, updated when it
    differs, and created anew on 404, any 4xx, 5xx or network error, or once complete."""
    if request.get_data(cache=True).strip() not in (b"", b"{}"):
        raise ApiError(422, "POST …/checkout takes no body.", {"_body": ["Must be empty."]})
    app = kco()
    try:
        loaded = app.lifecycle.load_checkout(sid)
    except NoSession:
        return unknown_session(sid)
    except EmptyCart:
        return api_error(409, "The cart is empty: PUT items before loading checkout.",
                         {"items": ["Klarna needs at least one order line."]})
    except KlarnaUnavailable as exc:
        return api_error(502, f"Klarna refused or could not be reached: {exc}",
                         {"klarna": klarna_errors(exc)})
    except LeaseBusy as exc:
        return api_error(409, str(exc), headers={"Retry-After": "1"})
    token = browser.issue(sid)  # a fresh 48 h for the page, as Klarna's order got one
    return jsonify(order_id=loaded.order["order_id"], html_snippet=loaded.order.get("html_snippet"),
                   poll_token=token["browser_token"], **token, state=loaded.state)


@bp.put("/sessions/<sid>/market")
def put_market(sid: str):
    body = parse_body(schemas.market_change)
    app = kco()
    market = app.shop.market(body["country"])
    if market is None:
        problem = f"{body['country']} is not one of the shop's markets ({', '.join(app.shop.markets)})."
        raise ApiError(422, problem, {"country": [problem]})
    locale = body["locale"]
    if locale is not None and locale.lower() not in {loc.lower() for loc in market.locales}:
        problem = f"{locale} is not a locale of {market.country} ({', '.join(market.locales)})."
        raise ApiError(422, problem, {"locale": [problem]})
    try:
        app.lifecycle.change_market(sid, market.country, locale and _market_locale(market, locale))
    except NoSession:
        return unknown_session(sid)
    except PricingError as exc:
        raise ApiError(422, f"The cart cannot be sold in {market.country}: {exc}",
                       {"country": [str(exc)]}) from exc
    klarna_sync(sid)
    return state_response(app.store.get_state(sid))


def _market_locale(market, locale: str) -> str:
    return next(loc for loc in market.locales if loc.lower() == locale.lower())


@bp.get("/sessions/<sid>/state")
def get_state(sid: str):
    state = kco().store.get_state(sid)
    if state is None:
        return unknown_session(sid)
    tag = etag(state)
    if request.if_none_match.contains_weak(tag):
        response = Response(status=304)
        response.set_etag(tag)
        response.headers["Cache-Control"] = "private, no-cache"
        return response
    return state_response(state)


def feed(sid: str | None):
    after, wait = query_after(), query_wait()
    app = kco()
    if sid is not None and not app.store.has_session(sid):
        return unknown_session(sid)
    try:
        events = current_app.extensions["kco_notify"].events(after, sid, wait)
    except notify.TooManyWaiters:
        return api_error(503, "Too many long-polls are waiting on this instance; retry shortly.",
                         headers={"Retry-After": "2"})
    response = jsonify(events=events, last_id=events[-1]["id"] if events else after)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/sessions/<sid>/events")
def session_events(sid: str):
    return feed(sid)


@bp.get("/events")
def all_events():
    return feed(None)


@bp.get("/markets")
def list_markets():
    shop = kco().shop
    return jsonify(default_country=shop.default_country, markets=[
        {"country": m.country, "currency": m.currency, "locales": list(m.locales),
         "default_locale": m.default_locale} for m in shop.markets.values()])


@ops.get("/healthz")
def healthz():
    try:
        kco().store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is "down"
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        return api_error(503, f"The database does not answer ({type(exc).__name__}).",
                         headers={"Retry-After": "5", "Cache-Control": "no-store"})
    response = jsonify(status="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    registry = metrics.init_app(app)
    notify.init_app(app, gauge=registry.waiters)
    app.register_blueprint(bp)
    app.register_blueprint(ops)
