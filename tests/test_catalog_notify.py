"""PostgreSQL: workers learn of catalog changes by LISTEN/NOTIFY, not by reading the version row
on every request, and a listener that was down catches up (callbacks/catalog/watch.py)."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from callbacks import create_app
from callbacks.catalog import cache

from .conftest import postgres_url, reset_postgres

PRODUCT = {"name": "Desk lamp", "tax_class": "standard", "prices": {"SEK": 49900}, "stock": 4}


def until(condition, what: str, limit: float = 15.0) -> None:
    """Wait for something another thread does (a notification's delivery, a reconnect)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.fixture
def workers(monkeypatch):
    """Two apps on one PostgreSQL database: two workers (or instances). The periodic fallback
    read is pushed out of the way so that only the notification can tell the second."""
    url = postgres_url()
    reset_postgres(url)
    monkeypatch.setattr(cache, "RECHECK", 3600.0)
    apps = [create_app({"TESTING": True, "DATABASE_URL": url}) for _ in range(2)]
    yield apps
    for app in apps:
        app.extensions["kco_catalog"].stop()
        app.extensions["kco_notify"].stop()
        app.extensions["kco"].store.dispose()


def version_reads(app) -> list[str]:
    reads: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "catalog_state" in statement:
            reads.append(statement)
    sa.event.listen(app.extensions["kco"].store.engine, "before_cursor_execute", seen)
    return reads


def price(app, sid: str = "s-watch") -> int:
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    reply = app.test_client().put(f"/api/sessions/{sid}/cart", headers=headers,
                                  json={"items": [{"reference": "LAMP-9", "quantity": 1}]})
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["order"]["order_lines"][0]["unit_price"]


def write(app, sek: int) -> int:
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    reply = app.test_client().put("/api/catalog/products/LAMP-9", headers=headers,
                                  json={**PRODUCT, "prices": {"SEK": sek}})
    assert reply.status_code in (200, 201), reply.get_json()
    return reply.get_json()["version"]


def test_another_worker_sees_a_price_change_by_notification_without_reading_the_version_row(workers):
    first, second = workers
    write(first, 49900)
    watch = second.extensions["kco_catalog"].watch
    assert price(second) == 49900  # cached here; starts the listener
    until(lambda: watch.live, "the listener is up")
    reads = version_reads(second)
    assert [price(second) for _ in range(5)] == [49900] * 5
    assert reads == []  # unchanged catalog: no request asked the database
    version = write(first, 29900)
    until(lambda: watch.version >= version, "the notification arrived")
    assert price(second) == 29900
    assert len(reads) == 1  # the changed version is read once, to learn which SKUs changed
    assert price(second) == 29900 and len(reads) == 1


def test_a_listener_that_was_down_catches_up_and_meanwhile_requests_read_the_row(workers):
    first, second = workers
    write(first, 49900)
    watch = second.extensions["kco_catalog"].watch
    assert price(second) == 49900
    until(lambda: watch.live, "the listener is up")
    pid = watch._conn.info.backend_pid

    def down():
        raise OSError("database unreachable")
    watch._listen = down  # reconnecting fails until the database is back
    with first.extensions["kco"].store.write() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    until(lambda: not watch.live, "the listener noticed the lost connection")
    write(first, 39900)  # its notification is lost: nobody of ours is listening
    assert price(second) == 39900  # not live: the request read the version row itself
    version = write(first, 19900)
    assert watch.version < version
    del watch._listen  # the database is back
    until(lambda: watch.live, "the listener reconnected")
    assert watch.version == version  # caught up from the version row, not the lost notifications
    reads = version_reads(second)
    assert price(second) == 19900
    assert [price(second) for _ in range(3)] == [19900] * 3 and len(reads) == 1


def test_a_listener_started_as_the_idle_one_stops_keeps_its_connection_and_trust(workers):
    """A request that arrives just as the idle listener stops starts the next one; the old
    thread's last steps must not close the new one's connection or say it cannot be trusted,
    or every request would read the version row again until the next idle stop."""
    first, second = workers
    write(first, 49900)
    watch = second.extensions["kco_catalog"].watch
    assert price(second) == 49900
    until(lambda: watch.live, "the listener is up")
    old = watch._thread
    idle = watch._idle
    handed_over: list = []

    def idle_then_a_request_arrives():
        stopping = idle()
        if stopping and threading.current_thread() is old and not handed_over:
            handed_over.append(True)
            assert watch.current() is False  # the request starts the next listener
            until(lambda: watch.live, "the next listener is up")
        return stopping
    watch._idle = idle_then_a_request_arrives
    watch._used = time.monotonic() - watch.idle_stop - 1  # the old listener's idle stop is due
    until(lambda: handed_over and not old.is_alive(), "the old listener stopped")
    assert watch._thread is not old and watch._thread.is_alive()
    assert watch.live and watch._conn is not None and not watch._conn.closed
    with first.extensions["kco"].store.write() as conn:
        pids = set(conn.execute(sa.text("SELECT pid FROM pg_stat_activity")).scalars())
    assert watch._conn.info.backend_pid in pids
    del watch._idle
    version = write(first, 29900)
    until(lambda: watch.version >= version, "the next listener hears the change")
