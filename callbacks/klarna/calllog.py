"""The callback log's rows (docs/design.md §8): what one row holds, and writing it.

No Flask here: callbacks/klarna/loghooks.py reads the request and the reply and calls these;
what a row keeps of a body is callbacks/klarna/scrub.py's business (a request's order lines
as compact rows: read them back with scrub.readable). A row is written either in
the session's own transaction (`write_in`: a callback that changes a session then commits once,
and its row cannot outlive a change that rolled back), or in a transaction of its own (`write`).
The retention command is `flask kco purge --older-than DAYS` (callbacks/cli/commands.py).
"""
from __future__ import annotations

import json
import logging
import re
import sqlite3
from typing import Any, cast

import sqlalchemy as sa

from callbacks.klarna.scrub import scrub, scrub_request
from callbacks.store import faults

log = logging.getLogger("callbacks.klarna.calllog")


def row(callback: str, session: str | None, order_id: str | None, status: int, seconds: float,
        request_body: Any, reply_body: Any, *, ours: bool = False) -> dict:
    """One row. `ours`: the reply is a 200 body we built from the session's state, which holds
    nothing of the caller's that the request's allow-list would not keep (its lines' names and
    the shipping options are the shop's): it is stored as sent. Every other reply (errors echo
    input) is scrubbed."""
    return {"callback": callback, "session": _text(session, 128) if session is not None else None,
            "order_id": _text(order_id, 255) if order_id else None, "status": status,
            "duration_ms": round(seconds * 1000, 3), "request": scrub_request(request_body),
            "reply": reply_body if ours and reply_body is not None else scrub(reply_body, reply=True)}


def write(store, entry: dict) -> None:
    """The row in a transaction of its own."""
    store.log_callback(**entry)


def write_in(store, conn: sa.Connection, entry: dict) -> bool:
    """The row in the caller's open transaction (the session's). False when the row alone
    failed: it is undone (a savepoint on PostgreSQL; SQLite undoes the statement) and should be
    written on its own after the commit. Raises when SQLite gave the whole transaction up
    (disk full, I/O): then the callback fails whole rather than answer for a lost change."""
    # A failing statement aborts a PostgreSQL transaction: there the row gets a savepoint
    # (Store.log_callback), so that it cannot undo the state. SQLite undoes only the failing
    # statement.
    try:
        store.log_callback(**entry, conn=conn)
    except Exception as exc:  # noqa: BLE001 - written once more in a transaction of its own
        if conn.invalidated:
            raise  # the connection died under the transaction: all of it is lost (a 503)
        sqlite = cast(sqlite3.Connection, conn.connection.driver_connection)  # not PostgreSQL: SQLite
        if not store.is_postgres and not sqlite.in_transaction:
            raise
        log.warning("could not record the %s callback with its session; trying on its own",
                    entry["callback"], exc_info=not faults.is_fault(exc))
        return False
    return True


def log_line(entry: dict, seconds: float) -> None:
    """The one Python log line per callback (the reply too when it is an error)."""
    status, reply = entry["status"], entry["reply"]
    log.info("kco %s session=%s order_id=%s -> %s in %.1f ms%s", entry["callback"],
             printable(entry["session"]), printable(entry["order_id"]), status, seconds * 1000,
             f" reply={_compact(reply)}" if status >= 400 else "")
    if log.isEnabledFor(logging.DEBUG):
        log.debug("kco %s session=%s request=%s reply=%s", entry["callback"],
                  printable(entry["session"]), _compact(entry["request"]), _compact(reply))


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(value: str | None) -> str | None:
    """A URL parameter fit for one log line: control characters (a line break would start a
    forged line) become escapes. Refused ids are logged too, with their 400."""
    if value is None:
        return None
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)


def _text(value: str, limit: int) -> str:
    """A URL parameter as a text column takes it: PostgreSQL refuses NUL (0x00)."""
    return value.replace("\x00", "\ufffd")[:limit]


def _compact(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
