"""flask-smorest, set up for our contract: the error body, JSON bodies, ETags, /openapi.json.

What is ours rather than flask-smorest's default, and why:

* every HTTP error, anywhere in the app (Klarna's /kco 404s and 413s too), leaves in our body
  `{code, status, message, errors}` (docs/design.md §7.4), `errors` mapping a dotted field to
  its problems and `message` naming them, so a storefront developer reads the problem at once;
* a body is read by callbacks/web/body.py, the step Klarna's callbacks share: JSON whatever
  the Content-Type, and a body that is not JSON is a 400 naming the syntax error;
* If-None-Match compares weakly (RFC 9110 §13.1.2; smorest compares strongly, so a browser
  sending back `W/"…"` would never get its 304) and the 304 carries the ETag and
  Cache-Control; PUT does not require If-Match (the cart is last-writer-wins), yet its reply
  carries the same ETag as the state GET of the same state;
* patterns in /openapi.json are ECMA-262 ones: Python's end-of-string `\\Z` becomes `$`.
"""
from __future__ import annotations

import hashlib
from functools import wraps
from http import HTTPStatus

import flask_smorest
from flask import Flask, Response, abort, request
from webargs.flaskparser import FlaskParser
from werkzeug.routing import UnicodeConverter

from callbacks.storefront.schemas import ErrorSchema
from callbacks.web import jsonprovider
from callbacks.web.body import read_json
from callbacks.web.errors import api_error, flatten, summary

MESSAGES = {413: "The body is larger than 1 MiB.", 404: "No such endpoint.",
            405: "This endpoint does not take that method."}
SESSION_ID_PATTERN = r"^[A-Za-z0-9._~-]{1,128}$"  # web.schemas.SESSION_ID; the view answers 400


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req):
        return read_json(req)  # a BodyError is answered by the storefront's error handler

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        # webargs files the messages under the location ({"json": {…}}); one location per use
        [messages] = error.messages.values() if len(error.messages) == 1 else [error.messages]
        errors = flatten(messages)
        flask_smorest.abort(error_status_code or self.DEFAULT_VALIDATION_STATUS,
                            message=summary(errors), errors=errors, headers=error_headers)


class StoredJSON(bytes):
    """A reply already in JSON, as the database holds it: its ETag is the hash of these bytes.

    The state's text was written by the same encoder (web/jsonprovider.dumps: sorted keys, no
    spaces) from the same dict that a PUT's reply dumps through StateSchema, so both hash to
    the same ETag, as a browser needs for its If-None-Match."""


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    METHODS_NEEDING_CHECK_ETAG: list[str] = []

    @staticmethod
    def _generate_etag(etag_data, extra_data=None):
        """smorest's ETag (a hash of the reply's canonical JSON), with orjson: the standard
        library's sorted dump was half of a 1000-line state read's CPU."""
        if extra_data:
            etag_data = (etag_data, extra_data)
        if isinstance(etag_data, StoredJSON):
            return hashlib.sha1(etag_data).hexdigest()
        return hashlib.sha1(jsonprovider.dumps(etag_data).encode()).hexdigest()

    def _check_not_modified(self, etag):
        if request.method in self.METHODS_CHECKING_NOT_MODIFIED and request.if_none_match.contains_weak(etag):
            response = Response(status=304, headers={"Cache-Control": "private, no-cache"})
            response.set_etag(etag)
            abort(response)

    def arguments(self, schema, *, required: bool = True, **kwargs):
        """`required=False` on a JSON body: an empty body is the schema's defaults, anything
        else is parsed and checked as usual (webargs would read an empty body as bad JSON)."""
        parse = super().arguments(schema, required=required, **kwargs)
        if required or kwargs.get("location", "json") != "json":
            return parse

        def decorate(view):
            parsed = parse(view)

            @wraps(parsed)
            def optional(*args, **kw):
                if request.get_data(cache=True).strip():
                    return parsed(*args, **kw)
                empty = (schema() if isinstance(schema, type) else schema).load({})
                return view(empty, *args, **kw)
            return optional
        return decorate

    def documents(self, *codes: int):
        """Document the error replies an operation can give, all in ErrorSchema's body; any
        other status is the `default` response, in the same body."""
        def decorate(view):
            for code in codes:
                view = self.alt_response(code, response=HTTPStatus(code).name)(view)
            return view
        return decorate


class SessionIdConverter(UnicodeConverter):
    """`<sid:…>`: matches what the default converter matches (a bad id is the view's 400 naming
    it, not a 404); exists so that /openapi.json can say what a session id is."""


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        data = getattr(error, "data", None) or {}
        code = error.code or 500
        message = data.get("message") or MESSAGES.get(code) or error.description or HTTPStatus(code).phrase
        headers = dict(data.get("headers") or {})
        allow = dict(error.get_headers()).get("Allow")  # a 405 names the methods it takes
        if allow:
            headers["Allow"] = allow
        return api_error(code, message, data.get("errors"), headers)


def ecma_pattern(self, field, ret, **_):
    pattern = ret.get("pattern")
    return {"pattern": pattern.replace(r"\Z", "$")} if isinstance(pattern, str) else {}


def make_api(app: Flask) -> Api:
    app.url_map.converters["sid"] = SessionIdConverter
    app.config.setdefault("API_TITLE", "kco-sync storefront API")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "The storefront side of kco-sync (docs/design.md §7). Errors use "
                                "one body: {code, status, message, errors}. Klarna's callbacks "
                                "under /kco are not part of this document."},
        "servers": [{"url": app.config.get("KCO_PUBLIC_URL") or "/"}],
        "security": [{"bearerAuth": []}]})
    api = Api()
    api.register_converter(SessionIdConverter, lambda _: {
        "type": "string", "minLength": 1, "maxLength": 128, "pattern": SESSION_ID_PATTERN,
        "description": "The session id the storefront chose (docs/design.md §3)."})
    api.init_app(app)
    api.ma_plugin.converter.add_attribute_function(ecma_pattern)
    api.spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer", "description": "KCO_API_KEY"})
    api.spec.components.security_scheme("browserToken", {
        "type": "apiKey", "in": "query", "name": "token",
        "description": "A session's browser token (also as Authorization: Bearer): that session's "
                       "state, feed, cart, market and checkout load only."})
    return api

