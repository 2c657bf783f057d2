"""The one API-key check: `Authorization: Bearer {KCO_API_KEY}`, for every blueprint under /api.

The storefront API also takes a session's browser token (callbacks/web/browser.py) on the
endpoints that token opens; the catalog takes the key alone (a shopper's page never writes
products). Both refuse in our error body (docs/design.md §7.4) with the same 401.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue

from callbacks.web import deadline
from callbacks.web.errors import api_error

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kco-sync"'}


def api_key_ok() -> bool:
    """Does the request carry the API key? Compared in constant time."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    expected = current_app.config["KCO_API_KEY"].encode()
    if not hmac.compare_digest(key.strip().encode("utf-8", "replace"), expected):
        return False
    deadline.trust()  # the merchant's back end: its body needs no waiting place
    return True


def unauthorized(alternative: str | None = None) -> ResponseReturnValue:
    """The 401; `alternative` names what else would have opened the endpoint."""
    also = f" (or {alternative})" if alternative else ""
    return api_error(401, f"Missing or wrong API key: send Authorization: Bearer {{KCO_API_KEY}}{also}.",
                     headers=CHALLENGE)


def require_api_key(bp: Blueprint) -> None:
    """Every endpoint of `bp` takes the API key alone: the back end's blueprints (catalog,
    orders, webhook endpoints), never a shopper's page."""

    @bp.before_request
    def authenticate() -> ResponseReturnValue | None:
        return None if api_key_ok() else unauthorized()
