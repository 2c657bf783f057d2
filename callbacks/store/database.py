"""Sessions, events and the callback log (docs/design.md §8), on SQLAlchemy Core.

The rule this module exists to keep: a session's state change and the event describing it are
written in one transaction, and two writers of one session never interleave. SQLite gets that
from `BEGIN IMMEDIATE` (one writer at a time, queued by engine.SqliteWriters); PostgreSQL from a
transaction-scoped advisory lock on the session id. Event ids must also become visible in id
order, so that a feed reader that has seen id N never later finds a smaller id committed behind
it: SQLite's single writer gives that for free; on PostgreSQL writers commit concurrently and
readers hand out only the ids that nothing can overtake any more (events_pg.py,
docs/event-ordering.md).
"""
from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from callbacks.rules.state import EventType
from callbacks.store import events_pg, faults, hotpath
from callbacks.store.engine import SqliteWriters, make_engine

# The tables are re-exported for callers (`X as X`: an explicit re-export).
from callbacks.store.tables import callback_log as callback_log
from callbacks.store.tables import checkout_locks as checkout_locks
from callbacks.store.tables import events as events
from callbacks.store.tables import klarna_orders as klarna_orders
from callbacks.store.tables import metadata as metadata
from callbacks.store.tables import session_attachments as session_attachments
from callbacks.store.tables import sessions as sessions
from callbacks.web import jsonprovider

_open_write: ContextVar[sa.Connection | None] = ContextVar("kco_open_write", default=None)

MAX_EVENT_ID = 2**31 - 1  # events.id is an INTEGER

# What every callback executes, built once with bound parameters: building the statements per
# call (values(), then their cache keys) was ~10 % of a 10-line callback's CPU (BENCHMARKS.md).
SELECT_SID = sa.select(sessions.c.sid).where(sessions.c.sid == sa.bindparam("b_sid"))
EVENT_ORDER_LOCK = 0x6B636F  # "kco": the lock kco_append_events holds while it draws event ids


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"  # naive UTC: no offset to strip


def _session_lock_key(sid: str) -> int:
    return zlib.crc32(sid.encode()) - 2**31  # a signed 32-bit key for pg_advisory_xact_lock


class SessionTx:
    """One locked session inside a write transaction: read `state`, then `save` it once."""

    def __init__(self, conn: sa.Connection, store: Store, sid: str, state: dict[str, Any] | None,
                 version: int):
        self.conn, self.store, self.sid = conn, store, sid
        self.state: dict[str, Any] | None = state
        self.version: int = version
        self.events: list[dict[str, Any]] = []
        self.pending: list[tuple[dict[str, Any], datetime]] = []  # PostgreSQL: appended at commit (events_pg)

    def save(self, state: dict[str, Any], event_type: EventType, data: dict[str, Any]) -> dict[str, Any]:
        """Store `state` as version+1 and record its event; returns the event. An event type
        outside EventType is a ValueError here, before anything is written."""
        type_name = EventType(event_type).value
        now = utcnow()
        self.version += 1
        state = {**state, "session": self.sid, "version": self.version, "updated_at": iso(now)}
        klarna = state.get("klarna") or {}
        self.store.hot.write_session(self.conn, self.state is None, self.sid, self.version, state,
                                     klarna.get("order_id"), klarna.get("account"), now)
        self.state = state
        if self.store.is_postgres:  # its id comes at commit: see events_pg.publish
            event = {"id": None, "session": self.sid, "type": type_name,
                     "version": self.version, "at": iso(now), "data": data}
            self.pending.append((event, now))
        else:
            event_id = self.store.hot.insert_event(self.conn, self.sid, type_name, self.version,
                                                   now, data)
            event = {"id": event_id, "session": self.sid, "type": type_name,
                     "version": self.version, "at": iso(now), "data": data}
        self.events.append(event)
        return event


    # -- completed Klarna orders (push idempotency) -------------------------------------------
    def record_completed(self, order_id: str, om_order: dict[str, Any],
                         account: str | None = None) -> bool:
        """Insert the completed order once, with the Klarna account that holds it (None: the
        environment's); False when another push got there first. The primary key decides,
        not a check-then-insert, so concurrent pushes cannot both win."""
        insert = (_dialect_insert(self.conn)(klarna_orders)
                  .values(order_id=order_id, session=self.sid, completed_at=utcnow(),
                          fraud_status=om_order.get("fraud_status"),
                          order_amount=om_order.get("order_amount"),
                          purchase_currency=om_order.get("purchase_currency"),
                          klarna_account=account)
                  .on_conflict_do_nothing(index_elements=["order_id"])
                  .returning(klarna_orders.c.order_id))
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT.
        return self.conn.execute(insert).first() is not None

    def mark_acknowledged(self, order_id: str) -> bool:
        """True only for the first caller: the one that records `order_acknowledged`."""
        return self.conn.execute(
            klarna_orders.update().where(klarna_orders.c.order_id == order_id,
                                         klarna_orders.c.acknowledged_at.is_(None))
            .values(acknowledged_at=utcnow())).rowcount == 1

    def order_owners(self, order_id: str) -> set[str]:
        """The sessions bound to `order_id`, read inside this session's transaction."""
        return _order_owners(self.conn, order_id)

    # -- extra merchant data (the order's `attachment`), kept apart from the state ------------
    def attachment_digest(self) -> str | None:
        """The digest of the session's attachment, read inside this session's transaction."""
        return self.conn.execute(sa.select(session_attachments.c.digest)
                                 .where(session_attachments.c.sid == self.sid)).scalar_one_or_none()

    def set_attachment(self, content_type: str, body: str, digest: str) -> None:
        """Store (or replace) the session's attachment in this transaction, beside the state
        version that records that it changed."""
        values = {"content_type": content_type, "body": body, "digest": digest, "updated_at": utcnow()}
        insert = _dialect_insert(self.conn)(session_attachments).values(sid=self.sid, **values)
        self.conn.execute(insert.on_conflict_do_update(index_elements=["sid"], set_=values))

    def set_fraud_status(self, order_id: str, fraud_status: str | None) -> None:
        self.conn.execute(klarna_orders.update().where(klarna_orders.c.order_id == order_id)
                          .values(fraud_status=fraud_status))


