"""`flask kco replay`: post sample or logged Klarna callbacks and judge the replies (DESIGN.md §9).

A payload is one callback to send: a sample file from `samples/` (format in samples/README.md)
or an entry of the callback log (`--from-log ID`, its scrubbed request). Each is posted, as
Klarna would, to `{BASE}/kco/{callback}?session=…&order_id=…&token=…` with a valid callback
token, and its reply is checked:

* against Klarna's rules for that callback (kco-reference.md §2, §5): a shipping-service 200
  must carry an order Klarna accepts (`rules.shipping_service_reply_errors`), a validation 200
  is empty, a redirect has a `Location`, a 400 is `{error_type, error_text}` with one of
  Klarna's three error types, and no status outside those is one Klarna understands;
* a 5xx is always a failure (Klarna would show its "something went wrong" or retry);
* against the sample's `expect` (status, and error_type for a 400).

No Flask here: the command in `callbacks/cli.py` passes the app in, and this module only uses
`app.config`, `app.test_client()` and the store, so it can be driven from tests or a script.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlencode

import click

from callbacks.rules import amounts as rules
from callbacks.web.schemas import SESSION_ID
from callbacks.web.tokens import callback_token

CALLBACKS = ("address_update", "shipping_option_update", "country_change", "validation", "push",
             "notification")
SHIPPING_SERVICE = frozenset({"address_update", "shipping_option_update", "country_change"})
ERROR_TYPES = frozenset({"address_error", "unsupported_shipping_address", "approval_failed"})
REDIRECTS = frozenset({301, 302, 303, 307})
WRAPPER_KEYS = frozenset({"callback", "note", "session", "order_id", "expect", "body"})
EXPECT_KEYS = frozenset({"status", "error_type"})
PROGRESS_OVER = 10           # more payloads than this, and stderr is a terminal → a progress bar
HTTP_TIMEOUT = (3.05, 10.0)  # connect, read (s); Klarna itself gives validation 3 s
TEXT_LIMIT = 300


class ReplayError(click.ClickException):
    """Bad input (missing file, invalid sample, unknown log id, unreachable --url): exit 2."""

    exit_code = 2


# -- payloads ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    name: str                        # the sample's file name, or "log #12"
    callback: str
    body: Any                        # the JSON body; None = an empty body (push)
    session: str | None = None       # None: a fresh session per payload
    order_id: str | None = None
    expect: Mapping | None = None    # {"status": 200, "error_type"?: "..."}
    note: str = ""
    logged_status: int | None = None  # --from-log: what the service answered back then


def _sample_error(path: Path, problem: str) -> ReplayError:
    return ReplayError(f"{path}: {problem}")


def load_sample(path: Path) -> Payload:
    """One sample file → a Payload; raises ReplayError naming the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _sample_error(path, f"cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _sample_error(path, "not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _sample_error(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _sample_error(path, "a sample is a JSON object {callback, note, expect, body, …}")
    unknown = sorted(set(data) - WRAPPER_KEYS)
    if unknown:
        raise _sample_error(path, f"unknown key(s) {', '.join(unknown)}; a sample has "
                                  f"{', '.join(sorted(WRAPPER_KEYS))}")
    callback = data.get("callback")
    if callback not in CALLBACKS:
        raise _sample_error(path, f"unknown callback {callback!r}; expected one of {', '.join(CALLBACKS)}")
    if "body" not in data:
        raise _sample_error(path, "no body (use \"body\": null for push)")
    body = data["body"]
    if callback == "push" and body is not None:
        raise _sample_error(path, "Klarna's push has an empty body: use \"body\": null")
    if callback != "push" and not isinstance(body, dict):
        raise _sample_error(path, f"the {callback} body must be a JSON object")
    session = data.get("session")
    if session is not None and not (isinstance(session, str) and SESSION_ID.match(session)):
        raise _sample_error(path, f"session {session!r} is not 1–128 characters of A–Z a–z 0–9 . _ ~ -")
    order_id = data.get("order_id")
    if order_id is not None and not (isinstance(order_id, str) and order_id):
        raise _sample_error(path, "order_id must be a non-empty string")
    note = data.get("note", "")
    if not isinstance(note, str):
        raise _sample_error(path, "note must be a string")
    return Payload(path.name, callback, body, session, order_id, _expect(path, data.get("expect")), note)


def _expect(path: Path, expect: Any) -> dict:
    if not isinstance(expect, dict) or "status" not in expect:
        raise _sample_error(path, "expect must be an object with a status, e.g. {\"status\": 200}")
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise _sample_error(path, f"unknown key(s) in expect: {', '.join(unknown)}")
    status = expect["status"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _sample_error(path, f"expect.status {status!r} is not an HTTP status")
    error_type = expect.get("error_type")
    if error_type is not None and error_type not in ERROR_TYPES:
        raise _sample_error(path, f"expect.error_type {error_type!r} is not one of "
                                  f"{', '.join(sorted(ERROR_TYPES))}")
    return dict(expect)


def collect(paths: Iterable[Path | str]) -> list[Payload]:
    """Files as given, directories as every *.json inside (not recursive), sorted by name."""
    payloads: list[Payload] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.json") if p.is_file())
            if not files:
                raise ReplayError(f"{path}: no *.json samples in this directory")
            payloads += [load_sample(p) for p in files]
        elif path.exists():
            payloads.append(load_sample(path))
        else:
            raise ReplayError(f"{path}: no such file or directory")
    return payloads


def from_log(store: Any, log_id: int) -> Payload:
    """A logged callback, as it was received (scrubbed: names, e-mails, postcodes and the like
    read "[scrubbed]"; no decision uses them), to the same callback, session and order id."""
    row = store.logged_callback(log_id)
    if row is None:
        raise ReplayError(f"no callback log entry with id {log_id}")
    callback = row["callback"]
    if callback not in CALLBACKS:
        raise ReplayError(f"callback log entry {log_id} is for {callback!r}, which cannot be replayed")
    body = row["request"]
    if isinstance(body, dict) and "_omitted" in body:
        raise ReplayError(f"callback log entry {log_id} kept no body ({body['_omitted']})")
    if callback == "push":
        body = None
    return Payload(f"log #{log_id}", callback, body, row["session"], row["order_id"], None,
                   f"logged {row['at']:%Y-%m-%d %H:%M:%S} UTC" if row.get("at") else "",
                   logged_status=row["status"])


def fresh_session() -> str:
    return f"replay-{uuid.uuid4().hex[:16]}"


# -- sending ---------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    content: bytes
    ms: float = 0.0

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def json(self) -> Any:
        """The parsed body, or None when it is empty or not JSON."""
        try:
            return json.loads(self.content) if self.content.strip() else None
        except (ValueError, UnicodeDecodeError):
            return None

    def text(self, limit: int = TEXT_LIMIT) -> str:
        text = self.content.decode("utf-8", "replace").strip()
        return text if len(text) <= limit else text[:limit] + "…"


Sender = Callable[[str, bytes | None, Mapping[str, str]], Reply]


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
    """The URL we put in merchant_urls (DESIGN.md §6.1), relative to the service's base."""
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
    return Payload(payload.name, payload.callback, body, payload.session, order_id,
                   payload.expect, payload.note, payload.logged_status)


# -- judging ---------------------------------------------------------------------------------
@dataclass
class Result:
    payload: Payload
    session: str
    order_id: str | None
    reply: Reply
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _klarna_error_problems(callback: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return [f"a {callback} 400 must be JSON {{error_type, error_text}}"]
    problems = []
    if body.get("error_type") not in ERROR_TYPES:
        problems.append(f"error_type {body.get('error_type')!r} is not one of "
                        f"{', '.join(sorted(ERROR_TYPES))}")
    if not isinstance(body.get("error_text"), str) or not body["error_text"].strip():
        problems.append("error_text missing (Klarna shows it to the shopper)")
    return problems


def rule_problems(callback: str, reply: Reply) -> list[str]:
    """What breaks Klarna's contract for this callback's reply (kco-reference.md §2.5)."""
    status = reply.status
    if status == 0:
        return ["no reply within the timeout"]
    if status >= 500:
        return [f"server error {status}"]
    if callback in ("push", "notification"):
        return []  # Klarna only looks for a 2xx / 200; `expect` judges the rest
    if status == 200:
        if callback == "validation":
            return [] if not reply.content.strip() else ["a validation 200 must have an empty body"]
        body = reply.json()
        if not isinstance(body, dict):
            return [f"a {callback} 200 must be a JSON object"]
        broken = rules.shipping_service_reply_errors(body)
        return [f"breaks Klarna's rules: {', '.join(broken)}"] if broken else []
    if status in REDIRECTS:
        return [] if reply.header("Location") else [f"a {status} without a Location header"]
    if status == 400:
        return _klarna_error_problems(callback, reply.json())
    return [f"status {status} means nothing to Klarna for {callback} "
            "(200, 301/302/303/307 + Location, or 400 {error_type, error_text})"]


def expect_problems(expect: Mapping | None, reply: Reply) -> list[str]:
    if not expect or reply.status == 0:
        return []
    if reply.status != expect["status"]:
        return [f"expected {expect['status']}, got {reply.status}"]
    want = expect.get("error_type")
    if want:
        body = reply.json()
        got = body.get("error_type") if isinstance(body, dict) else None
        if got != want:
            return [f"expected error_type {want}, got {got}"]
    return []


def judge(payload: Payload, reply: Reply) -> list[str]:
    return rule_problems(payload.callback, reply) + expect_problems(payload.expect, reply)


def send_one(payload: Payload, send: Sender, secret: str, *, session: str | None = None,
             order_id: str | None = None) -> Result:
    """Post one payload: `session` / `order_id` override the payload's (--session, --order-id)."""
    if order_id:
        payload = _with_order_id(payload, order_id)
    sid = session or payload.session or fresh_session()
    oid = _order_id(payload)
    headers: dict[str, str] = {"User-Agent": "kco-sync-replay"}
    data = None
    if payload.body is not None:
        data = json.dumps(payload.body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    reply = send(callback_path(payload.callback, sid, oid, secret), data, headers)
    return Result(payload, sid, oid, reply, judge(payload, reply))


# -- reporting -------------------------------------------------------------------------------
def describe(result: Result) -> str:
    """A few words on what came back."""
    reply, callback = result.reply, result.payload.callback
    body = reply.json()
    if reply.status == 0:
        return f"no reply in {reply.ms / 1000:.1f} s"
    if reply.status in REDIRECTS:
        return f"→ {reply.header('Location') or '(no Location)'}"
    if isinstance(body, dict) and "error_type" in body:
        return f"{body.get('error_type')}: {body.get('error_text')}"
    if isinstance(body, dict) and "message" in body and "code" in body:
        return str(body["message"])
    if reply.status == 200 and callback in SHIPPING_SERVICE and isinstance(body, dict):
        lines = body.get("order_lines") or []
        options = body.get("shipping_options") or []
        return (f"{body.get('order_amount')} {body.get('purchase_currency')}, {len(lines)} "
                f"line{'s' * (len(lines) != 1)}, {len(options)} shipping option"
                f"{'s' * (len(options) != 1)}, {body.get('locale')}")
    if 200 <= reply.status < 300 and not reply.content.strip():
        return {"validation": "approved", "push": "accepted"}.get(callback, "recorded")
    return reply.text(120) or "(empty body)"


def report_line(result: Result, width: int = 32) -> str:
    verdict = "ok  " if result.ok else "FAIL"
    line = (f"{verdict}  {result.payload.name:<{width}}  {result.payload.callback:<22}  "
            f"{result.reply.status or '---':>3}  {describe(result)}")
    if result.payload.logged_status is not None:
        line += f"  (logged: {result.payload.logged_status})"
    if not result.ok:
        line += "\n      " + "; ".join(result.problems)
        if result.reply.status >= 400 or result.reply.status == 0:
            line += f"\n      reply: {result.reply.text() or '(empty body)'}"
    return line


def verbose_lines(result: Result) -> str:
    reply = result.reply
    out = [f"      POST /kco/{result.payload.callback}?session={result.session}"
           + (f"&order_id={result.order_id}" if result.order_id else "")
           + f"  ({reply.ms:.1f} ms)"]
    if result.payload.note:
        out.append(f"      note: {result.payload.note}")
    if reply.header("Location"):
        out.append(f"      Location: {reply.header('Location')}")
    body = reply.json()
    if body is not None:
        out += ["      " + line for line in json.dumps(body, indent=2, ensure_ascii=False).splitlines()]
    elif reply.content.strip():
        out.append("      " + reply.text(2000))
    return "\n".join(out)


def summary(results: Sequence[Result]) -> str:
    ok = sum(r.ok for r in results)
    failed = len(results) - ok
    return f"{len(results)} sent, {ok} ok" + (f", {failed} failed" if failed else "")


# -- the command -----------------------------------------------------------------------------
def run(app: Any, paths: Sequence[str], *, url: str | None = None, session: str | None = None,
        log_ids: Sequence[int] = (), order_id: str | None = None, verbose: bool = False,
        progress: bool | None = None) -> int:
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
        return _run(payloads, send, secret, session=session, order_id=order_id,
                    verbose=verbose, progress=progress, width=width)
    finally:
        calllog.setLevel(level)


def _run(payloads: Sequence[Payload], send: Sender, secret: str, *, session: str | None,
         order_id: str | None, verbose: bool, progress: bool, width: int) -> int:
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
                results.append(send_one(payload, send, secret, session=session, order_id=order_id))
        for result in results:
            emit(result)
    else:
        for payload in payloads:
            results.append(send_one(payload, send, secret, session=session, order_id=order_id))
            emit(results[-1])
    click.echo(summary(results))
    return 0 if all(r.ok for r in results) else 1
