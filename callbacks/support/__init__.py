"""The support console at /support/: read-only pages for whoever answers the phone.

It is off unless KCO_SUPPORT_PASSWORD is set — every /support URL is then a 404, so a
deployment that never asked for it exposes nothing. This package also records the storefront's
writes (method, path, status, duration, the scrubbed body and the reply's gist; not the 401s
and 429s), because the console's timeline shows them next to Klarna's callbacks and our own
Klarna API calls.
"""
from __future__ import annotations

import logging
import os
from time import perf_counter

from flask import Flask, current_app, g, request

from callbacks.klarna.scrub import scrub
from callbacks.store import activity
from callbacks.web import deadline, schemas

log = logging.getLogger(__name__)
WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})
SESSION_PATH = "/api/sessions/"
# 401: anyone may send those. 429: refused by a throttle before anything was done; a row for
# each would turn a throttled burst into as many database writes as it had requests.
NOT_RECORDED = frozenset({401, 429})


def init_app(app: Flask) -> None:
    from callbacks.support.views import bp

    app.config.setdefault("KCO_SUPPORT_PASSWORD", os.environ.get("KCO_SUPPORT_PASSWORD") or None)
    app.register_blueprint(bp)
    app.before_request(_start)
    app.after_request(_record_storefront_write)


def _start() -> None:
    g.kco_request_started = perf_counter()


def _record_storefront_write(response):
    """One activity row per authenticated storefront write to a session (a 401 leaves no
    trace: anyone may send those). Never breaks the reply it describes."""
    try:
        _record(response)
    except Exception:  # noqa: BLE001 - support's record must never turn a reply into a 500
        log.exception("could not record the storefront write %s %s", request.method, request.path)
    return response


def _body():
    if deadline.unread():  # refused before its body was read (429, 401): never wait for it now
        return {"_omitted": "body not read"}
    try:
        return scrub(request.get_json(silent=True))
    except RecursionError:  # [[[[…: refused by the view; scrub() recurses, so omit it here
        return {"_omitted": "JSON nested too deep"}


def _record(response) -> None:
    if request.method not in WRITES or not request.path.startswith(SESSION_PATH):
        return
    sid, _, rest = request.path[len(SESSION_PATH):].partition("/")
    if response.status_code in NOT_RECORDED or not schemas.SESSION_ID.match(sid):
        return
    started = g.get("kco_request_started")
    seconds = perf_counter() - started if started is not None else 0.0
    reply = response.get_json(silent=True) if response.is_json else None
    if isinstance(reply, dict) and response.status_code < 400:
        state = reply.get("state", reply)
        reply = {"version": state.get("version"), "order_id": reply.get("order_id")}
    detail = {"request": _body(), "reply": scrub(reply)}
    activity.record(current_app.extensions["kco"].store, activity.STOREFRONT,
                    f"{request.method} {rest or '(session)'}", response.status_code, seconds,
                    detail, session=sid)