SELECT_ORDER_OWNERS = sa.union(
    sa.select(sessions.c.sid).where(sessions.c.klarna_order_id == sa.bindparam("b_order")),
    sa.select(klarna_orders.c.session).where(klarna_orders.c.order_id == sa.bindparam("b_order")))


def _order_owners(conn: sa.Connection, order_id: str) -> set[str]:
    """Every session whose state names `order_id` or that recorded it completed (asked by
    every callback that names an order its session does not have yet: built once)."""
    return {row[0] for row in conn.execute(SELECT_ORDER_OWNERS, {"b_order": order_id})}


def _discard(conn: sa.Connection) -> None:
    """Close the DBAPI connection and drop it from the pool; a dead one may refuse even that."""
    try:
        conn.invalidate()
    except Exception:  # noqa: BLE001 - already closed or invalidated: nothing left to discard
        pass


def _dialect_insert(conn: sa.Connection) -> Callable[[sa.Table], Any]:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert


class Change(Protocol):
    """What a decision hands Store.apply (rules.checkout.Decision): the new state, and the event
    that records it, or an event type of None when nothing changed."""

    state: dict[str, Any]
    event_type: EventType | None
    data: dict[str, Any]


C = TypeVar("C", bound=Change)


class LeaseBusy(Exception):
    """Another request holds the session's checkout lease (Store.lease) past our wait."""


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.hot = hotpath.Statements(self.engine.dialect)  # the hot path's own SQL
        # Reads of one statement need no transaction of their own: under READ COMMITTED each
        # statement takes its own snapshot anyway. On PostgreSQL, autocommit spares each read
        # its BEGIN and its ROLLBACK (two round trips of four, with the pool's pre-ping);
        # SQLite reads are in-process.
        self.reads = (self.engine.execution_options(isolation_level="AUTOCOMMIT")
                      if self.is_postgres else self.engine)
        self._writers = (nullcontext if self.is_postgres
                         else SqliteWriters(self.engine.url.database))
        self._after_commit: list[Callable[[int], None]] = []
        self.migrated = False

    # -- schema ------------------------------------------------------------------------------
    def migrate(self) -> str:
        """Bring the schema up to date; returns the revision. `self.migrated` remembers whether
        this Store ever changed the schema (then the migration said so in the log)."""
        from callbacks.store.migrate import upgrade
        before, after = upgrade(self.engine)
        self.migrated = self.migrated or before != after
        return str(after)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def on_commit(self, callback: Callable[[int], None]) -> None:
        """Called with the newest event id after every transaction that wrote events."""
        self._after_commit.append(callback)

    # -- writes ------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction. On a database fault (store/faults.py) it is rolled back whole
        and its connection leaves the pool: a connection that failed mid-transaction (the
        server closed it, events_pg.publish's raw cursor broke) must not serve the next
        request, which would then fail with PendingRollbackError on a healthy database."""
        with self._writers(), self.engine.connect() as conn:
            conn.execution_options(kco_write=True)
            try:
                with conn.begin():
                    token = _open_write.set(conn)
                    try:
                        yield conn
                    finally:
                        _open_write.reset(token)
            except Exception as exc:
                if faults.is_fault(exc):
                    _discard(conn)
                raise

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for a read: this thread's open write transaction if it has one. A read
        from inside Store.session (pricing's product look-ups) must not ask the pool for a
        second connection: when every pooled connection is held by writers queued on the
        session lock, it would wait for the pool's timeout and the callback would be a 500."""
        conn = _open_write.get()
        if conn is not None and conn.engine is self.engine:
            yield conn
            return
        with self.reads.connect() as conn:
            yield conn

    @contextmanager
    def session(self, sid: str) -> Iterator[SessionTx]:
        """Lock one session for the length of a transaction; commit on a clean exit."""
        hot = self.hot
        with self.write() as conn:
            lock = _session_lock_key(sid) if self.is_postgres else None  # SQLite: BEGIN IMMEDIATE
            tx = SessionTx(conn, self, sid, *hot.read_session(conn, sid, lock))
            yield tx
            if tx.events:  # and their webhook messages, in the same transaction (outbox.py)
                versions = (tx.events[0]["version"], tx.events[-1]["version"])
                if tx.pending:
                    events_pg.publish(conn, tx.pending, also=hot.enqueue_postgres(
                        hotpath.driver(conn), sid, *versions))
                else:
                    hot.enqueue_sqlite(conn, sid, *versions)
        if tx.events:
            last = tx.events[-1]["id"]
            for callback in self._after_commit:
                callback(last)

    def apply(self, sid: str, decide: Callable[[SessionTx], C | None],
              before_commit: Callable[[SessionTx, C | None], None] | None = None,
              ) -> tuple[dict[str, Any] | None, C | None]:
        """Lock the session, decide, save if the decision changed something, commit: the one
        way state changes are written. `decide` sees the locked session (`tx.state`, and the
        order-bookkeeping methods) and returns a Change or None; an exception from it rolls
        everything back. `before_commit` writes what belongs in the same transaction (the
        callback log's row). Returns the session's state afterwards and the decision."""
        with self.session(sid) as tx:
            decision = decide(tx)
            if decision is not None and decision.event_type:
                tx.save(decision.state, decision.event_type, decision.data)
            if before_commit is not None:
                before_commit(tx, decision)
        return tx.state, decision

    @contextmanager
    def lease(self, sid: str, ttl: float = 180.0, wait: float = 45.0) -> Iterator[None]:
        """A short, cross-process lock on one session's checkout load, held across Klarna API
        calls without a database transaction open; it expires by itself if its holder dies.
        Hold the checkout lease of `sid`; waits up to `wait` s, then raises LeaseBusy. The
        ttl outlasts a checkout load's worst case (three Klarna calls of 10 s read timeout,
        retried with Retry-After), so a live holder's lease never expires under it."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        while True:
            now = utcnow()
            try:
                with self.write() as conn:
                    conn.execute(checkout_locks.delete().where(checkout_locks.c.sid == sid,
                                                               checkout_locks.c.expires_at < now))
                    conn.execute(checkout_locks.insert().values(
                        sid=sid, holder=holder, expires_at=now + timedelta(seconds=ttl)))
                break
            except sa.exc.IntegrityError:
                if time.monotonic() >= deadline:
                    raise LeaseBusy(f"checkout of session {sid} is busy") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            with self.write() as conn:
                conn.execute(checkout_locks.delete().where(checkout_locks.c.sid == sid,
                                                           checkout_locks.c.holder == holder))

    def unacknowledged_orders(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(klarna_orders)
                                .where(klarna_orders.c.acknowledged_at.is_(None))
                                .order_by(klarna_orders.c.completed_at)).all()
        return [dict(r._mapping) for r in rows]

    def order_owners(self, order_id: str) -> set[str]:
        with self.reads.connect() as conn:
            return _order_owners(conn, order_id)

    def order_account(self, order_id: str) -> tuple[bool, str | None]:
        """(known, account): the Klarna account holding `order_id` as we recorded it — the
        completed order's, else that of a session whose order it is. (False, None) for an order
        we never recorded (an older order of a session, a stranger's)."""
        with self.reads.connect() as conn:
            for query in (sa.select(klarna_orders.c.klarna_account)
                          .where(klarna_orders.c.order_id == order_id),
                          sa.select(sessions.c.klarna_account)
                          .where(sessions.c.klarna_order_id == order_id).limit(1)):
                row = conn.execute(query).first()
                if row is not None:
                    return True, row[0]
        return False, None

    def completed_order(self, order_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(klarna_orders)
                               .where(klarna_orders.c.order_id == order_id)).first()
        return dict(row._mapping) if row else None

    # -- reads -------------------------------------------------------------------------------
    def get_state(self, sid: str) -> dict[str, Any] | None:
        with self.reads.connect() as conn:
            stored = self.hot.read_state_text(conn, sid)
        return None if stored is None else hotpath.state_from(stored)

    def get_attachment(self, sid: str) -> dict[str, str] | None:
        """The session's extra merchant data, `{content_type, body}`, or None."""
        with self.reading() as conn:
            row = conn.execute(sa.select(session_attachments.c.content_type, session_attachments.c.body)
                               .where(session_attachments.c.sid == sid)).first()
        return {"content_type": row.content_type, "body": row.body} if row else None

    def get_state_json(self, sid: str) -> bytes | None:
        """get_state(sid) as the JSON stored, not parsed: what the state read sends."""
        with self.reads.connect() as conn:
            found = self.hot.read_state_text(conn, sid)
        if found is None:
            return None
        stored: bytes = found.encode() if isinstance(found, str) else found
        # A state last written before the engine encoded with orjson (web/jsonprovider.py) has
        # a space after each colon and its keys unsorted: re-encoded, it is the JSON (and has
        # the ETag) that a write of the same state gives. orjson never writes a space there.
        colon = stored.find(b'":')
        if colon != -1 and stored[colon + 2:colon + 3] == b" ":
            stored = jsonprovider.dumps(jsonprovider.loads(stored)).encode()
        return stored

    def has_session(self, sid: str) -> bool:
        """get_state(sid) is not None, without reading and parsing the state."""
        with self.reads.connect() as conn:
            return conn.execute(SELECT_SID, {"b_sid": sid}).first() is not None

    def events_after(self, after: int, sid: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Events with id > `after`, oldest first. On PostgreSQL only those that no smaller id
        can still overtake (events_pg.READABLE): an event just committed may wait there, for
        milliseconds, until older transactions have finished."""
        # Event ids are 32-bit on PostgreSQL, which refuses a larger bound (integer out of
        # range); nothing can be newer than the largest id anyway.
        after = min(after, MAX_EVENT_ID)
        query = sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
        if sid is not None:
            query = query.where(events.c.session == sid)
        if self.is_postgres:
            query = query.where(events_pg.READABLE)
        with self.reads.connect() as conn:
            rows = conn.execute(query).all()
        return [{"id": r.id, "session": r.session, "type": r.type, "version": r.version,
                 "at": iso(r.at), "data": r.data} for r in rows]

    def last_event_id(self) -> int:
        """The newest id a feed reader may start after: nothing at or below it can commit later."""
        query = sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))
        if self.is_postgres:
            query = query.where(events_pg.READABLE)
        with self.reads.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- callback log ------------------------------------------------------------------------
    def log_callback(self, callback: str, session: str | None, order_id: str | None, status: int,
                     duration_ms: float, request: Any, reply: Any,
                     conn: sa.Connection | None = None) -> int:
        """One row of the callback log: in `conn`'s open transaction when given (the session's,
        see calllog.write_in), else in a transaction of its own."""
        row = (utcnow(), callback, session, order_id, status, duration_ms, request, reply)
        if conn is not None:  # a failing row undoes nothing else (a savepoint on PostgreSQL)
            return self.hot.insert_log_guarded(conn, *row)
        with self.write() as conn:
            return self.hot.insert_log(conn, *row)

    def logged_callback(self, log_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(callback_log).where(callback_log.c.id == log_id)).first()
        return dict(row._mapping) if row else None

    def purge_callback_log(self, older_than: timedelta) -> int:
        with self.engine.begin() as conn:
            return conn.execute(callback_log.delete()
                                .where(callback_log.c.at < utcnow() - older_than)).rowcount

    def dispose(self) -> None:
        self.engine.dispose()

