"""Long-polls (docs/design.md §7.1, §8): they wake when an event is committed — by this process, by
another app on the same database, by another OS process, for 200 waiters at once — hold no
database connection while they wait, and cannot take every gunicorn thread.

No test asserts timing beyond "woke at all": a waiter with wait=20 must be back within 10 s (half its
wait) of the write. The latency figures are bench/longpoll.py's business.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from callbacks import create_app
from callbacks.rules.cart import set_cart
from callbacks.rules.pricing import CartItem
from callbacks.store import notify
from callbacks.store.database import Store
from callbacks.store.notify import Notifier
from callbacks.web.tokens import callback_token

from .waiting import DEADLINE

ROOT = Path(__file__).resolve().parents[1]
WOKE_WITHIN = 10.0  # half the polls' 20 s wait: "it woke rather than timed out", not "it was fast"

# A writer in ANOTHER process: one cart change on one session, prints the commit time and id.
WRITER = """
import sys, time
from callbacks.rules.cart import set_cart
from callbacks.rules.pricing import CartItem
from callbacks.rules.shop import load_shop
from callbacks.store.database import Store
url, sid, quantity = sys.argv[1], sys.argv[2], int(sys.argv[3])
store, shop = Store(url), load_shop(None)
with store.session(sid) as tx:
    decision = set_cart(shop, tx.state, sid, [CartItem("TSHIRT-BLUE-M", quantity)], None)
    tx.save(decision.state, decision.event_type, decision.data)
