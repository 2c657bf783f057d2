"""The database engine: SQLite set up for one writer at a time without busy-waiting, or a
PostgreSQL pool. Store (database.py) takes its connections and its writer queue from here.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from callbacks.store import hotpath
from callbacks.web import jsonprovider
from config import whole_number

if TYPE_CHECKING:  # imported where a listener is made: SQLite deployments never need it
    import psycopg


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30},
                                  json_serializer=jsonprovider.dumps,
                                  json_deserializer=jsonprovider.loads)

        @sa_event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from pysqlite so that writers can BEGIN IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            # On the DB-API connection (every write begins here: store/hotpath.py), an error
            # raised as SQLAlchemy would (a locked database is an OperationalError, a fault).
            sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get("kco_write") else "BEGIN"
            hotpath.execute(conn, sql)

        return engine
    # Per process: a PostgreSQL server takes max_connections (100 by default) in all, and
    # every gunicorn worker of every instance has a pool, so the sizes are the operator's.
    # (SQLAlchemy reads a pool_size of 0 as "no limit": at least 1.)
    return sa.create_engine(url, pool_size=whole_number("KCO_DB_POOL_SIZE"),
                            max_overflow=whole_number("KCO_DB_MAX_OVERFLOW"),
                            pool_pre_ping=True,
                            json_serializer=jsonprovider.dumps,
                            json_deserializer=jsonprovider.loads)


class SqliteWriters:
    """Queues this process's SQLite writers, then the processes, without polling.

    SQLite lets one transaction write at a time, and a writer that finds the database locked
    retries from its busy handler, sleeping 1, 2, 5, … up to 100 ms between tries: under load
    a callback waited up to a second for a lock that was free again within a millisecond
    (BENCHMARKS.md). So a writer first takes a lock of its process, then an flock on a file
    beside the database, which the kernel hands to the next process the moment it is
    released. busy_timeout still covers writers that do not queue here (the sqlite3 shell).
    """

    def __init__(self, database: str | None, timeout: float = 30.0):
        self.path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._pid: int | None = None  # the file is opened per process: an flock belongs to an open file

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.timeout):
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(
                f"database is locked (no writer turn in {self.timeout:g} s)"))
        try:
            if self.path is None:
                yield
                return
            if self._pid != os.getpid():
                self._file, self._pid = open(self.path, "ab"), os.getpid()
            file = self._file
            assert file is not None  # opened above in this process
            fcntl.flock(file, fcntl.LOCK_EX)  # held only for one short transaction
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)
        finally:
            self._lock.release()


def listen(engine: sa.Engine, channel: str, application_name: str) -> psycopg.Connection[Any]:
    """A dedicated autocommit psycopg connection LISTENing on `channel`, outside the pool:
    a listener holds it for as long as it runs, which a pooled connection must not be."""
    import psycopg

    url = engine.url.set(drivername="postgresql")
    conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                           connect_timeout=10, application_name=application_name)
    conn.execute(f"LISTEN {channel}")
    return conn


def close_quietly(conn: psycopg.Connection[Any] | None) -> None:
    """Close a listener's connection that may already be broken; there is nothing to report."""
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
