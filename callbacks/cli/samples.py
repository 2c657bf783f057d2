"""Replay's payloads: sample files from `samples/` (format in samples/README.md) and entries
of the callback log, checked before anything is sent so bad input never half-runs a replay."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from callbacks.klarna.order import CALLBACKS
from callbacks.klarna.scrub import readable
from callbacks.web.schemas import SESSION_ID

ERROR_TYPES = frozenset({"address_error", "unsupported_shipping_address", "approval_failed"})
FRAUD_STATUSES = ("ACCEPTED", "PENDING", "REJECTED")
WRAPPER_KEYS = frozenset({"callback", "note", "session", "order_id", "expect", "body",
                          "klarna_order"})
EXPECT_KEYS = frozenset({"status", "error_type"})
KLARNA_ORDER_KEYS = frozenset({"fraud_status"})


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
    logged_reply: Any = None          # --from-log: its (scrubbed) reply body
    klarna_order: Mapping | None = None  # {"fraud_status": …}: replay makes this order first


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
    return Payload(path.name, callback, body, session, order_id, _expect(path, data.get("expect")),
                   note, klarna_order=_klarna_order(path, data.get("klarna_order")))


def _klarna_order(path: Path, wanted: Any) -> dict | None:
    """What the sample needs Klarna to hold: a completed order with this fraud_status, whose
    merchant_reference2 names the sample's session (replay creates it; prepare.py)."""
    if wanted is None:
        return None
    if not isinstance(wanted, dict) or set(wanted) - KLARNA_ORDER_KEYS:
        raise _sample_error(path, "klarna_order must be an object like {\"fraud_status\": \"ACCEPTED\"}")
    fraud_status = wanted.get("fraud_status", "ACCEPTED")
    if fraud_status not in FRAUD_STATUSES:
        raise _sample_error(path, f"klarna_order.fraud_status {fraud_status!r} is not one of "
                                  f"{', '.join(FRAUD_STATUSES)}")
    return {"fraud_status": fraud_status}


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
    body = readable(row["request"])  # compact order lines back as lines
    if isinstance(body, dict) and "_omitted" in body:
        raise ReplayError(f"callback log entry {log_id} kept no body ({body['_omitted']})")
    if callback == "push":
        body = None
    return Payload(f"log #{log_id}", callback, body, row["session"], row["order_id"], None,
                   f"logged {row['at']:%Y-%m-%d %H:%M:%S} UTC" if row.get("at") else "",
                   logged_status=row["status"], logged_reply=row.get("reply"))


def fresh_session() -> str:
    return f"replay-{uuid.uuid4().hex[:16]}"


