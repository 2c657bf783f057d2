"""`flask kco replay`: post sample or logged Klarna callbacks and judge the replies (docs/design.md §9).

A payload is one callback to send: a sample file from `samples/` (format in samples/README.md)
or an entry of the callback log (`--from-log ID`, its scrubbed request); samples.py loads them.
Each is posted, as Klarna would, to `{BASE}/kco/{callback}?session=…&order_id=…&token=…` with a
valid callback token, and its reply is judged (verdicts.py):

* against Klarna's rules for that callback (docs/klarna.md §2, §5): a shipping-service 200
  must carry an order Klarna accepts (`rules.shipping_service_reply_errors`), a validation 200
  is empty, a redirect has a `Location`, a 400 is `{error_type, error_text}` with one of
  Klarna's three error types, and no status outside those is one Klarna understands;
* a 5xx is always a failure (Klarna would show its "something went wrong" or retry);
* against the sample's `expect` (status, and error_type for a 400), or for a log entry against
  the status and reply logged then: a reply Klarna accepts that differs is CHANGED, not ok.

A sample with `klarna_order` (push, notification) needs Klarna to know a completed order of its
session: replay makes one at the sandbox first (prepare.py), unless `--order-id` names one. The
sandbox is `--sandbox-url`, else the app's KLARNA_API_URL, which outside production follows
./scripts/run.sh when unset (where.py) — the Klarna the running service calls.

No Flask here: the command in `callbacks/cli/commands.py` passes the app in, and this module
only uses `app.config`, `app.test_client()`, the store and the Klarna client, so it can be
driven from tests or a script.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from time import perf_counter
from typing import Any
from urllib.parse import urlencode

import click

from callbacks.cli import prepare, where
from callbacks.cli.samples import CALLBACKS, Payload, ReplayError, collect, fresh_session, from_log, load_sample
from callbacks.cli.verdicts import Reply, Result, judge, report_line, rule_problems, summary, verbose_lines
from callbacks.web.schemas import SESSION_ID
from callbacks.web.tokens import callback_token

# What tests and scripts reach for through this module.
__all__ = ["CALLBACKS", "Payload", "Reply", "ReplayError", "Result", "load_sample",
           "rule_problems", "run", "send_one"]

PROGRESS_OVER = 10           # more payloads than this, and stderr is a terminal → a progress bar
HTTP_TIMEOUT = (3.05, 10.0)  # connect, read (s); Klarna itself gives validation 3 s

Sender = Callable[[str, bytes | None, Mapping[str, str]], Reply]


# -- sending ---------------------------------------------------------------------------------
def in_process(app: Any) -> Sender:
    """Through the app's test client: the real views, writing into the app's database. The
    response is closed, so a push's after-reply work (read the order from Klarna, record it,
    acknowledge it) runs as it would under a server."""
    client = app.test_client()

    def send(path: str, data: bytes | None, headers: Mapping[str, str]) -> Reply:
        started = perf_counter()
        try:
            response = client.post(path, data=data, headers=dict(headers))
        except Exception as exc:  # noqa: BLE001 - what a server would answer with a 500
            return Reply(500, {}, f"in-process exception: {exc!r}".encode(),
                         (perf_counter() - started) * 1000)
        try:
            content = response.get_data()
        finally:
            response.close()
        return Reply(response.status_code, dict(response.headers), content,
                     (perf_counter() - started) * 1000)

    return send


def over_http(base_url: str, timeout: Any = HTTP_TIMEOUT) -> Sender:
    """Over HTTP with requests. A server that cannot be reached stops the replay (exit 2); a
    read timeout is a failed reply (Klarna would have given up too)."""
    import requests

    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ReplayError(f"--url {base_url!r} must start with http:// or https://")
    http = requests.Session()

    def send(path: str, data: bytes | None, headers: Mapping[str, str]) -> Reply:
        started = perf_counter()
        try:
            r = http.post(base + path, data=data, headers=dict(headers), timeout=timeout,
                          allow_redirects=False)
        except requests.exceptions.ReadTimeout:
            return Reply(0, {}, b"", (perf_counter() - started) * 1000)
        except requests.exceptions.RequestException as exc:
            raise ReplayError(f"cannot reach {base}: {_reason(exc)}") from None
        return Reply(r.status_code, dict(r.headers), r.content, (perf_counter() - started) * 1000)

    return send


def _reason(exc: Exception) -> str:
    """Why a connection failed, in a few words and without the URL (it carries the token)."""
    import requests

    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if errno:
        return errno.group(0).strip()
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    return type(exc).__name__


def callback_path(callback: str, session: str, order_id: str | None, secret: str) -> str:
    """The URL we put in merchant_urls (docs/design.md §6.1), relative to the service's base."""
    params = {"session": session}
    if order_id:
        params["order_id"] = order_id
    params["token"] = callback_token(secret, session)
    return f"/kco/{callback}?{urlencode(params)}"


