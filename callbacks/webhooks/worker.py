"""`flask kco deliver`: the worker that delivers the outbox's webhook messages (docs/webhooks.md).

Why the outbox is our own and not a queue library: the ones on PyPI that use PostgreSQL's
`FOR UPDATE SKIP LOCKED` (procrastinate, pgqueuer, pq) are PostgreSQL-only, and the ones that
also run on SQLite (huey) or on a broker (dramatiq, rq: Redis) cannot enqueue inside the
transaction that records the event, which is the whole point: an event committed without its
message, or a message for an event rolled back, is exactly what an outbox exists to prevent.
None of them orders jobs per key (a session's messages in event order, a failing one holding
back only its own session). So the queue is three tables (tables.py) and this loop:

1. claim, in a short transaction: the due, pending messages that are the OLDEST pending one of
   their (endpoint, session), locked `FOR UPDATE … SKIP LOCKED` on PostgreSQL so that workers on
   several hosts never take the same row, and stamped with a claim token and a lease. No
   transaction stays open during the HTTP call: a long one would hold back every event feed
   reader (store/events_pg.py). On SQLite one worker runs (its writes queue anyway);
2. deliver each claimed message (at most one per session of an endpoint, so in parallel, up
   to `--concurrency` in flight; the loop claims again as each one finishes, so a slow
   endpoint holds only its own deliveries), signed with `standardwebhooks`; a 2xx is
   delivered, anything else (status, timeout, network error, an address refused at delivery
   time) is a failed attempt;
3. record the attempt, in a short transaction, only while the claim is still ours: a worker
   killed mid-delivery leaves the claim to expire after the lease, and the message is then
   delivered again (at least once: duplicates only after a crash, same webhook-id).

A failed attempt is retried on the backoff schedule (KCO_WEBHOOK_BACKOFF); after the last one
the message is `failed` and no longer holds its session back. An endpoint whose deliveries
have failed, with no success in between, for KCO_WEBHOOK_DISABLE_AFTER (5 days) is disabled
with the reason; its messages wait.
"""
from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from standardwebhooks import Webhook

from callbacks.store import faults
from callbacks.store.database import Store, iso, utcnow
from callbacks.store.tables import events, webhook_attempts, webhook_endpoints, webhook_messages
from callbacks.web import jsonprovider
from callbacks.webhooks.endpoints import message_name
from callbacks.webhooks.outbox import DELIVERED, FAILED, PENDING
from callbacks.webhooks.ssrf import url_problem

log = logging.getLogger(__name__)

# Seconds before attempt 1, 2, …: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
BACKOFF = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
TIMEOUT = 10.0
DISABLE_AFTER = timedelta(days=5)
USER_AGENT = "kco-sync-webhooks/1.0"
MAX_ERROR = 300
RELISTEN = 5.0  # seconds before a lost LISTEN connection is opened again
FAULT_WAIT = 1.0  # seconds between claims while the database refuses us (one WARNING each)


def parse_backoff(text: str | None) -> tuple[float, ...]:
    """"0,5,300" → (0.0, 5.0, 300.0): the delay before each attempt, the first usually 0."""
    if not text:
        return BACKOFF
    values = tuple(float(part) for part in text.split(",") if part.strip())
    if not values or any(v < 0 for v in values):
        raise ValueError(f"KCO_WEBHOOK_BACKOFF must be seconds ≥ 0, comma-separated: {text!r}")
    return values


@dataclass
class Claimed:
    id: int
    endpoint_id: str
    url: str
    secret: str
    attempts: int
    failing_since: datetime | None
    event_id: int
    session: str
    type: str
    version: int
    at: datetime
    data: dict
    created_at: datetime


