"""Rate-limit counters in a SQLite file: a `limits` storage shared by every worker on one host.

The throttles (callbacks/web/throttle.py) count with the `limits` library. Its storages are
Redis, Memcached, MongoDB, etcd — servers — and memory, which is per process: a gunicorn
worker would count only what it served, and two workers would allow twice the limit. Where
KCO_RATE_LIMIT_STORAGE names Redis, that is used, and counts across instances. Without it
this storage keeps the counters in one SQLite file that every worker of the host opens:
a counter is one row, bumped by one UPSERT (atomic under SQLite's own write lock, in
autocommit: no transaction stays open), so the limit holds across workers. It is a separate
file, not a table in the service's database: on SQLite a counter must not queue behind the
session writers' lock (engine.SqliteWriters), on PostgreSQL it would add a write per request
to the shared server, and counters are disposable (deleting the file forgets them), so they
need no migration. Several instances behind one balancer need Redis (README: Production).

Only the fixed-window strategy is supported (`incr`, `get`, `get_expiry`): that is what the
throttles use.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from pathlib import Path

from limits.storage import Storage

PURGE_ODDS = 0.01  # one bump in a hundred also deletes the expired rows


class FileCounters(Storage):
    STORAGE_SCHEME = None  # made by throttle.make_storage, not from a URI scheme

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, "
                         "count INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID")

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _connect(self) -> sqlite3.Connection:
        """One connection per thread and process (a connection must not cross a fork)."""
        held: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if held is not None and self._local.pid == os.getpid():
            return held
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a counter lost in a power cut is harmless
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        conn = self._connect()
        (count,) = conn.execute(
            "INSERT INTO counters (key, count, expires_at) VALUES (?1, ?2, ?3) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN expires_at <= ?4 THEN ?2 ELSE count + ?2 END, "
            "expires_at = CASE WHEN expires_at <= ?4 THEN ?3 ELSE expires_at END "
            "RETURNING count", (key, amount, now + expiry, now)).fetchone()
        if random.random() < PURGE_ODDS:
            conn.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
        return int(count)

    def get(self, key: str) -> int:
        row = self._connect().execute("SELECT count FROM counters WHERE key = ? AND expires_at > ?",
                                      (key, time.time())).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._connect().execute("SELECT expires_at FROM counters WHERE key = ? AND "
                                      "expires_at > ?", (key, now)).fetchone()
        return row[0] if row else now

    def check(self) -> bool:
        try:
            self._connect().execute("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        return self._connect().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._connect().execute("DELETE FROM counters WHERE key = ?", (key,))
