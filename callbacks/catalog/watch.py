"""PostgreSQL: learn of catalog changes by LISTEN/NOTIFY instead of asking on every request.

Every catalog write sends `pg_notify('kco_catalog', <new version>)` in its own transaction
(table.bump), so PostgreSQL delivers it to every listener once, and only if it committed. One
thread per worker process LISTENs on a dedicated connection and records the newest version in
memory; the cache then compares two numbers per request instead of reading the version row
(which cost +10-15 % of a callback's CPU: BENCHMARKS.md).

Why not the long-poll listener's connection (store/notify.py): that one runs only while
long-polls wait, because while it runs it reads every event written anywhere. Keeping it up
for the catalog would make every worker read every event of the cluster.

What a listener cannot see it must not vouch for: notifications sent while its connection is
down are lost, so `live` is False from a failure until it has LISTENed again and then read the
version row once; while not live the cache reads the row per request, as before. A connection
that dies silently is covered by the cache's own read of the row every RECHECK seconds.

Started lazily by the first request that prices (in the gunicorn worker, not a pre-fork
master); stops after IDLE_STOP seconds without one and closes its connection.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from callbacks.catalog.table import CHANNEL
from callbacks.store.database import Store
from callbacks.store.engine import close_quietly, listen

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

TICK = 0.25  # seconds: how often the listener looks up from LISTEN to check for stop
IDLE_STOP = 60.0  # seconds without a request that asked before the listener stops


class CatalogWatch:
    def __init__(self, store: Store, read_version, idle_stop: float | None = None):
        self.store = store
        self.read_version = read_version  # () -> int: the version row, read once per (re)connect
        self.idle_stop = IDLE_STOP if idle_stop is None else idle_stop
        self.version = 0  # the newest committed catalog version this process knows of
        self.live = False  # listening, and caught up since the last (re)connect
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._used = time.monotonic()
        self._stopping = False
        self._conn: psycopg.Connection[Any] | None = None
        self._last_error_log = 0.0

    def current(self) -> bool:
        """Keep the listener running in this process; True when it may be trusted now."""
        self._used = time.monotonic()
        if self._thread is None or self._pid != os.getpid():
            self._start()
            return False
        return self.live

    def saw(self, version: int) -> None:
        if version > self.version:
            self.version = version

    def stop(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._stopping = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._stopping or (self._thread is not None and self._pid == os.getpid()):
                return
            self.live = False  # a forked child inherits the parent's flag, not its connection
            self._conn = None
            self._pid = os.getpid()
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name="kco-catalog-watch", daemon=True)
            self._thread.start()

    def _idle(self) -> bool:
        with self._lock:
            if self._stopping or self._thread is not threading.current_thread():
                return True
            if time.monotonic() - self._used > self.idle_stop:
                self._thread = None  # under the lock: the next request starts a new listener
                return True
            return False

    def _run(self) -> None:
        backoff = 0.2
        conn = None  # this thread's own: a successor started meanwhile has another
        try:
            while not self._idle():
                try:
                    conn = self._listen()
                    self.saw(self.read_version())  # after LISTEN: nothing falls in between
                    self.live = True
                    backoff = 0.2
                    while not self._idle():
                        for notify in conn.notifies(timeout=TICK):
                            try:
                                self.saw(int(notify.payload))
                            except ValueError:  # not ours to interpret: ask the table
                                self.saw(self.read_version())
                except Exception as exc:  # noqa: BLE001 - keep listening through outages
                    self.live = False
                    self._log_error(exc)
                    self._close(conn)
                    conn = None
                    self._wake.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            with self._lock:
                # A request may have started the next listener between this one's idle stop
                # and here: its flag and its connection are not this thread's to drop.
                if self._thread is None:
                    self.live = False
            self._close(conn)

    def _listen(self):
        if self._conn is None or self._conn.closed:
            self._conn = listen(self.store.engine, CHANNEL, "kco-catalog-watch")
        return self._conn

    def _close(self, conn) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        close_quietly(conn)

    def _log_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 30:
            self._last_error_log = now
            log.warning("catalog LISTEN connection failed: %s", exc)