print(time.time(), tx.events[-1]["id"], flush=True)
"""


@pytest.fixture(autouse=True)
def _stop_listener(app):
    yield
    app.extensions["kco_notify"].stop()


@pytest.fixture
def notifier(app):
    return app.extensions["kco_notify"]


def wait_until(predicate, timeout=DEADLINE, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def save_cart(store: Store, shop, sid: str, quantity: int) -> dict:
    with store.session(sid) as tx:
        decision = set_cart(shop, tx.state, sid, [CartItem("TSHIRT-BLUE-M", quantity)], None)
        tx.save(decision.state, decision.event_type, decision.data)
    return tx.events[-1]


class Poll(threading.Thread):
    """One long-poll through the Flask test client, in its own thread."""

    def __init__(self, app, path, headers):
        super().__init__(daemon=True)
        self.app, self.path, self.headers = app, path, headers
        self.status = self.body = self.returned_at = None

    def run(self):
        response = self.app.test_client().get(self.path, headers=self.headers)
        self.returned_at = time.time()
        self.status, self.body = response.status_code, response.get_json()

    def result(self, timeout=25.0):
        self.join(timeout)
        assert not self.is_alive(), "the long-poll never returned"
        return self.status, self.body


# -- one process -------------------------------------------------------------------------------
def test_session_waiter_wakes_on_a_local_write(app, client, api_headers, store, shop, notifier):
    first = save_cart(store, shop, "s-1", 1)
    poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=20", api_headers)
    poll.start()
    wait_until(lambda: notifier.waiters == 1, what="the poll to wait")
    response = client.put("/api/sessions/s-1/cart", headers=api_headers,
                          json={"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 2}]})
    written = time.time()
    status, body = poll.result()
    assert status == 200
    assert [(e["session"], e["type"], e["version"]) for e in body["events"]] == [("s-1", "cart_updated", 2)]
    assert body["last_id"] == body["events"][-1]["id"]
    assert body["events"][0]["data"]["cart"]["new"] == response.get_json()["cart"]
    assert poll.returned_at - written < WOKE_WITHIN
    assert notifier.waiters == 0


def test_global_waiter_wakes_on_any_session(app, api_headers, store, shop, notifier):
    poll = Poll(app, f"/api/events?after={store.last_event_id()}&wait=20", api_headers)
    poll.start()
    wait_until(lambda: notifier.waiters == 1)
    event = save_cart(store, shop, "s-9", 1)
    status, body = poll.result()
    assert status == 200 and [e["id"] for e in body["events"]] == [event["id"]]


def test_waiter_times_out_empty(app, api_headers, store, shop):
    first = save_cart(store, shop, "s-1", 1)
    started = time.monotonic()
    poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=0.3", api_headers)
    poll.start()
    status, body = poll.result()
    assert status == 200 and body == {"events": [], "last_id": first["id"]}
    assert time.monotonic() - started >= 0.25


def test_other_sessions_do_not_answer_a_session_waiter(app, api_headers, store, shop, notifier):
    first = save_cart(store, shop, "s-1", 1)
    save_cart(store, shop, "s-2", 1)
    started = time.monotonic()
    poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=1.5", api_headers)
    poll.start()
    wait_until(lambda: notifier.waiters == 1)
    for quantity in (2, 3, 4):
        save_cart(store, shop, "s-2", quantity)
    status, body = poll.result()
    assert status == 200 and body["events"] == [] and body["last_id"] == first["id"]
    assert time.monotonic() - started >= 1.2  # it kept waiting through s-2's events
    # ...and then one for s-1 answers with exactly that one.
    poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=20", api_headers)
    poll.start()
    wait_until(lambda: notifier.waiters == 1)
    save_cart(store, shop, "s-2", 5)
    mine = save_cart(store, shop, "s-1", 2)
    status, body = poll.result()
    assert [e["id"] for e in body["events"]] == [mine["id"]]


def test_poll_token_long_poll(app, store, shop, notifier, poll_token_for):
    first = save_cart(store, shop, "s-1", 1)
    query = urlencode({"after": first["id"], "wait": 20, "token": poll_token_for("s-1")})
    poll = Poll(app, f"/api/sessions/s-1/events?{query}", {})
    poll.start()
    wait_until(lambda: notifier.waiters == 1)
    save_cart(store, shop, "s-1", 2)
    status, body = poll.result()
    assert status == 200 and [e["version"] for e in body["events"]] == [2]


def test_waiters_hold_no_database_connection(app, api_headers, store, shop, notifier):
    first = save_cart(store, shop, "s-1", 1)
    polls = [Poll(app, f"/api/events?after={first['id']}&wait=20", api_headers) for _ in range(20)]
    for poll in polls:
        poll.start()
    wait_until(lambda: notifier.waiters == 20, what="20 waiters")
    samples = []
    for _ in range(20):
        samples.append(store.engine.pool.checkedout())
        time.sleep(0.02)
    # The listener borrows one connection for a moment to read new events; waiters hold none.
    assert max(samples) <= 1, samples
    save_cart(store, shop, "s-1", 2)
    assert all(poll.result()[0] == 200 for poll in polls)


def test_waiters_gauge(app, client, api_headers, store, shop, notifier):
    first = save_cart(store, shop, "s-1", 1)
    polls = [Poll(app, f"/api/events?after={first['id']}&wait=20", api_headers) for _ in range(3)]
    for poll in polls:
        poll.start()
    wait_until(lambda: notifier.waiters == 3)
    assert "kco_longpoll_waiters 3.0" in client.get("/metrics").get_data(as_text=True)
    save_cart(store, shop, "s-1", 2)
    for poll in polls:
        poll.result()
    assert "kco_longpoll_waiters 0.0" in client.get("/metrics").get_data(as_text=True)


def test_too_many_waiters_is_503_not_a_starved_worker(database_url, api_headers):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "KCO_LONGPOLL_MAX_WAITERS": 2})
    notifier = app.extensions["kco_notify"]
    try:
        polls = [Poll(app, "/api/events?after=0&wait=20", api_headers) for _ in range(2)]
        for poll in polls:
            poll.start()
        wait_until(lambda: notifier.waiters == 2)
        started = time.monotonic()
        extra = app.test_client().get("/api/events?after=0&wait=20", headers=api_headers)
        assert extra.status_code == 503 and time.monotonic() - started < WOKE_WITHIN
        assert extra.headers["Retry-After"] and extra.get_json()["code"] == 503
        # A request that does not wait is still served.
        assert app.test_client().get("/api/events?after=0", headers=api_headers).status_code == 200
        save_cart(app.extensions["kco"].store, app.extensions["kco"].shop, "s-1", 1)
        assert [poll.result()[0] for poll in polls] == [200, 200]
    finally:
        notifier.stop()
        app.extensions["kco"].store.dispose()


# -- the listener itself ---------------------------------------------------------------------
def test_wakes_when_another_app_writes(app, api_headers, shop, notifier, database_url):
    """A second Store on the same database shares no on_commit hook with us: only LISTEN/NOTIFY
    (PostgreSQL) or the polling thread (SQLite) can wake this app's waiter."""
    other = Store(database_url)
    try:
        first = save_cart(other, shop, "s-1", 1)
        poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=20", api_headers)
        poll.start()
        wait_until(lambda: notifier.waiters == 1)
        event = save_cart(other, shop, "s-1", 2)
        written = time.time()
        status, body = poll.result()
        assert status == 200 and [e["id"] for e in body["events"]] == [event["id"]]
        assert poll.returned_at - written < WOKE_WITHIN
    finally:
        other.dispose()


