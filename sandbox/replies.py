"""How Klarna treats a merchant's reply to a callback (docs/klarna.md §2.2, §2.3, §2.5).

Pure: a `Reply` (what came back over HTTP) in, a `Verdict` (what Klarna does with it and what the
shopper sees) out. No Flask, no network, no orders.

Shipping-service callbacks (address_update, shipping_option_update, country_change):
  200 + a JSON body that keeps Klarna's rules   → "applied"
  301/302/303/307 + Location                    → "redirected" (the shopper is sent there)
  400 + {error_type, error_text}                → "error_shown" (error_text; stays in checkout)
  anything else (not JSON, rules broken, other status, 400 without Klarna's error body,
  timeout, no connection)                       → "something_went_wrong", nothing applied
Validation:
  200 → "approved"; 3xx + Location → "redirected" (denied); 400 + error body → "error_shown";
  no answer (timeout, no connection) → "approved_on_silence" unless the order has
  options.require_validate_callback_success, then "failed";
  any other answer (5xx, 400 without the error body, …) → "failed" with that option,
  else "approved_on_silence" too: only 3xx and 400 deny, only the option demands a 200.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callbacks.rules import amounts as rules

SOMETHING_WENT_WRONG = "Something went wrong. Please try again."
ERROR_TYPES = ("address_error", "unsupported_shipping_address", "approval_failed")
TEXT_REQUIRED = ("address_error", "approval_failed")
REDIRECTS = (301, 302, 303, 307)
NOT_JSON = object()

# Outcomes that let the shopper go on.
APPLIED, APPROVED, APPROVED_ON_SILENCE = "applied", "approved", "approved_on_silence"
REDIRECTED, ERROR_SHOWN, WENT_WRONG, FAILED = ("redirected", "error_shown",
                                               "something_went_wrong", "failed")


@dataclass
class Reply:
    """One HTTP exchange as the sandbox saw it. `error` is set when no answer came at all."""

    status: int | None = None
    body: Any = NOT_JSON                 # the parsed JSON body, or NOT_JSON
    text: str = ""                       # the raw body (for the log)
    location: str | None = None
    error: str | None = None             # "timeout after 3 s", "connection refused", …
    seconds: float = 0.0

    @property
    def answered(self) -> bool:
        return self.error is None


@dataclass
class Verdict:
    outcome: str
    problems: list = field(default_factory=list)
    shopper_sees: str | None = None
    location: str | None = None

    @property
    def goes_on(self) -> bool:
        return self.outcome in (APPLIED, APPROVED, APPROVED_ON_SILENCE)


def error_body_problems(body: Any) -> list[str]:
    """What keeps a 400 body from being Klarna's `{error_type, error_text}`."""
    if not isinstance(body, dict):
        return ["body: not a JSON object"]
    problems = []
    if body.get("error_type") not in ERROR_TYPES:
        problems.append(f"error_type: not one of {', '.join(ERROR_TYPES)}")
    text = body.get("error_text")
    if text is not None and not isinstance(text, str):
        problems.append("error_text: not a string")
    elif not text and body.get("error_type") in TEXT_REQUIRED:
        problems.append(f"error_text: required with error_type {body.get('error_type')}")
    return problems


def _went_wrong(problems: list[str]) -> Verdict:
    return Verdict(WENT_WRONG, problems, SOMETHING_WENT_WRONG)


def _denial(reply: Reply) -> Verdict | None:
    """A 3xx + Location or a proper 400: the merchant said no. None otherwise."""
    if reply.status in REDIRECTS and reply.location:
        return Verdict(REDIRECTED, [], f"redirected to {reply.location}", reply.location)
    if reply.status == 400 and not error_body_problems(reply.body):
        text = reply.body.get("error_text") or "We cannot deliver to this address."
        return Verdict(ERROR_SHOWN, [f"error_type: {reply.body['error_type']}"], text)
    return None


def _unusable(reply: Reply) -> list[str]:
    """Why a reply that is neither a 200 nor a denial is of no use."""
    if not reply.answered:
        return [reply.error or "no answer"]
    if reply.status in REDIRECTS:
        return [f"HTTP {reply.status} without a Location header"]
    if reply.status == 400:
        return ["HTTP 400 without Klarna's error body: " + "; ".join(error_body_problems(reply.body))]
    return [f"HTTP {reply.status}"]


def judge_shipping_service(reply: Reply) -> Verdict:
    denial = _denial(reply)
    if denial:
        return denial
    if reply.status != 200 or not reply.answered:
        return _went_wrong(_unusable(reply))
    if reply.body is NOT_JSON:
        return _went_wrong(["body: not JSON"])
    problems = rules.shipping_service_reply_errors(reply.body)
    if problems:
        return _went_wrong([f"Bad value: {p}" for p in problems])
    return Verdict(APPLIED)


def judge_validation(reply: Reply, require_success: bool) -> Verdict:
    if reply.answered and reply.status == 200:
        return Verdict(APPROVED)
    denial = _denial(reply)
    if denial:
        return denial
    problems = _unusable(reply)
    if require_success:
        return Verdict(FAILED, problems + ["options.require_validate_callback_success is set"],
                       SOMETHING_WENT_WRONG)
    return Verdict(APPROVED_ON_SILENCE, problems)
