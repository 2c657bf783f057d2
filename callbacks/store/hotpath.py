"""The hot path's statements, on the DB-API connection (sqlite3 / psycopg) under SQLAlchemy's.

Every Klarna callback, cart write and state read runs the same few statements: lock and read a
session, write it back, append its event, queue its webhook messages, write the callback log's
row. Through SQLAlchemy Core's execution layer each cost ~0.05–0.1 ms of Python beyond the
database's own time (the execution context, the cache key, the result's processors): about half
of a 10-line callback's CPU (BENCHMARKS.md). Here they are plain SQL, written once per dialect
and sent on the connection SQLAlchemy checked out and began, so the transaction, the pool, the
fault handling and everything else stay SQLAlchemy's; sqlite3 keeps a prepared statement per
SQL text and connection, psycopg prepares a statement on the server once it has run five times.

This module owns those statements and what they read and write; their columns and types are
tables.py's, and what is stored is exactly what SQLAlchemy stores for them (tests/test_store.py
holds both ways of writing to the same rows): JSON as the text of jsonprovider.dumps (None as
JSON `null`), datetimes as SQLite's `YYYY-MM-DD HH:MM:SS.ffffff` text or PostgreSQL's
`timestamp`. A driver's error leaves as SQLAlchemy's wrapped exception (sa.exc.OperationalError,
IntegrityError, …), as if SQLAlchemy had executed the statement, so store/faults.py and the
callers' `except` clauses see what they saw before.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from callbacks.web import jsonprovider
from callbacks.webhooks import outbox

# -- the statements ------------------------------------------------------------------------------
# qmark for sqlite3, format (%s) for psycopg; the same columns in the same order in both.
SQLITE = {
    "begin_write": "BEGIN IMMEDIATE",
    "select_session": "SELECT state, version FROM sessions WHERE sid = ?",
    # SQLite hands the state over as UTF-8 bytes (a BLOB), as the state read sends it.
    "select_state": "SELECT CAST(state AS BLOB) FROM sessions WHERE sid = ?",
    "insert_session": "INSERT INTO sessions (sid, version, state, klarna_order_id, klarna_account,"
                      " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "update_session": "UPDATE sessions SET version = ?, state = ?, klarna_order_id = ?,"
                      " klarna_account = ?, updated_at = ? WHERE sid = ?",
    "insert_event": "INSERT INTO events (session, type, version, at, data) VALUES (?, ?, ?, ?, ?)",
    "insert_log": "INSERT INTO callback_log (at, callback, session, order_id, status, duration_ms,"
                  " request, reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
}
POSTGRES = {
    # read_session's one query string: the lock, then the read (a literal bigint and sid).
    "lock_and_read": "SELECT pg_advisory_xact_lock({key}); "
                     "SELECT state::text, version FROM sessions WHERE sid = {sid}",
    # The state as the JSON text it was stored as (json, not jsonb: kept verbatim), parsed here
    # by orjson rather than by psycopg's standard-library loader.
    "select_session": "SELECT state::text, version FROM sessions WHERE sid = %s",
    "select_state": "SELECT state::text FROM sessions WHERE sid = %s",
    "insert_session": "INSERT INTO sessions (sid, version, state, klarna_order_id, klarna_account,"
                      " created_at, updated_at) VALUES (%s, %s, %s::json, %s, %s, %s, %s)",
    "update_session": "UPDATE sessions SET version = %s, state = %s::json, klarna_order_id = %s,"
                      " klarna_account = %s, updated_at = %s WHERE sid = %s",
    "insert_log": "INSERT INTO callback_log (at, callback, session, order_id, status, duration_ms,"
                  " request, reply) VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s::json) RETURNING id",
}


def _enqueue_template(dialect: sa.Dialect, sid: str, first: str, last: str) -> str:
    """outbox.enqueue (the one definition of which endpoints get which event) compiled once,
    with its constants inlined and `sid`/`first`/`last` standing where its three values go."""
    statement = outbox.enqueue(sa.literal_column(sid), sa.literal_column(first),
                               sa.literal_column(last))
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


_ENQUEUE: dict[str, str] = {}


def enqueue_statement(dialect: sa.Dialect) -> str:
    """SQLite: the outbox INSERT with three `?` (session, first version, last version).
    PostgreSQL: with `{sid}`, `{first}` and `{last}` for psycopg.sql to fill with literals,
    for events_pg.publish's one message."""
    found = _ENQUEUE.get(dialect.name)
    if found is None:
        if dialect.name == "postgresql":
            found = _enqueue_template(dialect, "{sid}", "{first}", "{last}")
        else:
            found = _enqueue_template(dialect, "?", "?", "?")
        _ENQUEUE[dialect.name] = found
    return found


