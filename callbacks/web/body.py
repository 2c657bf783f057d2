"""Reading a request body as JSON: the one step Klarna's callbacks and the storefront API share.

Each blueprint turns a BodyError into its own contract's shape (Klarna's `{error_type,
error_text}` on /kco, ours on /api), so the reading itself knows nothing of either.
"""
from __future__ import annotations

import json
from typing import Any

import orjson
from flask import Request, g


class BodyError(Exception):
    """The body is not JSON (or not what a schema wants): `errors` maps field → [problems]."""

    def __init__(self, message: str, errors: dict[str, Any]):
        super().__init__(message)
        self.message, self.errors = message, errors


def too_deep(exc: orjson.JSONDecodeError) -> bool:
    """orjson refused the body for nesting past its limit (1024): no parser here will take it."""
    return "depth limit" in str(exc)


def read_json(request: Request) -> Any:
    """The body as JSON whatever the Content-Type says (Klarna's and curl's are not always
    right). Past MAX_CONTENT_LENGTH this is Werkzeug's 413. Refused as a BodyError: an empty
    body, a syntax error, invalid UTF-8, and nesting too deep for the parser.

    orjson first: a tenth of the standard library's time on a 1000-line order. What it reads is
    also left in `g.strict_json` for the callback log, which stores only strict JSON (no NaN,
    no Infinity, no lone surrogates: PostgreSQL's json type refuses them) and so need not parse
    the body again. What orjson refuses is read as before, by the standard library."""
    raw = request.get_data(cache=True)
    try:
        g.strict_json = value = orjson.loads(raw)
        return value
    except orjson.JSONDecodeError as exc:
        if too_deep(exc):  # the standard library would recurse a thousand frames to say so
            raise BodyError(f"The body is not valid JSON: {exc}",
                            {"_body": [f"Not valid JSON: {exc}"]}) from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BodyError(f"The body is not valid JSON: {exc}", {"_body": [f"Not valid JSON: {exc}"]}) from None
