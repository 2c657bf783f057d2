"""Replay's verdicts: Klarna's rules for each callback's reply, the sample's `expect`, and the
report lines (samples/README.md, "What is checked").

Three verdicts, because they ask for different work. FAIL: the reply breaks Klarna's contract (a
5xx, no reply, a 200 Klarna would refuse, a status Klarna does not understand) or was not sent
— something is broken. CHANGED: a reply Klarna would accept, but not the one expected — its
status or its class (the error_type of a 400) differs from the sample's `expect` or from the
status and reply the callback log recorded — the service now decides differently, which may be
a fix or a regression; a person must look. ok: neither. Only ok exits 0.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callbacks.cli.samples import ERROR_TYPES, Payload
from callbacks.rules import amounts as rules

SHIPPING_SERVICE = frozenset({"address_update", "shipping_option_update", "country_change"})
REDIRECTS = frozenset({301, 302, 303, 307})
TEXT_LIMIT = 300


@dataclass
class Reply:
    status: int                      # 0: no reply (a timeout, or not sent at all)
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


@dataclass
class Result:
    payload: Payload
    session: str
    order_id: str | None
    reply: Reply
    problems: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[str]:
        """How the reply differs from what was expected (the sample's `expect`) or answered
        before (the logged status and reply): 200 then, 400 now; approval_failed then,
        address_error now."""
        return expect_problems(self.payload.expect, self.reply) + logged_changes(self.payload, self.reply)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.changed


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
    """What breaks Klarna's contract for this callback's reply (docs/klarna.md §2.5)."""
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


def reply_class(status: int, body: Any) -> str:
    """What Klarna does with a reply, in a few words: its status, and for a 400 its error_type
    (Klarna shows the shopper a different message for each)."""
    if status == 400 and isinstance(body, dict) and isinstance(body.get("error_type"), str):
        return f"400 {body['error_type']}"
    return str(status)


def logged_changes(payload: Payload, reply: Reply) -> list[str]:
    """A replayed log entry against what the service answered back then."""
    if payload.logged_status is None or reply.status == 0:
        return []
    then = reply_class(payload.logged_status, payload.logged_reply)
    now = reply_class(reply.status, reply.json())
    return [] if then == now else [f"logged {then}, now {now}"]


def judge(payload: Payload, reply: Reply) -> list[str]:
    """What breaks Klarna's contract (FAIL); how the reply differs from `expect` or the log is
    Result.changes (CHANGED)."""
    return rule_problems(payload.callback, reply)


# -- reporting -------------------------------------------------------------------------------
def describe(result: Result) -> str:
    """A few words on what came back."""
    reply, callback = result.reply, result.payload.callback
    body = reply.json()
    if reply.status == 0:
        return f"no reply in {reply.ms / 1000:.1f} s" if reply.ms else "not sent"
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


def verdict(result: Result) -> str:
    return "FAIL" if result.problems else "CHANGED" if result.changed else "ok"


def report_line(result: Result, width: int = 32) -> str:
    line = (f"{verdict(result):<7}  {result.payload.name:<{width}}  {result.payload.callback:<22}  "
            f"{result.reply.status or '---':>3}  {describe(result)}")
    if result.payload.logged_status is not None:
        line += f"  (logged: {result.payload.logged_status})"
    if not result.ok:
        line += "\n         " + "; ".join(result.problems + result.changes)
        if result.reply.status >= 400 or (result.reply.status == 0 and result.reply.ms):
            line += f"\n         reply: {result.reply.text() or '(empty body)'}"
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
    ok = sum(verdict(r) == "ok" for r in results)
    changed = sum(verdict(r) == "CHANGED" for r in results)
    failed = sum(verdict(r) == "FAIL" for r in results)
    return (f"{len(results)} sent, {ok} ok" + (f", {changed} changed" if changed else "")
            + (f", {failed} failed" if failed else ""))


