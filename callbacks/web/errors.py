"""The two error shapes: ours (docs/design.md §7.4) and Klarna's `{error_type, error_text}` (docs/design.md §6.2).

Every error leaves the service in one of these shapes, including Werkzeug's own (404, 405, 413:
rendered by the storefront Api's handler, callbacks/storefront/api.py) and the ones nobody
planned for: a caller must never have to parse an HTML error page.
"""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import InternalServerError, RequestEntityTooLarge

from callbacks.store import faults
from callbacks.web.body import BodyError

log = logging.getLogger(__name__)
MAX_LISTED_ERRORS = 5


def api_error(code: int, message: str, errors: dict[str, Any] | None = None,
              headers: dict[str, Any] | None = None) -> tuple[Response, int, dict[str, Any]]:
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message,
            "errors": errors or {}}
    return jsonify(body), code, headers or {}


def answer_body_errors(bp: Blueprint) -> None:
    """A body that is not JSON is our 400 on every /api blueprint (callbacks/web/body.py reads
    it; Klarna's callbacks answer it in Klarna's shape instead)."""

    @bp.errorhandler(BodyError)
    def not_json(exc: BodyError) -> ResponseReturnValue:
        return api_error(400, exc.message, exc.errors)


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as `{"items.0.quantity": ["…"]}` (docs/design.md §7.4's field → list)."""
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
    """The message of a 4xx: the first few fields and their problems."""
    parts = [f"{field}: {' '.join(problems)}" for field, problems in errors.items()]
    more = len(parts) - MAX_LISTED_ERRORS
    text = "; ".join(parts[:MAX_LISTED_ERRORS])
    return text + (f"; and {more} more" if more > 0 else "")


def klarna_error(error_type: str, error_text: str, errors: dict[str, Any] | None = None) -> tuple[Response, int]:
    """Klarna shows error_text to the shopper and keeps them in the checkout."""
    body: dict[str, Any] = {"error_type": error_type, "error_text": error_text}
    if errors:
        body["errors"] = errors
    return jsonify(body), 400


class LimitedRequest(Request):
    """A chunked body (no Content-Length) over MAX_CONTENT_LENGTH is a 413 too. Werkzeug reads
    such a body through a LimitedStream that stops AT the limit without raising, so without
    this the first 1 MiB would be parsed as if it were the whole body."""

    def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                 parse_form_data: bool = False) -> bytes | str:
        data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        limit = self.max_content_length
        if (limit is not None and self.content_length is None and len(data) >= limit
                and self.environ.get("wsgi.input_terminated")
                and self.environ["wsgi.input"].read(1)):  # the server's stream goes on
            raise RequestEntityTooLarge()
        return data.decode(errors="replace") if as_text else data


# Klarna's callbacks that Klarna shows the shopper an error_text for (the others, push and
# notification, answer in our body: callbacks/klarna/views.py `refuse`).
KLARNA_SHAPED = frozenset({"kco.address_update", "kco.shipping_option_update",
                           "kco.country_change", "kco.validation"})
DATABASE_RETRY_AFTER = "2"  # seconds: a dropped connection is replaced at once, a failover takes a few


def database_unavailable(exc: Exception) -> ResponseReturnValue:
    """A database fault (callbacks/store/faults.py): 503 + Retry-After in the contract's shape,
    one WARNING line. The transaction was rolled back whole by Store.write, which also dropped
    the connection from the pool; nothing of the request was written."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                faults.describe(exc))
    headers = {"Retry-After": DATABASE_RETRY_AFTER, "Cache-Control": "no-store"}
    if request.endpoint in KLARNA_SHAPED:
        from callbacks.rules.texts import Text
        from callbacks.web import i18n

        # The locale Klarna sent, if the body was read; never the session's (the database
        # is what failed), and the shop's overrides are in memory.
        text = i18n.render(Text("temporarily_unavailable"), g.get("klarna_locale"),
                           current_app.extensions["kco"].shop.texts)
        body, _ = klarna_error("approval_failed", text)
        return body, 503, headers
    return api_error(503, "The database is busy or unreachable; try again.", headers=headers)


def init_app(app: Flask) -> None:
    app.request_class = LimitedRequest
    flask_log_exception = app.log_exception

    def log_exception(exc_info: Any) -> None:
        """Flask logs what escapes the view's error handling with its traceback, before any
        handler runs; a database fault gets `database_unavailable`'s one WARNING line instead."""
        if not faults.is_fault(exc_info[1]):
            flask_log_exception(exc_info)
    app.log_exception = log_exception  # type: ignore[method-assign]

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        if faults.is_fault(exc):
            return database_unavailable(exc)
        log.exception("unhandled error")
        return api_error(500, "Internal error; it has been logged.")

    @app.errorhandler(InternalServerError)
    def escaped(exc: InternalServerError) -> ResponseReturnValue:
        # What escaped the view's own error handling (an after_request hook, an error handler
        # that failed in turn) reaches Flask's handle_exception, which hands the handlers a 500
        # wrapping it: without this the storefront Api's HTTPException handler would answer
        # that 500, even for a database fault. (Under TESTING Flask re-raises instead.)
        original = exc.original_exception
        if original is None:  # an abort(500) of our own
            log.error("internal error: %s", exc.description)
            return api_error(500, "Internal error; it has been logged.")
        if not isinstance(original, Exception):
            raise original
        return unexpected(original)
