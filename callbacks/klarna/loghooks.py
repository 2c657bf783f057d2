"""The callback log on Klarna's blueprint (docs/design.md §8): every Klarna callback, scrubbed,
for support and replay.

`install(bp)` hooks the blueprint: a `before_request` that notes the start time, and one
`after_request` that records, for every callback whose token is right, whatever the view
answered — 200, 303, 400, 413, 500 alike: the scrubbed request body (scrub.py), the reply, the
status and how long we took. Nothing a view does or forgets can leave a callback out. A request
with a missing or wrong token is NOT recorded (docs/design.md §6.1: "nothing recorded"), neither
in the table nor in the log; it is only counted in the metrics. The same hook feeds the
Prometheus counters and histogram and writes one Python log line. A body over 1 MiB is a log
line only.

A callback that changes a session calls `apply_logged` instead of Store.apply: the one step that
decides, saves and writes the callback's row in the same transaction, and returns the reply to
send, which carries its row (`LOGGED`) so the hook only writes the log line. If the transaction
rolls back, there is no such reply: the hook records the refusal as for any other callback.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from time import perf_counter
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from callbacks.klarna import calllog
from callbacks.store import faults
from callbacks.web.body import too_deep
from callbacks.web.tokens import CALLBACK, check_token

LOGGED = "kco_log_entry"  # the Response attribute: (row, written in the session's transaction)

__all__ = ["LOGGED", "NoReply", "apply_logged", "install"]


def install(bp: Blueprint) -> None:
    """Hook the log onto Klarna's blueprint; call once, right after creating it, so the start
    time is taken before the token check."""
    bp.before_request(_start)
    bp.after_request(_record)


def apply_logged(store, sid: str, decide: Callable, reply: Callable[[Any], Any],
                 status: int = 200) -> tuple[Any, Response | None]:
    """Store.apply(sid, decide), with this callback's log row in the same transaction.
    `reply(decision)` is the body to answer (None: an empty body), or the function raises
    `NoReply` to answer nothing from here (a refusal the view raises after the commit, which
    the hook then records with its status). Returns the decision and the Response to send, or
    None when there is none."""
    written: list[tuple[dict, bool, Any]] = []

    def log_in(tx, decision):
        try:
            body = reply(decision)
        except NoReply:
            return
        entry = calllog.row(_callback(), request.args.get("session"), request.args.get("order_id"),
                            status, _elapsed(), _request_body(), body, ours=True)
        written.append((entry, calllog.write_in(store, tx.conn, entry), body))

    _, decision = store.apply(sid, decide, log_in)
    if not written:
        return decision, None
    entry, in_transaction, body = written[0]
    response = jsonify(body) if body is not None else current_app.response_class("", status=status)
    response.status_code = status
    setattr(response, LOGGED, (entry, in_transaction))
    return decision, response


class NoReply(Exception):
    """Raised by apply_logged's `reply`: this decision is not answered from the transaction."""


def _start() -> None:
    # A CLI replay (or a test) sends several requests inside one app context, whose `g` they
    # share: nothing of the last request may be taken for this one's.
    g.pop("strict_json", None)
    g.kco_callback_started = perf_counter()


def _elapsed() -> float:
    started = g.get("kco_callback_started")
    return perf_counter() - started if started is not None else 0.0


def _callback() -> str:
    return (request.endpoint or "kco.unknown").rsplit(".", 1)[-1]


def _record(response: Response) -> Response:
    seconds, callback = _elapsed(), _callback()
    g.pop("kco_callback_started", None)
    try:
        metrics = current_app.extensions.get("kco_metrics")
        if metrics is not None:
            metrics.observe_callback(callback, response.status_code, seconds)
        sid, token = request.args.get("session"), request.args.get("token")
        if not check_token(current_app.config["KCO_CALLBACK_SECRET"], CALLBACK, sid, token):
            return response  # a wrong token leaves no trace (docs/design.md §6.1)
        if response.status_code == 413:
            # An oversize body is refused with nothing recorded: a log line only.
            calllog.log.warning("kco %s session=%s -> 413 (body over 1 MiB)", callback, sid)
            return response
        logged = getattr(response, LOGGED, None)
        if logged is not None and response.status_code == logged[0]["status"]:
            entry, in_transaction = logged
            if not in_transaction:
                calllog.write(current_app.extensions["kco"].store, entry)
            calllog.log_line(entry, entry["duration_ms"] / 1000)
            return response
        entry = calllog.row(callback, sid, request.args.get("order_id"), response.status_code,
                            seconds, _request_body(), _reply_body(response))
        calllog.write(current_app.extensions["kco"].store, entry)
        calllog.log_line(entry, seconds)
    except Exception as exc:  # noqa: BLE001 - the log must never break Klarna's reply
        if faults.is_fault(exc):  # the database is away: one line, no traceback
            calllog.log.warning("could not record the %s callback: %s", callback, faults.describe(exc))
        else:
            calllog.log.exception("could not record the %s callback", callback)
    return response


def _request_body() -> Any:
    if "strict_json" in g:  # already read by the view (web/body.py): the same JSON
        return g.strict_json
    try:
        raw = request.get_data(cache=True)
    except HTTPException as exc:  # 413: the body is over the limit and was never read
        return {"_omitted": f"body not read ({exc.code} {exc.name})"}
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if too_deep(exc):  # not parsed again by the standard library, a thousand frames deep
            return {"_omitted": f"{len(raw)} bytes that are not JSON"}
    try:  # NaN and Infinity are not JSON (RFC 8259), and PostgreSQL's json type refuses them
        return json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {"_omitted": f"{len(raw)} bytes that are not JSON"}


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return value


def _reply_body(response: Response) -> Any:
    if response.is_streamed:
        return None
    if response.is_json:
        return response.get_json(silent=True)
    if response.status_code in (301, 302, 303, 307, 308):
        return {"location": response.headers.get("Location")}
    return None