def test_wakes_when_another_process_writes(app, api_headers, store, shop, notifier, database_url,
                                           record_property):
    first = save_cart(store, shop, "s-1", 1)
    poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=20", api_headers)
    poll.start()
    wait_until(lambda: notifier.waiters == 1)
    writer = subprocess.run([sys.executable, "-c", WRITER, database_url, "s-1", "7"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert writer.returncode == 0, writer.stderr
    committed_at, event_id = writer.stdout.split()
    status, body = poll.result()
    assert status == 200
    assert [(e["id"], e["version"]) for e in body["events"]] == [(int(event_id), 2)]
    latency = poll.returned_at - float(committed_at)
    record_property("cross_process_wake_seconds", latency)
    print(f"\ncross-process wake-up on {store.engine.dialect.name}: {latency * 1000:.1f} ms")
    assert latency < WOKE_WITHIN


def test_tail_overflow_falls_back_to_the_database(store, shop):
    """More events than the in-memory tail holds arrive between two wake-ups: the waiter must
    still find its own event (by asking the database) and never miss or duplicate one."""
    notifier = Notifier(store, tail=3)
    try:
        first = save_cart(store, shop, "mine", 1)
        result = {}
        waiter = threading.Thread(target=lambda: result.update(
            events=notifier.events(first["id"], "mine", wait=20)), daemon=True)
        waiter.start()
        wait_until(lambda: notifier.waiters == 1)
        with notifier._cond:  # hold the waiters back while a burst goes by
            for n in range(12):
                save_cart(store, shop, f"other-{n}", 1)
            mine = save_cart(store, shop, "mine", 2)
            for n in range(5):
                save_cart(store, shop, f"later-{n}", 1)
            time.sleep(0.2)  # the listener reads, but cannot hand over until we let go
        waiter.join(25)
        assert [e["id"] for e in result["events"]] == [mine["id"]]
    finally:
        notifier.stop()


def test_listener_stops_when_idle_and_starts_again(store, shop):
    notifier = Notifier(store, idle_stop=0.2)
    try:
        assert notifier.events(0, None, wait=0.05) == []
        wait_until(lambda: notifier._thread is None, what="the listener to stop")
        done = {}
        waiter = threading.Thread(target=lambda: done.update(events=notifier.events(0, None, 20)))
        waiter.start()
        wait_until(lambda: notifier.waiters == 1)
        assert notifier._thread is not None and notifier._thread.is_alive()
        event = save_cart(store, shop, "s-1", 1)
        waiter.join(25)
        assert [e["id"] for e in done["events"]] == [event["id"]]
    finally:
        notifier.stop()


def test_stop_wakes_waiters(store):
    notifier = Notifier(store)
    done = {}
    waiter = threading.Thread(target=lambda: done.update(events=notifier.events(0, None, 20)))
    waiter.start()
    wait_until(lambda: notifier.waiters == 1)
    started = time.monotonic()
    notifier.stop()
    waiter.join(DEADLINE)
    assert done["events"] == [] and time.monotonic() - started < WOKE_WITHIN


def test_postgres_listener_reconnects(app, api_headers, shop, notifier, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    other = Store(database_url)
    try:
        first = save_cart(other, shop, "s-1", 1)
        poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=20", api_headers)
        poll.start()
        wait_until(lambda: notifier.waiters == 1)

        def listening() -> bool:
            # A connection per look: pg_stat_activity is a snapshot taken at a transaction's
            # first read, so polling inside one transaction never sees a later LISTEN.
            with other.engine.connect() as look:
                return look.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kco-notify' "
                    "AND datname = current_database()")).scalar() >= 1
        wait_until(listening, what="the LISTEN connection")
        with other.engine.connect() as conn:
            killed = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'kco-notify' AND datname = current_database()) t")).scalar()
            conn.commit()
        assert killed >= 1
        event = save_cart(other, shop, "s-1", 2)  # possibly before we listen again
        status, body = poll.result()
        assert status == 200 and [e["id"] for e in body["events"]] == [event["id"]]
    finally:
        other.dispose()


