"""What a shopper's browser may do with its session's browser token, and CORS for the
storefront origins the merchant names (KCO_CORS_ORIGINS).

The page must never hold KCO_API_KEY, yet it has to write its own cart and market and load its
own checkout. The browser token (callbacks/web/tokens.py) opens exactly those endpoints of the
one session it was signed for, until it expires — never another session, the global feed or the
callback log, whose endpoints are simply not in the list below. Prices cannot come from a
browser: a cart names references and quantities, and pricing reads the shop file.

The merchant's back end gets a token with the API key (`POST /api/sessions/{sid}/browser-token`,
in callbacks/storefront/views.py) and the checkout load returns a fresh one.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, request
from flask.typing import ResponseReturnValue

from callbacks.web import auth, deadline
from callbacks.web.body import read_json
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
    if not check_browser_token(current_app.config["KCO_CALLBACK_SECRET"], sid, presented_token()):
        return False
    if sid is not None:
        deadline.from_session(sid)  # its body, if slow, waits in one of the session's places
    return True


def issue(sid: str) -> dict[str, Any]:
    """A fresh token for `sid` and when it stops working (ISO 8601, UTC)."""
    token = browser_token(current_app.config["KCO_CALLBACK_SECRET"], sid)
    expiry = browser_token_expiry(token)
    assert expiry is not None  # a token just made reads back
    expires = datetime.fromtimestamp(expiry, UTC)
    return {"browser_token": token, "expires_at": expires.isoformat().replace("+00:00", "Z")}


def cors_origins(app: Flask) -> list[str]:
    raw = app.config.get("KCO_CORS_ORIGINS") or ""
    return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]


def by_browser_token() -> bool:
    """Is the browser token, not the API key, what opens this request? (The storefront's
    authentication has already refused a request with neither.)"""
    return not auth.api_key_ok() and token_opens()


# endpoint → body fields only the API key may send: the shop's own order number reaches the
# Klarna order, the order_completed event and the support console as the merchant's word.
API_KEY_ONLY = {
    "storefront.put_cart": ("merchant_reference1",),
    "storefront.load_checkout": ("merchant_reference1",),
}


def refuse_merchant_fields() -> ResponseReturnValue | None:
    """Storefront: a browser token sending a field of API_KEY_ONLY is a 403 naming it (the
    body is parsed here only if the field's name, an escape that could spell it, or a NUL byte
    is in it: read_json also takes UTF-16 and UTF-32 bodies, where every ASCII character comes
    with NUL bytes and the name is not its UTF-8 bytes; UTF-8 JSON never holds a raw NUL).
    A request with the API key, or with neither credential (the API's 401), passes on."""
    fields = API_KEY_ONLY.get(request.endpoint or "")
    if not fields or not by_browser_token():
        return None
    raw = request.get_data(cache=True)
    if not any(f.encode() in raw for f in fields) and b"\\u" not in raw and b"\0" not in raw:
        return None
    body = read_json(request)  # not JSON: the storefront's 400, as the view would give
    sent = [f for f in fields if isinstance(body, dict) and f in body]
    if not sent:
        return None
    return api_error(403, f"{', '.join(sent)}: only the API key may set this (the shop's own "
                          "order number), not a browser token.",
                     {f: ["Only with the API key."] for f in sent})


def init_app(app: Flask) -> None:
    app.before_request_funcs.setdefault("storefront", []).append(refuse_merchant_fields)
    origins = cors_origins(app)
    if not origins:
        return  # same-origin pages need no CORS; nobody else gets any
    from flask_cors import CORS

    CORS(app, resources={r"/api/sessions/*": {"origins": origins}},
         methods=["GET", "HEAD", "PUT", "POST", "OPTIONS"],
         allow_headers=["Authorization", "Content-Type", "If-None-Match"],
         expose_headers=["ETag", "Retry-After"], max_age=600, supports_credentials=False)

    @app.after_request
    def vary_on_origin(response: Response) -> Response:
        # Whether a reply carries Access-Control-Allow-Origin depends on the request's Origin:
        # a cache must not hand one origin's reply (or its absence) to another.
        if request.path.startswith("/api/sessions/"):  # CORS's resources, below
            response.vary.add("Origin")
        return response

    @app.before_request
    def preflight() -> ResponseReturnValue | None:
        # A preflight carries no credentials: answer it before the API's authentication does.
        if request.method == "OPTIONS" and SESSION_PATHS.match(request.path):
            return app.make_default_options_response()
        return None
