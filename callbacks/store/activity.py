"""What support needs beside the callback log: Klarna API calls and storefront writes.

Both are recorded per session so that the support console can show one timeline of a checkout
(docs/design.md §8). A Klarna API call does not know its session (the client knows operations, not
sessions), so the lifecycle names the session it works for in a context variable and the
client's `on_call` hook reads it. Recording never breaks the call it describes.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from callbacks.store import faults
from callbacks.store.database import Store, metadata, utcnow

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

KLARNA_API = "klarna_api"
STOREFRONT = "storefront"

activity = sa.Table(
    "activity", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("session", sa.String(128), index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("detail", sa.JSON),
    sqlite_autoincrement=True,
)
INSERT_ACTIVITY = activity.insert()

current_session: ContextVar[str | None] = ContextVar("kco_session", default=None)


@contextmanager
def for_session(sid: str) -> Iterator[None]:
    token = current_session.set(sid)
    try:
        yield
    finally:
        current_session.reset(token)


def with_session(method: Callable[Concatenate[S, str, P], R]) -> Callable[Concatenate[S, str, P], R]:
    """For Lifecycle methods whose first argument is the session id."""
    @functools.wraps(method)
    def wrapper(self: S, sid: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with for_session(sid):
            return method(self, sid, *args, **kwargs)
    return wrapper


def record(store: Store, kind: str, name: str, status: int | None, seconds: float,
           detail: Any = None, session: str | None = None) -> None:
    try:
        with store.write() as conn:
            conn.execute(INSERT_ACTIVITY, {
                "at": utcnow(), "kind": kind, "session": session or current_session.get(),
                "name": name[:80], "status": status, "duration_ms": round(seconds * 1000, 3),
                "detail": detail})
    except Exception as exc:  # noqa: BLE001 - support's record must never break a checkout
        if faults.is_fault(exc):  # the database is away: one line, no traceback
            log.warning("could not record %s %s: %s", kind, name, faults.describe(exc))
        else:
            log.exception("could not record %s %s", kind, name)


def purge(store: Store, older_than: timedelta) -> int:
    """`flask kco purge`: the same age rule as the callback log, whose timeline this completes
    (a storefront write's scrubbed body is no less personal than a callback's)."""
    with store.engine.begin() as conn:
        return int(conn.execute(activity.delete().where(activity.c.at < utcnow() - older_than)).rowcount)
