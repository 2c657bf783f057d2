"""Sessions, events and the callback log (DESIGN.md §8), on SQLAlchemy Core.

The rule this module exists to keep: a session's state change and the event describing it are
written in one transaction, and two writers of one session never interleave. SQLite gets that
from `BEGIN IMMEDIATE` (one writer at a time, the others wait on busy_timeout); PostgreSQL from a
transaction-scoped advisory lock on the session id. Events are also serialized globally at the
moment they are inserted, so event ids become visible in id order: a feed reader that has seen
id N can never later find a smaller id committed behind it.
"""
from __future__ import annotations

import zlib
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy import event as sa_event

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("sid", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("klarna_order_id", sa.String(255), index=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session", sa.String(128), nullable=False, index=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sqlite_autoincrement=True,
)

callback_log = sa.Table(
    "callback_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("callback", sa.String(40), nullable=False),
    sa.Column("session", sa.String(128)),
    sa.Column("order_id", sa.String(255)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("request", sa.JSON),
    sa.Column("reply", sa.JSON),
    sqlite_autoincrement=True,
)

EVENT_ORDER_LOCK = 0x6B636F  # "kco": the advisory lock that orders event ids on PostgreSQL


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _session_lock_key(sid: str) -> int:
    return zlib.crc32(sid.encode()) - 2**31  # a signed 32-bit key for pg_advisory_xact_lock


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa_event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # Take transaction control from pysqlite so that writers can BEGIN IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            immediate = conn.get_execution_options().get("kco_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)


class SessionTx:
    """One locked session inside a write transaction: read `state`, then `save` it once."""

    def __init__(self, conn: sa.Connection, store: "Store", sid: str, row):
        self.conn, self.store, self.sid = conn, store, sid
        self.state: dict | None = dict(row.state) if row else None
        self.version: int = row.version if row else 0
        self.events: list[dict] = []

    def save(self, state: dict, event_type: str, data: dict) -> dict:
        """Store `state` as version+1 and record its event; returns the event."""
        now = utcnow()
        self.version += 1
        state = {**state, "session": self.sid, "version": self.version, "updated_at": iso(now)}
        values = {"version": self.version, "state": state,
                  "klarna_order_id": (state.get("klarna") or {}).get("order_id"), "updated_at": now}
        if self.state is None:
            self.conn.execute(sessions.insert().values(sid=self.sid, created_at=now, **values))
        else:
            self.conn.execute(sessions.update().where(sessions.c.sid == self.sid).values(**values))
        self.state = state
        event = self.store._insert_event(self.conn, self.sid, event_type, self.version, data, now)
        self.events.append(event)
        return event


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._after_commit: list[Callable[[int], None]] = []

    # -- schema ------------------------------------------------------------------------------
    def migrate(self) -> str:
        from .migrate import upgrade
        return upgrade(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def on_commit(self, callback: Callable[[int], None]) -> None:
        """Called with the newest event id after every transaction that wrote events."""
        self._after_commit.append(callback)

    # -- writes ------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(kco_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def session(self, sid: str) -> Iterator[SessionTx]:
        """Lock one session for the length of a transaction; commit on a clean exit."""
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_session_lock_key(sid))))
            row = conn.execute(sa.select(sessions.c.state, sessions.c.version)
                               .where(sessions.c.sid == sid)).first()
            tx = SessionTx(conn, self, sid, row)
            yield tx
        if tx.events:
            last = tx.events[-1]["id"]
            for callback in self._after_commit:
                callback(last)

    def _insert_event(self, conn, sid, event_type, version, data, now) -> dict:
        if self.is_postgres:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(EVENT_ORDER_LOCK)))
        event_id = conn.execute(events.insert().values(
            session=sid, type=event_type, version=version, at=now, data=data)
            .returning(events.c.id)).scalar_one()
        if self.is_postgres:
            conn.execute(sa.select(sa.func.pg_notify("kco_events", str(event_id))))
        return {"id": event_id, "session": sid, "type": event_type, "version": version,
                "at": iso(now), "data": data}

    # -- reads -------------------------------------------------------------------------------
    def get_state(self, sid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sessions.c.state).where(sessions.c.sid == sid)).first()
        return dict(row.state) if row else None

    def session_for_order(self, order_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sessions.c.sid)
                                .where(sessions.c.klarna_order_id == order_id)).scalar()

    def events_after(self, after: int, sid: str | None = None, limit: int = 500) -> list[dict]:
        query = sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
        if sid is not None:
            query = query.where(events.c.session == sid)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{"id": r.id, "session": r.session, "type": r.type, "version": r.version,
                 "at": iso(r.at), "data": r.data} for r in rows]

    def last_event_id(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()

    # -- callback log ------------------------------------------------------------------------
    def log_callback(self, callback: str, session: str | None, order_id: str | None, status: int,
                     duration_ms: float, request: Any, reply: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(callback_log.insert().values(
                at=utcnow(), callback=callback, session=session, order_id=order_id, status=status,
                duration_ms=duration_ms, request=request, reply=reply)
                .returning(callback_log.c.id)).scalar_one()

    def logged_callback(self, log_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(callback_log).where(callback_log.c.id == log_id)).first()
        return dict(row._mapping) if row else None

    def purge_callback_log(self, older_than: timedelta) -> int:
        with self.engine.begin() as conn:
            return conn.execute(callback_log.delete()
                                .where(callback_log.c.at < utcnow() - older_than)).rowcount

    def dispose(self) -> None:
        self.engine.dispose()

