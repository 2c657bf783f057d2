"""The database goes away and comes back: 503 + Retry-After, never a 500, nothing half-written.

The PostgreSQL test runs the app through tests/faultproxy.py, which cuts every connection to the
database at once (as a restart or a failover does) while eight threads write carts, new
sessions and address_updates. It holds that no request answered 500, that every 2xx is found in
the database afterwards, and that writes answer 2xx again once the database is back. The other
tests here pin the reply's shape for each contract and the one-line log.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter

import psycopg
import psycopg.errors as pg_errors
import pytest
import sqlalchemy as sa

from callbacks.store import faults
from callbacks.store.tables import callback_log, events

from .conftest import PG_DATABASE, kco_url, postgres_url, reset_postgres
from .faultproxy import DroppingProxy
from .payloads import goods_line, shipping_service_body

TSHIRT = "TSHIRT-BLUE-M"
BACK_WITHIN = 30  # seconds for writes to answer 2xx again once the database is back


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class Writers:
    """Eight threads: a cart write for a new session, then address_updates and cart writes on
    it, over and over; every answer is noted with what it claims was written."""

    def __init__(self, app, api_headers, threads: int = 8):
        self.app, self.headers = app, api_headers
        self.answers: list[tuple[float, str, str, int, dict | None]] = []  # at, kind, sid, status, body
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True)
                        for n in range(threads)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a writer hung"

    def note(self, kind, sid, response):
        body = response.get_json(silent=True)
        with self.lock:
            self.answers.append((time.monotonic(), kind, sid, response.status_code, body))

    def count(self, kind=None, status_class=None, since=0.0) -> int:
        with self.lock:
            return sum(1 for at, k, _, status, _ in self.answers
                       if at >= since and (kind is None or k == kind)
                       and (status_class is None or status // 100 == status_class))

    def run(self, n: int):
        client = self.app.test_client()
        shop = self.app.extensions["kco"].shop
        lines = [goods_line(shop, TSHIRT, 1, "SEK", 2500)]
        i = 0
        while not self.stop.is_set():
            i += 1
            sid = f"fault-{n}-{i}"
            for quantity in (1, 2):
                response = client.put(f"/api/sessions/{sid}/cart", headers=self.headers,
                                      json={"items": [{"reference": TSHIRT, "quantity": quantity}]})
                self.note("cart", sid, response)
                response = client.post(kco_url(self.app, "address_update", sid),
                                       json=shipping_service_body(lines))
                self.note("address_update", sid, response)


@pytest.fixture
def pg_through_proxy(app_factory):
    url = postgres_url()
    reset_postgres(url)
    direct = sa.engine.make_url(url)
    proxy = DroppingProxy((direct.host or "127.0.0.1", direct.port or 5432))
    app = app_factory(DATABASE_URL=direct.set(host="127.0.0.1", port=proxy.port)
                      .render_as_string(hide_password=False))
    check = sa.create_engine(url)
    yield app, proxy, check
    proxy.close()
    check.dispose()


def test_database_taken_away_under_concurrent_writes(pg_through_proxy, caplog):
    app, proxy, check = pg_through_proxy
    caplog.set_level(logging.WARNING)
    writers = Writers(app, {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"})
    writers.start()
    try:
        wait_for(lambda: writers.count(status_class=2) >= 40, 60, "40 writes before the cut")
        proxy.drop()
        cut = time.monotonic()
        wait_for(lambda: writers.count(status_class=5, since=cut) >= 16, 60,
                 "writes refused while the database is away")
        proxy.restore()
        back = time.monotonic()
        for kind in ("cart", "address_update"):
            wait_for(lambda kind=kind: writers.count(kind, 2, since=back) >= 5, BACK_WITHIN,
                     f"{kind} answering 2xx again once the database is back")
    finally:
        proxy.restore()
        writers.join()

    statuses = Counter(status for _, _, _, status, _ in writers.answers)
    # A 409 "Saved, but checkout … is busy" is designed: the cart was written, and the lease of
    # a request the cut interrupted is still held (it expires by itself); nothing else but 503.
    busy = [b for _, k, _, s, b in writers.answers if s == 409]
    assert all(b and b["message"].startswith("Saved, but checkout") for b in busy), busy[:3]
    assert set(statuses) <= {200, 409, 503}, statuses
    for _, kind, _, status, body in writers.answers:
        if status == 503:  # in the contract's shape of each endpoint
            assert (body.keys() == {"error_type", "error_text"} if kind == "address_update"
                    else body["code"] == 503), body

    with check.connect() as conn:
        cart_events = set(conn.execute(sa.select(events.c.session, events.c.version)
                                       .where(events.c.type == "cart_updated")).all())
        logged = Counter(sid for (sid,) in conn.execute(
            sa.select(callback_log.c.session).where(callback_log.c.callback == "address_update",
                                                    callback_log.c.status == 200)))
    answered = Counter()
    for _, kind, sid, status, body in writers.answers:
        if status == 200 and kind == "cart":
            assert (sid, body["version"]) in cart_events, f"cart {sid} v{body['version']} lost"
        elif status == 200:
            answered[sid] += 1
    lost = {sid: n for sid, n in answered.items() if logged[sid] < n}
    assert not lost, f"address_updates answered 200 but not recorded: {lost}"

    # One WARNING line per failure, never an ERROR or a traceback.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info][:3]
    assert any("database unavailable" in r.getMessage() for r in caplog.records)


FAULTS = {
    "connection dropped mid-transaction": lambda: sa.exc.PendingRollbackError(
        "Can't reconnect until invalid transaction is rolled back."),
    "server shutting down": lambda: sa.exc.OperationalError(
        "SELECT 1", None, Exception("the database system is shutting down")),
    "raw cursor lost the server": lambda: __import__("psycopg").OperationalError(
        "consuming input failed: server closed the connection unexpectedly"),
    "failover to a read-only standby": lambda: sa.exc.InternalError(
        "UPDATE", None, Exception("cannot execute UPDATE in a read-only transaction")),
    "pool exhausted": lambda: sa.exc.TimeoutError("QueuePool limit of size 3 overflow 7 reached"),
}


@pytest.fixture
def failing_writes(app, monkeypatch):
    """Every session write fails with the given fault, as the database would raise it."""
    store = app.extensions["kco"].store

    def fail_with(make):
        def apply(*args, **kwargs):
            raise make()
        monkeypatch.setattr(store, "apply", apply)
    return fail_with


@pytest.mark.parametrize("fault", FAULTS)
def test_a_database_fault_is_503_in_each_contract(app, client, klarna, api_headers,
                                                  failing_writes, caplog, fault):
    caplog.set_level(logging.WARNING)
    failing_writes(FAULTS[fault])
    cart = client.put("/api/sessions/s-1/cart", headers=api_headers,
                      json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    assert cart.status_code == 503 and cart.headers["Retry-After"]
    assert cart.json["code"] == 503 and "database" in cart.json["message"]
    lines = [goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)]
    callback = klarna("address_update", "s-1", {**shipping_service_body(lines), "locale": "sv-SE"})
    assert callback.status_code == 503 and callback.headers["Retry-After"]
    assert callback.json == {"error_type": "approval_failed",  # Klarna shows it to the shopper
                             "error_text": "Vi kan inte kontrollera din order just nu. "
                                           "Försök igen om en stund."}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    warned = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warned) == 2 and all("\n" not in line for line in warned)


def test_a_bug_in_our_sql_is_still_a_500(app, client, api_headers, failing_writes):
    """A constraint we break would break again on a healthy database: not a fault to retry."""
    failing_writes(lambda: sa.exc.IntegrityError("INSERT", None, Exception("duplicate key")))
    cart = client.put("/api/sessions/s-1/cart", headers=api_headers,
                      json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    assert cart.status_code == 500


# -- the server refuses a new connection ----------------------------------------------------------
@pytest.fixture
def limited_role():
    """A login role of this test database's own, with every right on its schema: `limit(n)`
    sets its CONNECTION LIMIT, so that PostgreSQL refuses its next connection as it does a
    server's `sorry, too many clients already` (`too many connections for role`), without
    touching the server the other tests share."""
    url = postgres_url()
    reset_postgres(url)
    role = f"{PG_DATABASE}_limited"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")

    def drop(conn):
        if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))

    with admin.connect() as conn:
        drop(conn)
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT ALL ON SCHEMA public TO "{role}"'))

    def limit(n: int) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER ROLE "{role}" CONNECTION LIMIT {n}'))

    yield sa.engine.make_url(url).set(username=role).render_as_string(hide_password=False), limit
    with admin.connect() as conn:
        drop(conn)
    admin.dispose()


def test_postgres_refusing_new_connections_is_503_in_each_contract(limited_role, app_factory,
                                                                  caplog):
    role_url, limit = limited_role
    app = app_factory(DATABASE_URL=role_url)
    client, store = app.test_client(), app.extensions["kco"].store
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    cart = {"items": [{"reference": TSHIRT, "quantity": 1}]}
    assert client.put("/api/sessions/s-1/cart", headers=headers, json=cart).status_code == 200

    limit(0)
    store.engine.dispose()  # every request now needs a new connection, which the server refuses
    caplog.clear()
    caplog.set_level(logging.WARNING)
    answers = [client.put("/api/sessions/s-1/cart", headers=headers, json=cart),
               client.get("/api/sessions/s-1/state", headers=headers)]
    lines = [goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)]
    callback = client.post(kco_url(app, "address_update", "s-1"),
                           json={**shipping_service_body(lines), "locale": "sv-SE"})
    for answer in answers:
        assert answer.status_code == 503 and answer.headers["Retry-After"], answer.get_data()
        assert answer.json["code"] == 503 and "database" in answer.json["message"]
    assert callback.status_code == 503 and callback.headers["Retry-After"], callback.get_data()
    assert callback.json == {"error_type": "approval_failed",
                             "error_text": "Vi kan inte kontrollera din order just nu. "
                                           "Försök igen om en stund."}
    warned = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warned) == 3 and all("too many connections" in line and "\n" not in line
                                    for line in warned), warned
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert store.engine.pool.checkedout() == 0  # nothing held, nothing half-open

    limit(-1)  # the server takes connections again: so do we, at once
    again = client.put("/api/sessions/s-1/cart", headers=headers,
                       json={"items": [{"reference": TSHIRT, "quantity": 3}]})
    assert again.status_code == 200 and again.json["version"] == 2


# -- a fault that escapes the view's own error handling ---------------------------------------------
@pytest.fixture
def production_errors(app):
    """As gunicorn runs the app (what escapes the handlers is not re-raised, as under TESTING),
    and `fail_once(make)`: the next reply meets `make()` in an after_request hook, outside the
    view and its error handlers (Flask's handle_exception path)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    pending = []

    @app.after_request
    def fault(response):
        if pending:
            raise pending.pop()()
        return response
    return pending.append


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_fault_after_the_view_is_503_too(app, production_errors, client, klarna, api_headers,
                                           caplog):
    fail_once = production_errors
    caplog.set_level(logging.WARNING)
    locked = lambda: sa.exc.OperationalError(  # noqa: E731
        "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
    fail_once(locked)
    cart = client.put("/api/sessions/s-1/cart", headers=api_headers,
                      json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    assert cart.status_code == 503 and cart.headers["Retry-After"], cart.get_data()
    assert cart.json["code"] == 503 and "database" in cart.json["message"]
    fail_once(locked)
    lines = [goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)]
    callback = klarna("address_update", "s-1", {**shipping_service_body(lines), "locale": "sv-SE"})
    assert callback.status_code == 503 and callback.headers["Retry-After"], callback.get_data()
    assert callback.json["error_type"] == "approval_failed"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    warned = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warned) == 2, warned


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bug_after_the_view_is_still_a_500_with_its_traceback(production_errors, client,
                                                                 api_headers, caplog):
    production_errors(lambda: KeyError("ours"))
    cart = client.put("/api/sessions/s-1/cart", headers=api_headers,
                      json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    assert cart.status_code == 500 and cart.json["code"] == 500
    assert [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_fault_in_the_push_after_its_reply_is_one_warning(app, client, monkeypatch, caplog):
    """The push answers 200 before its work (read, record, acknowledge), which Klarna's next
    push repeats: the database refusing that work is an operations event like any other fault,
    one WARNING line, not an ERROR with a traceback per push (tests/reliability/test_duplicates.py's
    100 parallel pushes logged one each when PostgreSQL refused connections)."""
    lifecycle = app.extensions["kco"].lifecycle
    monkeypatch.setattr(lifecycle, "claim", lambda *args: None)  # the session's own order

    def refused(*args):
        raise sa.exc.OperationalError("SELECT", None, psycopg.OperationalError(
            "connection failed: FATAL:  sorry, too many clients already"))
    monkeypatch.setattr(lifecycle, "push", refused)
    caplog.set_level(logging.WARNING)
    response = client.post(kco_url(app, "push", "s-1", order_id="o-1"))
    response.close()  # the push's work runs when the response is closed, as under gunicorn
    assert response.status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    warned = [r.getMessage() for r in caplog.records if "push o-1" in r.getMessage()]
    assert len(warned) == 1 and "too many clients" in warned[0] and "\n" not in warned[0], warned


# -- which exceptions are the database's ------------------------------------------------------------
def _wrapped(exc: Exception) -> Exception:
    """`exc` as SQLAlchemy raises it from a statement (the hot path raises it so too)."""
    dbapi = psycopg if isinstance(exc, psycopg.Error) else sqlite3
    return sa.exc.DBAPIError.instance("SELECT 1", (), exc, dbapi.Error)


DRIVER_FAULTS = {
    "sqlite: database is locked": lambda: sqlite3.OperationalError("database is locked"),
    "sqlite: disk I/O error": lambda: sqlite3.OperationalError("disk I/O error"),
    "sqlite: disk full": lambda: sqlite3.OperationalError("database or disk is full"),
    "sqlite: cannot open": lambda: sqlite3.OperationalError("unable to open database file"),
    "pg: too many clients": lambda: pg_errors.TooManyConnections(
        "FATAL:  sorry, too many clients already"),
    "pg: connect refused": lambda: psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused"),
    "pg: starting up": lambda: pg_errors.CannotConnectNow("the database system is starting up"),
    "pg: reserved slots": lambda: pg_errors.TooManyConnections(
        "remaining connection slots are reserved for non-replication superuser connections"),
    "pg: shutting down": lambda: pg_errors.AdminShutdown("terminating connection due to "
                                                         "administrator command"),
    "pg: statement timeout": lambda: pg_errors.QueryCanceled("canceling statement due to "
                                                             "statement timeout"),
    "pg: lock timeout": lambda: pg_errors.LockNotAvailable("canceling statement due to lock timeout"),
    "pg: aborted transaction": lambda: pg_errors.InFailedSqlTransaction(
        "current transaction is aborted, commands ignored until end of transaction block"),
    "pg: read-only standby": lambda: pg_errors.ReadOnlySqlTransaction(
        "cannot execute UPDATE in a read-only transaction"),
    "pg: disk full": lambda: pg_errors.DiskFull("could not extend file: No space left on device"),
}
NOT_FAULTS = {
    "sqlite: constraint": lambda: sqlite3.IntegrityError("UNIQUE constraint failed: sessions.sid"),
    "sqlite: corrupt file": lambda: sqlite3.DatabaseError("database disk image is malformed"),
    "pg: constraint": lambda: pg_errors.UniqueViolation("duplicate key value"),
    "pg: bad SQL": lambda: pg_errors.UndefinedTable('relation "nope" does not exist'),
    "pg: bad value": lambda: pg_errors.InvalidTextRepresentation("invalid input syntax"),
}


@pytest.mark.parametrize("name", DRIVER_FAULTS)
def test_every_driver_fault_is_a_fault_raw_and_wrapped(name):
    raw = DRIVER_FAULTS[name]()
    assert faults.is_fault(raw)  # as a raw DB-API cursor raises it (events_pg.publish)
    assert faults.is_fault(_wrapped(raw))  # as SQLAlchemy and store/hotpath.py raise it
    line = faults.describe(_wrapped(raw))
    assert "\n" not in line and line.startswith(type(raw).__name__), line


def test_a_pool_timeout_is_a_fault():
    assert faults.is_fault(sa.exc.TimeoutError("QueuePool limit of size 3 overflow 7 reached, "
                                               "connection timed out, timeout 30.00"))


@pytest.mark.parametrize("name", NOT_FAULTS)
def test_our_bugs_are_not_faults(name):
    raw = NOT_FAULTS[name]()
    assert not faults.is_fault(raw) and not faults.is_fault(_wrapped(raw))


# -- the hot path's own DB-API calls fail ------------------------------------------------------------
class FailingDriver:
    """The DB-API connection under SQLAlchemy's, whose next statement raises `error`."""

    def __init__(self, raw, error):
        self._raw, self._error = raw, error

    def _fail(self):
        error, self._error = self._error, None
        if error is not None:
            raise error

    def execute(self, *args, **kwargs):
        self._fail()
        return self._raw.execute(*args, **kwargs)

    def pipeline(self):
        self._fail()
        return self._raw.pipeline()

    def __getattr__(self, name):
        return getattr(self._raw, name)


HOT_PATH_FAULTS = {
    "sqlite": [lambda: sqlite3.OperationalError("database is locked"),
               lambda: sqlite3.OperationalError("disk I/O error")],
    "postgresql": [lambda: pg_errors.AdminShutdown("terminating connection due to administrator command"),
                   lambda: pg_errors.QueryCanceled("canceling statement due to statement timeout"),
                   lambda: pg_errors.LockNotAvailable("canceling statement due to lock timeout"),
                   lambda: pg_errors.InFailedSqlTransaction("current transaction is aborted")],
}


def test_a_raw_driver_fault_on_the_hot_path_is_503_and_discards_the_connection(
        app, client, klarna, api_headers, monkeypatch, caplog):
    from callbacks.store import hotpath

    store = app.extensions["kco"].store
    dialect = store.engine.dialect.name
    discarded = []
    sa.event.listen(store.engine, "invalidate", lambda *args: discarded.append(args[0]))
    driver = hotpath.driver
    caplog.set_level(logging.WARNING)
    lines = [goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)]
    for make in HOT_PATH_FAULTS[dialect]:
        for send, shape in ((lambda: client.put("/api/sessions/s-1/cart", headers=api_headers,
                                                json={"items": [{"reference": TSHIRT, "quantity": 1}]}),
                             "ours"),
                            (lambda: klarna("address_update", "s-1", shipping_service_body(lines)),
                             "klarna")):
            error = make()
            monkeypatch.setattr(hotpath, "driver", lambda conn, error=error: FailingDriver(driver(conn), error))
            caplog.clear()
            before = len(discarded)
            answer = send()
            monkeypatch.setattr(hotpath, "driver", driver)
            assert answer.status_code == 503 and answer.headers["Retry-After"], (error, answer.get_data())
            assert (answer.json.keys() == {"error_type", "error_text"} if shape == "klarna"
                    else answer.json["code"] == 503), answer.json
            assert len(discarded) > before, f"{error!r}: the connection stayed in the pool"
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
            warned = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
            assert len(warned) == 1 and type(error).__name__ in warned[0], warned
    # and the next request, on a fresh connection, is written
    cart = client.put("/api/sessions/s-1/cart", headers=api_headers,
                      json={"items": [{"reference": TSHIRT, "quantity": 2}]})
    assert cart.status_code == 200


# -- the webhook worker (the Procfile's `worker:`) ----------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_webhook_worker_waits_out_a_database_fault(store, monkeypatch, caplog):
    """`flask kco deliver` once exited with a traceback (status 1) the first time PostgreSQL
    refused it a connection (`too many clients`); it now claims again, and the fault is one
    WARNING line per try (not SQLAlchemy's message with its SQL and background link)."""
    from callbacks.webhooks.worker import Deliverer

    worker = Deliverer(store, poll=0.01)
    claims = []
    real_claim = worker.claim

    def claim(limit, now=None):
        claims.append(limit)
        if len(claims) <= 2:
            raise sa.exc.OperationalError("SELECT", None, psycopg.OperationalError(
                "connection failed: FATAL:  sorry, too many clients already"))
        if len(claims) >= 4:
            worker.stop()
        return real_claim(limit, now)
    monkeypatch.setattr(worker, "claim", claim)
    caplog.set_level(logging.WARNING)
    done = threading.Event()
    errors = []

    def run():
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - what the test reports
            errors.append(exc)
        done.set()
    threading.Thread(target=run, daemon=True).start()
    assert done.wait(30), "the worker did not stop"
    assert not errors, errors
    assert len(claims) >= 4  # it went on claiming after the faults
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    warned = [r.getMessage() for r in caplog.records if "too many clients" in r.getMessage()]
    assert len(warned) == 2 and all("\n" not in line for line in warned), warned


def test_the_webhook_worker_listens_again_after_losing_its_listen_connection(app_factory):
    """The worker's LISTEN connection dies with the server (a restart, a terminated backend):
    it polls meanwhile and opens another, instead of logging "LISTEN connection lost" every
    poll interval for as long as it runs."""
    from callbacks.webhooks import worker as worker_module

    url = postgres_url()
    reset_postgres(url)
    app = app_factory(DATABASE_URL=url)
    deliverer = worker_module.Deliverer(app.extensions["kco"].store, poll=0.05)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")

    def listeners() -> list[int]:
        with admin.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :d AND application_name = "
                "'kco-deliver'"), {"d": PG_DATABASE}).scalars())

    thread = threading.Thread(target=deliverer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(listeners()) == 1, 30, "the worker's LISTEN connection")
        first = listeners()[0]
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
        wait_for(lambda: listeners() and first not in listeners(), 20,  # RELISTEN is 5 s
                 "a new LISTEN connection")
    finally:
        deliverer.stop()
        thread.join(30)
        admin.dispose()
    assert not thread.is_alive()