@dataclass
class Outcome:
    status: int | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def body(message: Claimed) -> bytes:
    """The message as Standard Webhooks define one: type, timestamp, data. The data is the
    event's as the feed serves it, with its session, id and version."""
    return jsonprovider.dumps({
        "type": message.type, "timestamp": iso(message.at),
        "data": {**message.data, "session": message.session, "event_id": message.event_id,
                 "version": message.version}}).encode()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.attempts = Counter("kco_webhook_attempts", "Webhook delivery attempts, by outcome "
                                "(delivered, failed: a status, timeout or network error).",
                                ["outcome"], registry=self.registry)
        self.lag = Histogram("kco_webhook_lag_seconds", "Event committed → its message "
                             "delivered (first successful attempt).",
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                      300, 1800, 7200, 36000), registry=self.registry)
        self.pending = Gauge("kco_webhook_pending_messages", "Messages not yet delivered "
                             "(enabled endpoints).", registry=self.registry)
        self.oldest = Gauge("kco_webhook_oldest_pending_seconds", "Age of the oldest message "
                            "not yet delivered: how far delivery lags.", registry=self.registry)
        self.disabled = Gauge("kco_webhook_disabled_endpoints", "Endpoints disabled after "
                              "failing too long.", registry=self.registry)


class Deliverer:
    """One worker: `run()` until stopped, or `run_once()` for one claim → deliver → record."""

    def __init__(self, store: Store, *, backoff: tuple[float, ...] = BACKOFF,
                 timeout: float = TIMEOUT, disable_after: timedelta = DISABLE_AFTER,
                 private_allowed: bool = False, concurrency: int = 8, lease: float | None = None,
                 poll: float = 0.25, metrics: Metrics | None = None):
        self.store, self.backoff, self.timeout = store, backoff, timeout
        self.disable_after, self.private_allowed = disable_after, private_allowed
        self.concurrency, self.poll = max(1, concurrency), poll
        # Longer than any one attempt (connect, headers and body each within the timeout) with
        # a margin: a claim must not expire while its worker is still delivering. It is also
        # how long a message waits after its worker was killed mid-delivery (32 s by default).
        self.lease = lease if lease is not None else 3 * timeout + 2
        self.metrics = metrics or Metrics()
        self.token = secrets.token_hex(8)
        self.stopping = threading.Event()
        self._wake = threading.Event()  # a delivery ended, an event was committed, or stop
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="deliver")
        self._last_gauges = 0.0

    @classmethod
    def from_config(cls, store: Store, config, **kw) -> Deliverer:
        kw.setdefault("backoff", parse_backoff(config.get("KCO_WEBHOOK_BACKOFF")))
        kw.setdefault("timeout", float(config.get("KCO_WEBHOOK_TIMEOUT") or TIMEOUT))
        kw.setdefault("disable_after", timedelta(
            seconds=float(config.get("KCO_WEBHOOK_DISABLE_AFTER") or DISABLE_AFTER.total_seconds())))
        kw.setdefault("private_allowed", bool(config.get("KCO_WEBHOOK_PRIVATE_URLS")))
        return cls(store, **kw)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        """Keep up to `concurrency` deliveries in flight: claim again whenever one finishes
        (its session's next message may now be due) or an event is committed, so a slow
        endpoint holds only its own deliveries, not a whole round of everyone's."""
        wake = self._wake
        listener = self._listen()  # from here on the watcher's: it closes it, or its successor
        watcher = None
        if listener is not None:
            watcher = threading.Thread(target=self._watch, args=(listener,),
                                       name="deliver-listen", daemon=True)
            watcher.start()
        inflight: set[Future[None]] = set()
        try:
            while not self.stopping.is_set():
                wake.clear()
                inflight = {f for f in inflight if not f.done()}
                free = self.concurrency - len(inflight)
                claimed = self._claim_quietly(free) if free > 0 else []
                for message in claimed:
                    future = self._pool.submit(self._attempt, message)
                    future.add_done_callback(lambda _f: wake.set())
                    inflight.add(future)
                self._gauges()
                if len(claimed) < free or free == 0:
                    # Nothing more due now: sleep until a delivery ends, an event is
                    # committed (PostgreSQL's NOTIFY) or the poll interval passes.
                    wake.wait(self.poll)
        finally:
            self.stopping.set()
            wake.set()
            if watcher is not None:
                watcher.join(2)
            self._pool.shutdown(wait=True)

    def _claim_quietly(self, limit: int) -> list[Claimed]:
        """A claim that fails (the database restarting, refusing us: `too many clients`) is
        retried after FAULT_WAIT s, with one WARNING line per try (no traceback: under an
        outage every try would print one)."""
        try:
            return self.claim(limit)
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database outage
            log.warning("deliver: claim failed (%s); retrying in %.0f s", faults.describe(exc),
                        max(self.poll, FAULT_WAIT))
            self.stopping.wait(max(self.poll, FAULT_WAIT))
            return []

    def stop(self, *_args) -> None:
        self.stopping.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _listen(self):
        """PostgreSQL: wake on the event feed's NOTIFY, not only on the poll interval."""
        if not self.store.is_postgres:
            return None
        from callbacks.store.engine import listen
        try:
            return listen(self.store.engine, "kco_events", "kco-deliver")
        except Exception as exc:  # noqa: BLE001 - polling still delivers
            log.warning("deliver: no LISTEN connection (%s); polling every %.2f s", exc, self.poll)
            return None

    def _watch(self, listener) -> None:
        """The listener's thread: every notification wakes the loop. A lost connection (the
        server restarted, the backend was terminated) is closed and opened again after
        RELISTEN s; the loop polls meanwhile."""
        from callbacks.store.engine import close_quietly

        try:
            while not self.stopping.is_set():
                try:  # a short timeout, so that stopping is noticed within a second
                    for _ in listener.notifies(timeout=min(self.poll, 1.0), stop_after=1):
                        self._wake.set()
                except Exception as exc:  # noqa: BLE001 - polling still delivers
                    close_quietly(listener)
                    listener = None
                    if self.stopping.is_set():
                        return
                    log.warning("deliver: LISTEN connection lost (%s); polling every %.2f s, "
                                "listening again in %.0f s", faults.describe(exc), self.poll,
                                RELISTEN)
                    while listener is None and not self.stopping.wait(RELISTEN):
                        listener = self._listen()
                    if listener is None:
                        return
        finally:
            close_quietly(listener)  # the one run() opened, or its replacement

    def run_once(self) -> int:
        """Claim what is due, deliver it, record it; returns how many messages were attempted."""
        claimed = self.claim(self.concurrency)
        if claimed:
            list(self._pool.map(self._attempt, claimed))
        self._gauges()
        return len(claimed)

    def _attempt(self, message: Claimed) -> None:
        try:
            outcome = self.deliver(message)
            self.record(message, outcome)
        except Exception:  # a message must never stop the worker; its claim expires
            log.exception("deliver: message %s", message.id)

    # -- 1. claim --------------------------------------------------------------------------
    def claim(self, limit: int, now: datetime | None = None) -> list[Claimed]:
        now = now or utcnow()
        m, w, e = webhook_messages, webhook_endpoints, events
        earlier = m.alias("earlier")
        holding = (sa.select(earlier.c.id)
                   .where(earlier.c.endpoint_id == m.c.endpoint_id,
                          earlier.c.session == m.c.session, earlier.c.state == PENDING,
                          earlier.c.event_id < m.c.event_id)
                   .exists())
        due = (sa.select(m.c.id)
               .join(w, sa.and_(w.c.id == m.c.endpoint_id, w.c.enabled))
               .where(m.c.state == PENDING, m.c.next_at <= now,
                      sa.or_(m.c.claimed_until.is_(None), m.c.claimed_until < now), ~holding)
               .order_by(m.c.id).limit(limit))
        if self.store.is_postgres:
            due = due.with_for_update(of=m, skip_locked=True)
        with self.store.write() as conn:
            ids = [row[0] for row in conn.execute(due)]
            if not ids:
                return []
            conn.execute(m.update().where(m.c.id.in_(ids)).values(
                claim=self.token, claimed_until=now + timedelta(seconds=self.lease)))
            rows = conn.execute(
                sa.select(m.c.id, m.c.endpoint_id, w.c.url, w.c.secret, m.c.attempts,
                          w.c.failing_since, m.c.event_id, m.c.session, m.c.type, e.c.version,
                          e.c.at, e.c.data, m.c.created_at)
                .join(w, w.c.id == m.c.endpoint_id).join(e, e.c.id == m.c.event_id)
                .where(m.c.id.in_(ids)).order_by(m.c.id)).all()
        return [Claimed(*tuple(row)) for row in rows]

    # -- 2. deliver ------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        return session

    def deliver(self, message: Claimed) -> Outcome:
        started = time.monotonic()
        problem = url_problem(message.url, self.private_allowed)  # again: DNS may have moved
        if problem:
            return Outcome(None, f"refused: {problem}"[:MAX_ERROR], 0.0)
        payload = body(message)
        name = message_name(message.id)
        sent_at = datetime.now(UTC)
        headers = {"Content-Type": "application/json", "webhook-id": name,
                   "webhook-timestamp": str(int(sent_at.timestamp())),
                   "webhook-signature": Webhook(message.secret).sign(name, sent_at,
                                                                      payload.decode())}
        deadline = started + self.timeout
        try:
            with self._session().post(message.url, data=payload, headers=headers,
                                      timeout=(min(5.0, self.timeout), self.timeout),
                                      allow_redirects=False, stream=True) as resp:
                # The status is all we need; a slow body still counts against the timeout.
                for _ in resp.iter_content(8192):
                    if time.monotonic() > deadline:
                        return Outcome(None, f"timeout after {self.timeout:g} s",
                                       time.monotonic() - started)
                status = resp.status_code
        except requests.Timeout:
            return Outcome(None, f"timeout after {self.timeout:g} s", time.monotonic() - started)
        except requests.RequestException as exc:
            return Outcome(None, f"network: {exc}"[:MAX_ERROR], time.monotonic() - started)
        return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}",
                       time.monotonic() - started)

    # -- 3. record -------------------------------------------------------------------------
    def record(self, message: Claimed, outcome: Outcome, now: datetime | None = None) -> bool:
        """Write the attempt and the message's next state; False when the claim was lost."""
        now = now or utcnow()
        m, w = webhook_messages, webhook_endpoints
        attempt = message.attempts + 1
        ours = sa.and_(m.c.id == message.id, m.c.claim == self.token)
        with self.store.write() as conn:
            if outcome.ok:
                changed = conn.execute(m.update().where(ours).values(
                    state=DELIVERED, attempts=attempt, delivered_at=now, claim=None,
                    claimed_until=None)).rowcount
                if changed and message.failing_since is not None:
                    conn.execute(w.update().where(w.c.id == message.endpoint_id)
                                 .values(failing_since=None))
            else:
                last = attempt >= len(self.backoff)
                delay = 0 if last else self.backoff[attempt]
                changed = conn.execute(m.update().where(ours).values(
                    state=FAILED if last else PENDING, attempts=attempt, claim=None,
                    claimed_until=None, next_at=now + timedelta(seconds=delay))).rowcount
                if changed:
                    self._endpoint_failed(conn, message.endpoint_id, now)
            if not changed:
                log.warning("deliver: claim on message %s expired before its result", message.id)
                return False
            conn.execute(webhook_attempts.insert().values(
                message_id=message.id, endpoint_id=message.endpoint_id, attempt=attempt,
                status=outcome.status, error=outcome.error, duration_ms=outcome.seconds * 1000,
                at=now))
        self.metrics.attempts.labels(DELIVERED if outcome.ok else FAILED).inc()
        if outcome.ok and message.attempts == 0:
            self.metrics.lag.observe(max(0.0, (now - message.created_at).total_seconds()))
        return True

    def _endpoint_failed(self, conn: sa.Connection, endpoint_id: str, now: datetime) -> None:
        w = webhook_endpoints
        conn.execute(w.update().where(w.c.id == endpoint_id, w.c.failing_since.is_(None))
                     .values(failing_since=now))
        since = conn.execute(sa.select(w.c.failing_since).where(w.c.id == endpoint_id)).scalar()
        if since is not None and now - since >= self.disable_after:
            conn.execute(w.update().where(w.c.id == endpoint_id, w.c.enabled).values(
                enabled=False, disabled_reason=f"disabled at {iso(now)}: every delivery failed "
                f"since {iso(since)}"))
            log.warning("deliver: endpoint %s disabled (failing since %s)", endpoint_id, iso(since))

    def _gauges(self) -> None:
        if time.monotonic() - self._last_gauges < 5:
            return
        self._last_gauges = time.monotonic()
        m, w = webhook_messages, webhook_endpoints
        with self.store.reads.connect() as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(m.c.created_at))
                .join(w, sa.and_(w.c.id == m.c.endpoint_id, w.c.enabled))
                .where(m.c.state == PENDING)).one()
            disabled = conn.execute(sa.select(sa.func.count()).select_from(w)
                                    .where(~w.c.enabled)).scalar_one()
        self.metrics.pending.set(count)
        self.metrics.oldest.set((utcnow() - oldest).total_seconds() if oldest else 0)
        self.metrics.disabled.set(disabled)