def _order_id(payload: Payload) -> str | None:
    if payload.order_id:
        return payload.order_id
    if payload.callback in ("validation", "notification") and isinstance(payload.body, dict):
        found = payload.body.get("order_id")
        return found if isinstance(found, str) and found else None
    return None


def _with_order_id(payload: Payload, order_id: str) -> Payload:
    body = payload.body
    if payload.callback in ("validation", "notification") and isinstance(body, dict):
        body = {**body, "order_id": order_id}
    return replace(payload, body=body, order_id=order_id)


def send_one(payload: Payload, send: Sender, secret: str, *, session: str | None = None,
             order_id: str | None = None, app: Any = None, klarna: str = "KLARNA_API_URL") -> Result:
    """Post one payload: `session` / `order_id` override the payload's (--session, --order-id).
    With `app`, a payload that needs a Klarna order (and has no --order-id) gets one first, at
    the app's KLARNA_API_URL (`klarna` says how that was found, for the message)."""
    sid = session or payload.session or fresh_session()
    if not (order_id or session or payload.session or payload.klarna_order) and _order_id(payload):
        # A fresh session is a new shopper with a new Klarna order: the sample's own order id
        # is another session's from the second run on, and that is refused (one session per
        # Klarna order: callbacks/klarna/binding.py).
        order_id = str(uuid.uuid4())
    if not order_id and payload.klarna_order and app is not None:
        try:
            order_id = prepare.klarna_order(app, sid, payload.klarna_order, source=klarna)
        except prepare.NotPrepared as exc:
            return Result(payload, sid, None, Reply(0, {}, b""), [f"not sent: {exc}"])
    if order_id:
        payload = _with_order_id(payload, order_id)
    oid = _order_id(payload)
    headers: dict[str, str] = {"User-Agent": "kco-sync-replay"}
    data = None
    if payload.body is not None:
        data = json.dumps(payload.body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    reply = send(callback_path(payload.callback, sid, oid, secret), data, headers)
    return Result(payload, sid, oid, reply, judge(payload, reply))


# -- the command -----------------------------------------------------------------------------
def run(app: Any, paths: Sequence[str], *, url: str | None = None, session: str | None = None,
        log_ids: Sequence[int] = (), order_id: str | None = None, verbose: bool = False,
        progress: bool | None = None, sandbox_url: str | None = None) -> int:
    """What `flask kco replay` does; returns the exit code (0 all ok, 1 any failure).
    Raises ReplayError (exit 2) for bad input before anything is sent, or an unreachable URL."""
    if not paths and not log_ids:
        raise ReplayError("nothing to replay: give sample files or directories, or --from-log ID")
    if session is not None and not SESSION_ID.match(session):
        raise ReplayError(f"--session {session!r} is not 1–128 characters of A–Z a–z 0–9 . _ ~ -")
    payloads = collect(paths)
    store = app.extensions["kco"].store
    payloads += [from_log(store, log_id) for log_id in log_ids]
    send = over_http(url) if url else in_process(app)
    klarna = where.locate(app.config, "KLARNA_API_URL", "--sandbox-url", sandbox_url)
    if sandbox_url:
        # Before the app's first Klarna call: its client is made from app.config when first used,
        # so the orders made here and, in-process, the push's reads all go to this sandbox.
        app.config["KLARNA_API_URL"] = klarna.url
    secret = app.config["KCO_CALLBACK_SECRET"]
    width = min(max(len(p.name) for p in payloads), 56)
    if progress is None:
        progress = len(payloads) > PROGRESS_OVER and sys.stderr.isatty()
    # In-process, the service logs one INFO line per callback (calllog); the report says it
    # better, so those are hidden unless -v. Warnings (a push that cannot reach Klarna) stay.
    calllog = logging.getLogger("callbacks.klarna.calllog")
    level = calllog.level
    if not url and not verbose:
        calllog.setLevel(logging.WARNING)
    try:
        return _run(payloads, lambda p: send_one(p, send, secret, session=session, order_id=order_id,
                                                 app=app, klarna=klarna.source),
                    verbose=verbose, progress=progress, width=width)
    finally:
        calllog.setLevel(level)


def _run(payloads: Sequence[Payload], send_one: Callable[[Payload], Result], *, verbose: bool,
         progress: bool, width: int) -> int:
    def emit(result: Result) -> None:
        click.echo(report_line(result, width))
        if verbose:
            click.echo(verbose_lines(result))

    results: list[Result] = []
    if progress:
        # Lines would tear the bar apart: the report follows once everything is sent.
        with click.progressbar(payloads, label="replaying", file=sys.stderr,
                               item_show_func=lambda p: p.name if p else None) as bar:
            for payload in bar:
                results.append(send_one(payload))
        for result in results:
            emit(result)
    else:
        for payload in payloads:
            results.append(send_one(payload))
            emit(results[-1])
    click.echo(summary(results))
    return 0 if all(r.ok for r in results) else 1
