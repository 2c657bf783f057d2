"""Which failures are the database's, not ours: they answer 503 + Retry-After, never a 500.

A connection dropped mid-transaction, `the database system is shutting down`, a failover to a
read-only standby, a full disk, a lock or statement timeout, a pool that stays empty: the
request could not be done, nothing of it was committed, and the same request will work once
the database is back. What remains a 500 is what would fail again on a healthy database:
a constraint we violated (IntegrityError), SQL the server rejects (ProgrammingError) or a
value it cannot store (DataError) — bugs, which deserve their traceback.

`describe` is the one log line: the exception's class and the server's first line, no
traceback (a fault is an operations event, and under an outage every request would print one).
"""
from __future__ import annotations

import sqlite3

import psycopg
import sqlalchemy as sa

# The DBAPI's own classes, as the drivers raise them from a raw cursor (events_pg.publish, a
# DB-API call outside store/hotpath.py's wrapping) and as SQLAlchemy wraps them
# (sa.exc.OperationalError, …): the server or the link failed. psycopg's subclasses include
# TooManyConnections and CannotConnectNow (a refused connect), AdminShutdown, QueryCanceled
# (statement timeout), LockNotAvailable (lock timeout), DiskFull, InFailedSqlTransaction and
# ReadOnlySqlTransaction (a failover); sqlite3's OperationalError is `database is locked`,
# `disk I/O error`, `database or disk is full`, `unable to open database file`. sqlite3's
# DatabaseError proper (`database disk image is malformed`) is not transient: a 500.
_DRIVER_FAULTS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.InternalError,
                  sqlite3.OperationalError)
_WRAPPED_FAULTS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.InternalError,
                   sa.exc.DisconnectionError,
                   sa.exc.TimeoutError,  # the pool had no connection within pool_timeout
                   sa.exc.PendingRollbackError,  # the connection died under an open transaction
                   sa.exc.ResourceClosedError)  # … and was closed before the next statement


def is_fault(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, _WRAPPED_FAULTS + _DRIVER_FAULTS):
        return True
    if isinstance(exc, sa.exc.StatementError) and isinstance(exc.orig, _DRIVER_FAULTS):
        return True
    return False


def describe(exc: BaseException) -> str:
    """`OperationalError: the database system is shutting down` — one line."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else '(no message)'}"
