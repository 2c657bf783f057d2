"""Long-poll wake-ups (docs/design.md §7.1, §8): one listener thread per process, waiters on a Condition.

A long-poll request asks for the events after id N and is willing to wait S seconds for the
first one. The request thread that finds nothing in the database does not poll: it sleeps on a
`threading.Condition` (no CPU, no database connection) until this process learns of a newer
event, then answers from the events the listener has already read. How the process learns:

* in-process: `Store.on_commit` fires right after a local commit and kicks the listener;
* PostgreSQL: the listener holds one dedicated connection that `LISTEN`s on `kco_events`;
  events_pg.py sends `pg_notify('kco_events', id)` inside every event-writing transaction, so
  another worker or another host wakes us within a network round trip of its commit;
* SQLite (one host, several processes): the listener reads `events.id > latest` every 50 ms.

Either way the listener then reads the new events ONCE (one query per process per wake-up, not
one per waiter) into a bounded in-memory tail and `notify_all`s; every waiter looks for its
session in the tail. Store.events_after hands out ids only once no smaller id can commit after
them (store/events_pg.py), so "no event for me up to id M" stays true once it was true, and a
waiter never misses one. On PostgreSQL that can lag a NOTIFY by as long as an older transaction
in the database takes to finish: the listener re-reads until the notified id is readable.

The listener starts with the first waiter (lazily, so it is created in the gunicorn worker, not
in a pre-fork master) and stops itself after 30 s with no waiters.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask

from callbacks.store.database import Store
from callbacks.store.engine import close_quietly, listen

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

CHANNEL = "kco_events"
MAX_WAIT = 30.0  # seconds: docs/design.md §7.1
SQLITE_POLL = 0.05  # seconds between `events.id > latest` checks on SQLite
PG_SAFETY_POLL = 1.0  # seconds: also re-read on PostgreSQL now and then, in case a NOTIFY is lost
PG_TICK = 0.25  # seconds: how often the PostgreSQL listener looks up from LISTEN to check for stop
PG_HELD_BACK = 0.01  # seconds: first re-read of a NOTIFYed id not yet readable (then doubling)
TAIL = 2048  # events kept in memory for waiters
PAGE = 500  # events per answer


class TooManyWaiters(Exception):
    """This process already has its maximum of waiting requests (see docs/long-poll.md)."""


class Notifier:
    def __init__(self, store: Store, *, max_waiters: int | None | Callable[[], int | None] = None,
                 idle_stop: float = 30.0, gauge: Any = None, tail: int = TAIL) -> None:
        """`max_waiters`: a number, None (no limit) or a function that tells it, asked at the
        first wait: a gunicorn worker knows its thread count only after the fork."""
        self.store = store
        self._max_waiters = max_waiters
        self.idle_stop = idle_stop
        self.gauge = gauge  # anything with inc()/dec(): the waiters gauge
        self._cond = threading.Condition()
        self._kick = threading.Event()
        self._tail: deque[dict[str, Any]] = deque(maxlen=tail)
        self._floor = 0  # the tail holds every event with floor < id <= latest
        self._latest = 0
        self._notified: float = 0  # the highest id a NOTIFY announced
        self._waiters = 0
        self._idle_since = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stopping = False
        self._pg_conn: psycopg.Connection[Any] | None = None
        self._last_error_log = 0.0
        # Other threads waiting on a client that count against max_waiters: the request
        # bodies still arriving (callbacks/web/deadline.py sets this).
        self.also_waiting: Callable[[], int] = lambda: 0
        store.on_commit(self.kick)

    # -- what the views call -----------------------------------------------------------------
    @property
    def max_waiters(self) -> int | None:
        if callable(self._max_waiters):
            self._max_waiters = self._max_waiters()
        return self._max_waiters

    @property
    def waiters(self) -> int:
        return self._waiters

    @property
    def latest(self) -> int:
        return self._latest

    @property
    def held_back(self) -> bool:
        """PostgreSQL: a NOTIFY announced an id that this process could not read yet, because
        an older transaction on the server has not ended (store/events_pg.py)."""
        return self._notified > self._latest

    def events(self, after: int, sid: str | None = None, wait: float = 0.0) -> list[dict[str, Any]]:
        """Events with id > `after` (of session `sid`, or all), oldest first, at most PAGE;
        waits up to `wait` seconds for the first one. Holds no database connection while it
        waits. Raises TooManyWaiters when it would wait and the process is full."""
        wait = min(max(wait, 0.0), MAX_WAIT)
        if wait > 0:
            self._ensure_running()
        seen = self._latest  # read BEFORE the query: anything newer will wake us
        found = self.store.events_after(after, sid, limit=PAGE)
        if found or wait <= 0:
            return found
        deadline = time.monotonic() + wait
        self._enter()
        try:
            self._ensure_running()  # in case the listener stopped for idleness meanwhile
            # Invariant: none of the waiter's events has an id in (after, seen].
            with self._cond:
                while True:
                    if self._latest > seen:
                        if self._floor <= max(seen, after):
                            found = self._from_tail(max(seen, after), sid)
                            if found:
                                return found
                            seen = self._latest
                        else:  # the tail no longer reaches back to us: ask the database
                            seen = self._latest
                            self._cond.release()
                            try:
                                found = self.store.events_after(after, sid, limit=PAGE)
                            finally:
                                self._cond.acquire()
                            if found:
                                return found
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        return []
                    self._cond.wait(remaining)
        finally:
            self._leave()

    def kick(self, event_id: int | None = None) -> None:
        """A local commit wrote events up to `event_id`: read them now rather than at the next
        poll. Called by Store.on_commit in the committing thread; does no I/O."""
        if event_id is None or event_id > self._latest:
            self._kick.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the listener and wake every waiter (they answer with what they have)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        self._kick.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- waiter bookkeeping -------------------------------------------------------------------
    def _enter(self) -> None:
        limit = self.max_waiters
        with self._cond:
            if limit is not None and self._waiters + self.also_waiting() >= limit:
                raise TooManyWaiters(limit)
            self._waiters += 1
        if self.gauge is not None:
            self.gauge.inc()

    def _leave(self) -> None:
        with self._cond:
            self._waiters -= 1
            if self._waiters == 0:
                self._idle_since = time.monotonic()
        if self.gauge is not None:
            self.gauge.dec()

    def _from_tail(self, above: int, sid: str | None) -> list[dict[str, Any]]:
        found = []
        for event in reversed(self._tail):  # newest first; stop at what the waiter has seen
            if event["id"] <= above:
                break
            if sid is None or event["session"] == sid:
                found.append(event)
        found.reverse()
        return found[:PAGE]

    # -- the listener thread ----------------------------------------------------------------
    def _ensure_running(self) -> None:
        with self._cond:
            if self._stopping:
                return
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                self._idle_since = time.monotonic()
                return
        # Start from what is committed now, so the tail is complete from here on.
        latest = self.store.last_event_id()
        with self._cond:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._tail.clear()
            self._floor = self._latest = max(latest, 0)
            self._notified = 0
            self._idle_since = time.monotonic()
            self._pid = os.getpid()
            self._kick.clear()
            self._thread = threading.Thread(target=self._run, name="kco-notify", daemon=True)
            self._thread.start()
            self._cond.notify_all()

    def _idle(self) -> bool:
        with self._cond:
            if self._stopping:
                return True
            if self._waiters == 0 and time.monotonic() - self._idle_since > self.idle_stop:
                self._thread = None  # under the lock: the next waiter starts a new listener
                return True
            return False

    def _run(self) -> None:
        try:
            if self.store.is_postgres:
                self._run_postgres()
            else:
                self._run_polling()
        finally:
            self._close_pg()

    def _run_polling(self) -> None:
        while not self._idle():
            self._kick.wait(SQLITE_POLL)
            self._kick.clear()
            self._safe_fetch()

    def _run_postgres(self) -> None:
        backoff = 0.2
        while not self._idle():
            try:
                conn = self._listen_connection()
                self._fetch()  # catch up on anything committed while we were not listening
                backoff = 0.2
                last_fetch = time.monotonic()
                # A NOTIFYed id may not be readable yet: an older transaction, maybe one that
                # writes no events and will send no NOTIFY, still holds it back (events_pg).
                # Then re-read soon, less often the longer it lasts, until it is.
                retry = PG_HELD_BACK
                while not self._idle():
                    held_back = self.held_back
                    for notify in conn.notifies(timeout=retry if held_back else PG_TICK):
                        payload = _as_int(notify.payload)
                        if payload > self._latest:
                            self._fetch()
                            last_fetch = time.monotonic()
                        if payload != math.inf:  # recorded after the read it caused
                            self._notified = max(self._notified, payload)
                        if self._stopping:
                            break
                    retry = min(retry * 2, PG_SAFETY_POLL) if held_back and self.held_back else PG_HELD_BACK
                    if self.held_back or time.monotonic() - last_fetch >= PG_SAFETY_POLL:
                        self._fetch()  # held back, or the safety poll: covers a lost NOTIFY
                        last_fetch = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - keep listening through outages
                self._log_error("LISTEN connection failed: %s", exc)
                self._close_pg()
                self._kick.wait(backoff)
                self._kick.clear()
                backoff = min(backoff * 2, 5.0)

    def _listen_connection(self) -> psycopg.Connection[Any]:
        if self._pg_conn is None or self._pg_conn.closed:
            self._pg_conn = listen(self.store.engine, CHANNEL, "kco-notify")
        return self._pg_conn

    def _close_pg(self) -> None:
        conn, self._pg_conn = self._pg_conn, None
        close_quietly(conn)

    def _safe_fetch(self) -> None:
        try:
            self._fetch()
        except Exception as exc:  # noqa: BLE001 - a locked or missing database: try again soon
            self._log_error("reading new events failed: %s", exc)
            time.sleep(min(1.0, SQLITE_POLL * 10))

    def _fetch(self) -> None:
        """Read every event newer than `latest` into the tail, then wake the waiters."""
        while True:
            new = self.store.events_after(self._latest, limit=PAGE)
            if not new:
                return
            with self._cond:
                for event in new:
                    if len(self._tail) == self._tail.maxlen:
                        self._floor = self._tail[0]["id"]
                    self._tail.append(event)
                self._latest = new[-1]["id"]
                self._cond.notify_all()
            if len(new) < PAGE:
                return

    def _log_error(self, message: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 30:
            self._last_error_log = now
            log.warning(message, exc)


def _as_int(payload: str) -> float:
    try:
        return int(payload)
    except (TypeError, ValueError):
        return math.inf  # an unexpected payload: read the table to find out


def max_waiters_from(config: Mapping[str, Any]) -> int | None:
    """How many long-polls one process lets wait at once (docs/long-poll.md):
    KCO_LONGPOLL_MAX_WAITERS (0 = no limit) when set; else the worker's thread count
    (GUNICORN_THREADS, which gunicorn.conf.py sets in every worker to the real figure) less a
    reserve of max(4, threads/8) for Klarna's callbacks and API calls; else no limit."""
    explicit = config.get("KCO_LONGPOLL_MAX_WAITERS")
    if explicit is None:
        explicit = os.environ.get("KCO_LONGPOLL_MAX_WAITERS")
    if explicit not in (None, ""):
        value = int(explicit)
        if value < 0:
            raise ValueError(f"KCO_LONGPOLL_MAX_WAITERS must be a whole number ≥ 0, not {explicit!r}")
        return value or None
    written = os.environ.get("GUNICORN_THREADS", "")
    if written.isdigit() and int(written) > 1:
        threads = int(written)
        return max(1, threads - max(4, threads // 8))
    return None


def init_app(app: Flask, gauge: Any = None) -> Notifier:
    config = app.config
    max_waiters_from(config)  # a wrong setting stops start-up rather than every long-poll
    notifier = Notifier(app.extensions["kco"].store, max_waiters=lambda: max_waiters_from(config),
                        gauge=gauge)
    app.extensions["kco_notify"] = notifier
    return notifier

