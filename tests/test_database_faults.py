"""The database goes away and comes back: 503 + Retry-After, never a 500, nothing half-written.

The PostgreSQL test runs the app through tests/faultproxy.py, which cuts every connection to the
database at once (as a restart or a failover does) while eight threads write carts, new
sessions and address_updates. It holds that no request answered 500, that every 2xx is found in
the database afterwards, and that writes answer 2xx again once the database is back. The other
tests here pin the reply's shape for each contract and the one-line log.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from callbacks.store.tables import callback_log, events

from .conftest import kco_url, postgres_url, reset_postgres
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