# -- values as SQLAlchemy would bind them ---------------------------------------------------------
def sqlite_datetime(moment: datetime) -> str:
    """sa.DateTime's storage format on SQLite (sqlalchemy.dialects.sqlite.DATETIME)."""
    return moment.isoformat(sep=" ", timespec="microseconds")


def json_text(value: Any) -> str:
    """What sa.JSON binds, with the engine's serializer: None is JSON `null`, not SQL NULL."""
    return jsonprovider.dumps(value)


def state_from(stored: str | bytes) -> dict[str, Any]:
    found: dict[str, Any] = jsonprovider.loads(stored)
    return found


# -- running them -------------------------------------------------------------------------------
def lock_and_read(raw: Any, key: int, sid: str) -> bytes:
    """POSTGRES["lock_and_read"] with its two values as literals (psycopg quotes `sid`)."""
    from psycopg import sql
    head, tail = _LOCK_AND_READ
    return head + str(int(key)).encode() + tail + sql.Literal(sid).as_bytes(raw)


_LOCK_AND_READ = tuple(part.encode() for part in
                       POSTGRES["lock_and_read"].removesuffix("{sid}").split("{key}"))


def driver(conn: sa.Connection) -> Any:
    """The sqlite3 / psycopg connection under `conn` (checked out, in its transaction)."""
    return conn.connection.driver_connection


def execute(conn: sa.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """Run one statement on `conn`'s DB-API connection; returns the cursor (to fetch from).
    A driver error is raised as SQLAlchemy's exception for it, as Connection.execute would."""
    raw = driver(conn)
    try:
        return raw.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise wrapped(conn, exc, sql, params) from exc


def wrapped(conn: sa.Connection, exc: Any, sql: str, params: Any) -> sa.exc.StatementError:
    """The driver's `exc` (a DB-API Error) as SQLAlchemy raises it: sa.exc.OperationalError, …
    A lost connection is invalidated, with the pool's older connections, as SQLAlchemy does
    (Connection._handle_dbapi_exception): none of them is handed out again."""
    dialect = conn.dialect
    disconnect = dialect.is_disconnect(exc, driver(conn), None)
    if disconnect and not conn.invalidated:
        conn.engine.pool._invalidate(conn.connection, exc)
        conn.invalidate(exc)
    error: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=disconnect,
        dialect=dialect)
    return error