def test_an_event_held_back_by_an_older_transaction_still_reaches_its_waiter(
        app, api_headers, store, shop, notifier, database_url, monkeypatch):
    """On PostgreSQL an event is handed out only once every older transaction of the server
    has ended (docs/event-ordering.md). Here the older one writes no event and sends no
    NOTIFY, so only the listener's re-read of a notified but held-back id can deliver it: the
    safety poll is switched off."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the horizon is PostgreSQL's")
    monkeypatch.setattr(notify, "PG_SAFETY_POLL", 3600.0)
    first = save_cart(store, shop, "s-1", 1)
    poll = Poll(app, f"/api/sessions/s-1/events?after={first['id']}&wait=20", api_headers)
    poll.start()
    wait_until(lambda: notifier.waiters == 1, what="the poll to wait")
    older = store.engine.connect()
    try:
        older.execute(sa.text("SELECT pg_current_xact_id()"))  # a writer's transaction, left open
        event = save_cart(store, shop, "s-1", 2)
        assert store.events_after(first["id"], "s-1") == []  # held back, NOTIFY sent all the same
        wait_until(lambda: notifier.held_back, what="the listener to find the notified id held back")
        older.commit()
    finally:
        older.close()
    status, body = poll.result()
    assert status == 200 and [e["id"] for e in body["events"]] == [event["id"]]


# -- a real server ------------------------------------------------------------------------------
@pytest.fixture
def server(app):
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def http_get(port, path, headers, timeout=40.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null"), dict(response.getheaders())
    finally:
        conn.close()


def test_200_concurrent_waiters_all_woken_by_one_event(app, server, api_headers, store, shop,
                                                       notifier, database_url):
    """200 browsers long-polling one session through a real threaded HTTP server; one event,
    written by ANOTHER process, wakes every one of them."""
    first = save_cart(store, shop, "s-1", 1)
    port = server.server_port
    results: list = [None] * 200
    token_path = f"/api/sessions/s-1/events?after={first['id']}&wait=25"

    def browser(n):
        status, body, _ = http_get(port, token_path, api_headers)
        results[n] = (status, body, time.time())

    browsers = [threading.Thread(target=browser, args=(n,), daemon=True) for n in range(200)]
    for thread in browsers:
        thread.start()
    wait_until(lambda: notifier.waiters == 200, what="200 waiters")
    assert store.engine.pool.checkedout() <= 1
    writer = subprocess.run([sys.executable, "-c", WRITER, database_url, "s-1", "3"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert writer.returncode == 0, writer.stderr
    committed_at, event_id = float(writer.stdout.split()[0]), int(writer.stdout.split()[1])
    for thread in browsers:
        thread.join(30)
    assert all(r is not None for r in results), f"{results.count(None)} browsers never returned"
    assert {r[0] for r in results} == {200}
    assert all([e["id"] for e in r[1]["events"]] == [event_id] for r in results)
    slowest = max(r[2] for r in results) - committed_at
    print(f"\n200 waiters on {store.engine.dialect.name}: all woken {slowest * 1000:.0f} ms after the commit")
    assert slowest < WOKE_WITHIN
    wait_until(lambda: notifier.waiters == 0)


def test_max_waiters_setting(monkeypatch):
    from callbacks.store.notify import max_waiters_from
    monkeypatch.delenv("KCO_LONGPOLL_MAX_WAITERS", raising=False)
    monkeypatch.delenv("GUNICORN_THREADS", raising=False)
    assert max_waiters_from({}) is None
    monkeypatch.setenv("GUNICORN_THREADS", "128")
    assert max_waiters_from({}) == 112
    monkeypatch.setenv("GUNICORN_THREADS", "32")
    assert max_waiters_from({}) == 28
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    assert max_waiters_from({}) == 1
    assert max_waiters_from({"KCO_LONGPOLL_MAX_WAITERS": 7}) == 7
    assert max_waiters_from({"KCO_LONGPOLL_MAX_WAITERS": 0}) is None
    monkeypatch.setenv("KCO_LONGPOLL_MAX_WAITERS", "3")
    assert max_waiters_from({}) == 3
    monkeypatch.setenv("KCO_LONGPOLL_MAX_WAITERS", "-1")
    with pytest.raises(ValueError):
        max_waiters_from({})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_gthread_keeps_threads_for_klarna(database_url, tmp_path):
    """The deployment shape (Procfile: gthread, gunicorn.conf.py): 6 threads leave room for
    6 - 4 = 2 waiters, so a third long-poll is refused at once and Klarna's callback is still
    answered while two wait. The limit comes from gunicorn's own thread count."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "KCO_API_KEY": "gunicorn-key",
           "KCO_CALLBACK_SECRET": "gunicorn-secret", "PYTHONUNBUFFERED": "1"}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "KCO_LONGPOLL_MAX_WAITERS", "GUNICORN_THREADS"):
        env.pop(name, None)
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--worker-class", "gthread", "--workers", "1",
         "--threads", "6", "--bind", f"127.0.0.1:{port}", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    headers = {"Authorization": "Bearer gunicorn-key"}
    try:
        def up():
            try:
                return http_get(port, "/healthz", {}, timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(up, what="gunicorn to start")
        status, state, _ = _put_cart(port, headers, "s-1", 1)
        assert status == 200
        after = http_get(port, "/api/events", headers)[1]["last_id"]
        results = []
        waiters = [threading.Thread(target=lambda: results.append(
            http_get(port, f"/api/events?after={after}&wait=25", headers)), daemon=True) for _ in range(2)]
        for thread in waiters:
            thread.start()

        def waiting():
            text = _get_text(port, "/metrics")
            return "kco_longpoll_waiters 2.0" in text
        wait_until(waiting, what="two waiters in gunicorn")
        started = time.monotonic()
        status, body, headers_out = http_get(port, f"/api/events?after={after}&wait=25", headers)
        assert status == 503 and "Retry-After" in headers_out
        url = "/kco/address_update?" + urlencode(
            {"session": "s-1", "token": callback_token("gunicorn-secret", "s-1")})
        body = {**state["order"], "purchase_currency": "SEK", "locale": "sv-SE",
                "billing_address": {"country": "SE"}}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", url, body=json.dumps(body), headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 200, reply.read()
        conn.close()
        assert time.monotonic() - started < WOKE_WITHIN
        for thread in waiters:
            thread.join(30)
        assert [r[0] for r in results] == [200, 200]
        assert all(r[1]["events"] for r in results)  # the callback's event woke them
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _put_cart(port, headers, sid, quantity):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("PUT", f"/api/sessions/{sid}/cart", headers={**headers, "Content-Type": "application/json"},
                     body=json.dumps({"items": [{"reference": "TSHIRT-BLUE-M", "quantity": quantity}]}))
        response = conn.getresponse()
        return response.status, json.loads(response.read()), dict(response.getheaders())
    finally:
        conn.close()


def _get_text(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()
