"""What a shopper's browser may do with its session's browser token, and CORS for the
storefront origins the merchant names (KCO_CORS_ORIGINS).

The page must never hold KCO_API_KEY, yet it has to write its own cart and market and load its
own checkout. The browser token (callbacks/web/tokens.py) opens exactly those endpoints of the
one session it was signed for, until it expires — never another session, the global feed or the
callback log, whose endpoints are simply not in the list below. Prices cannot come from a
browser: a cart names references and quantities, and pricing reads the shop file.

The merchant's back end gets a token with the API key (`POST /api/sessions/{sid}/browser-token`)
and the checkout load returns a fresh one.
"""
from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime

from flask import Blueprint, Flask, current_app, jsonify, request

from callbacks.web import schemas
from callbacks.web.errors import api_error
from callbacks.web.tokens import browser_token, browser_token_expiry, check_browser_token

# endpoint → the methods a browser token opens on it
OPENS = {
    "storefront.get_state": {"GET", "HEAD"},
    "storefront.session_events": {"GET", "HEAD"},
    "storefront.put_cart": {"PUT"},
    "storefront.put_market": {"PUT"},
    "storefront.load_checkout": {"POST"},
}
SESSION_PATHS = re.compile(r"^/api/sessions/[^/]+/(state|events|cart|market|checkout)$")

bp = Blueprint("browser", __name__, url_prefix="/api")


def presented_token() -> str | None:
    """`Authorization: Bearer <browser token>` (keeps it out of access logs), else `?token=`."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and browser_token_expiry(value.strip()) is not None:
        return value.strip()
    return request.args.get("token")


def token_opens() -> bool:
    """Does this request's browser token open this endpoint of this session?"""
    if request.method not in OPENS.get(request.endpoint or "", ()):
        return False
    sid = (request.view_args or {}).get("sid")
    return check_browser_token(current_app.config["KCO_CALLBACK_SECRET"], sid, presented_token())


def issue(sid: str) -> dict:
    """A fresh token for `sid` and when it stops working (ISO 8601, UTC)."""
    token = browser_token(current_app.config["KCO_CALLBACK_SECRET"], sid)
    expires = datetime.fromtimestamp(browser_token_expiry(token), UTC)
    return {"browser_token": token, "expires_at": expires.isoformat().replace("+00:00", "Z")}


def api_key_ok() -> bool:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    return hmac.compare_digest(key.strip().encode("utf-8", "replace"),
                               current_app.config["KCO_API_KEY"].encode())


@bp.post("/sessions/<sid>/browser-token")
def new_browser_token(sid: str):
    """For the merchant's back end (API key only): hand the page a token for its session."""
    if not api_key_ok():
        return api_error(401, "Missing or wrong API key: send Authorization: Bearer {KCO_API_KEY}.",
                         headers={"WWW-Authenticate": 'Bearer realm="kco-sync"'})
    if not schemas.SESSION_ID.match(sid):
        return api_error(400, "The session id must be 1–128 characters of A–Z a–z 0–9 . _ ~ -.",
                         {"session": ["Not a valid session id."]})
    response = jsonify(session=sid, **issue(sid))
    response.headers["Cache-Control"] = "no-store"
    return response


def cors_origins(app: Flask) -> list[str]:
    raw = app.config.get("KCO_CORS_ORIGINS") or ""
    return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    origins = cors_origins(app)
    if not origins:
        return  # same-origin pages need no CORS; nobody else gets any
    from flask_cors import CORS

    CORS(app, resources={r"/api/sessions/*": {"origins": origins}},
         methods=["GET", "HEAD", "PUT", "POST", "OPTIONS"],
         allow_headers=["Authorization", "Content-Type", "If-None-Match"],
         expose_headers=["ETag", "Retry-After"], max_age=600, supports_credentials=False)

    @app.before_request
    def preflight():
        # A preflight carries no credentials: answer it before the API's authentication does.
        if request.method == "OPTIONS" and SESSION_PATHS.match(request.path):
            return app.make_default_options_response()
        return None