class Statements:
    """The hot path's statements for one engine's dialect."""

    def __init__(self, dialect: sa.Dialect):
        self.postgres = dialect.name == "postgresql"
        self.sql = POSTGRES if self.postgres else SQLITE
        self.enqueue = enqueue_statement(dialect)

    def read_session(self, conn: sa.Connection, sid: str,
                     lock_key: int | None = None) -> tuple[dict[str, Any] | None, int]:
        """The session's state and version; (None, 0) for a session never written. PostgreSQL:
        first the session's transaction-scoped advisory lock (`lock_key`), then the read, as
        two statements in one query string (the simple query protocol: one round trip after
        the transaction's BEGIN, with `sid` quoted by psycopg). The server runs them in order,
        and under READ COMMITTED each statement takes its own snapshot when it starts, so the
        read's is taken once the lock is held and sees the last holder's commit (which one
        statement doing both would not). psycopg's pipeline mode would fold the BEGIN in too,
        but costs more of the client's CPU than the round trip it saves (BENCHMARKS.md)."""
        if lock_key is None:
            row = execute(conn, self.sql["select_session"], (sid,)).fetchone()
        else:
            raw = driver(conn)
            text = lock_and_read(raw, lock_key, sid)
            try:
                cursor = raw.execute(text)
                cursor.nextset()
                row = cursor.fetchone()
            except conn.dialect.loaded_dbapi.Error as exc:
                raise wrapped(conn, exc, text.decode(), ()) from exc
        if row is None:
            return None, 0
        return state_from(row[0]), row[1]

    def read_state_text(self, conn: sa.Connection, sid: str) -> str | bytes | None:
        """The state as the JSON stored, unparsed: bytes from SQLite, text from PostgreSQL (a
        bytea would come hex-encoded, twice the size, and cost more to decode than to encode)."""
        row = execute(conn, self.sql["select_state"], (sid,)).fetchone()
        return None if row is None else row[0]

    def write_session(self, conn: sa.Connection, new: bool, sid: str, version: int,
                      state: dict[str, Any], order_id: str | None, account: str | None,
                      now: datetime) -> None:
        at: Any = now if self.postgres else sqlite_datetime(now)
        text = json_text(state)
        if new:
            execute(conn, self.sql["insert_session"], (sid, version, text, order_id, account, at, at))
        else:
            execute(conn, self.sql["update_session"], (version, text, order_id, account, at, sid))

    def insert_event(self, conn: sa.Connection, sid: str, type_name: str, version: int,
                     now: datetime, data: Any) -> int:
        """SQLite only (PostgreSQL's events are appended at commit: events_pg.publish)."""
        cursor = execute(conn, SQLITE["insert_event"],
                         (sid, type_name, version, sqlite_datetime(now), json_text(data)))
        return int(cursor.lastrowid)

    def enqueue_sqlite(self, conn: sa.Connection, sid: str, first: int, last: int) -> None:
        execute(conn, self.enqueue, (sid, first, last))

    def enqueue_postgres(self, raw: Any, sid: str, first: int, last: int) -> str:
        """The outbox INSERT with its values inlined, for events_pg.publish's one message."""
        from psycopg import sql
        return (self.enqueue.replace("{sid}", sql.Literal(sid).as_string(raw))
                .replace("{first}", str(int(first))).replace("{last}", str(int(last))))

    def insert_log(self, conn: sa.Connection, at: datetime, callback: str, session: str | None,
                   order_id: str | None, status: int, duration_ms: float, request: Any,
                   reply: Any) -> int:
        if self.postgres:
            row = execute(conn, POSTGRES["insert_log"],
                          (at, callback, session, order_id, status, duration_ms,
                           json_text(request), json_text(reply))).fetchone()
            return int(row[0])
        cursor = execute(conn, SQLITE["insert_log"],
                         (sqlite_datetime(at), callback, session, order_id, status, duration_ms,
                          json_text(request), json_text(reply)))
        return int(cursor.lastrowid)

    def insert_log_guarded(self, conn: sa.Connection, at: datetime, callback: str,
                           session: str | None, order_id: str | None, status: int,
                           duration_ms: float, request: Any, reply: Any) -> int:
        """insert_log inside an open session transaction, which a failing row must not undo.
        SQLite undoes only the failing statement. A failing statement aborts a PostgreSQL
        transaction: there the row gets a savepoint, and the SAVEPOINT, the INSERT and the
        RELEASE go in one round trip (pipeline mode); on an error the savepoint is rolled back
        to and the error raised, the session's own writes intact."""
        if not self.postgres:
            return self.insert_log(conn, at, callback, session, order_id, status, duration_ms,
                                   request, reply)
        raw = driver(conn)
        params = (at, callback, session, order_id, status, duration_ms, json_text(request),
                  json_text(reply))
        try:
            with raw.pipeline():
                raw.execute("SAVEPOINT kco_log_row")
                cursor = raw.execute(POSTGRES["insert_log"], params)
                raw.execute("RELEASE SAVEPOINT kco_log_row")
            return int(cursor.fetchone()[0])
        except conn.dialect.loaded_dbapi.Error as exc:
            error = wrapped(conn, exc, POSTGRES["insert_log"], params)
            if not conn.invalidated:
                try:
                    raw.execute("ROLLBACK TO SAVEPOINT kco_log_row")
                except conn.dialect.loaded_dbapi.Error as lost:
                    raise wrapped(conn, lost, "ROLLBACK TO SAVEPOINT", ()) from exc
            raise error from exc
