"""Work slots (callbacks/web/slots.py): at most KCO_WORK_SLOTS cart-sized requests at once per
process; the others wait their turn, and nothing else waits for a slot."""
from __future__ import annotations

import io
import json
import threading

import pytest
from flask import request
from werkzeug.test import EnvironBuilder, run_wsgi_app

from callbacks import create_app
from callbacks.klarna import views
from callbacks.rules import checkout
from config import Config, ConfigError

from .conftest import kco_url
from .payloads import goods_line, shipping_service_body

TSHIRT = "TSHIRT-BLUE-M"
WAIT = 20  # seconds before a test gives up on a thread: a failure, never a pass


@pytest.fixture
def make_app(sqlite_url, app_factory):
    return lambda slots: app_factory(DATABASE_URL=sqlite_url, KCO_WORK_SLOTS=slots)


class Gate:
    """Holds a callback open while it reads its body (before any database lock, which would
    serialize SQLite's writers by itself) until released, noting who got that far."""

    def __init__(self, monkeypatch):
        self.inside: list[str] = []
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        parse = views.parse

        def held(schema):
            self.inside.append(request.args["session"])
            self.entered.release()
            assert self.release.wait(WAIT)
            return parse(schema)
        monkeypatch.setattr(views, "parse", held)


def post_in_thread(app, sid: str, results: dict) -> threading.Thread:
    body = shipping_service_body([goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)])

    def post():
        results[sid] = app.test_client().post(kco_url(app, "address_update", sid), json=body).status_code
    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def test_a_callback_beyond_the_limit_waits_for_a_slot_then_runs(make_app, monkeypatch):
    app, gate, results = make_app(1), Gate(monkeypatch), {}
    first = post_in_thread(app, "s-1", results)
    assert gate.entered.acquire(timeout=WAIT)
    second = post_in_thread(app, "s-2", results)
    # The second has its own session and is held before any lock: only the slot keeps it out.
    assert not gate.entered.acquire(timeout=0.5) and gate.inside == ["s-1"]
    gate.release.set()
    for thread in (first, second):
        thread.join(WAIT)
    assert results == {"s-1": 200, "s-2": 200} and gate.inside == ["s-1", "s-2"]


def test_a_cart_write_waits_for_a_slot_too(make_app, monkeypatch, api_headers):
    app, gate, results = make_app(1), Gate(monkeypatch), {}
    holder = post_in_thread(app, "s-1", results)
    assert gate.entered.acquire(timeout=WAIT)  # the only slot is taken
    done = threading.Event()

    def put():
        results["put"] = app.test_client().put("/api/sessions/s-0/cart", headers=api_headers, json={
            "items": [{"reference": TSHIRT, "quantity": 1}]}).status_code
        done.set()
    threading.Thread(target=put, daemon=True).start()
    assert not done.wait(0.5) and "put" not in results
    gate.release.set()
    holder.join(WAIT)
    assert done.wait(WAIT) and results == {"s-1": 200, "put": 200}


def test_a_cart_write_waiting_on_a_checkout_load_holds_no_slot(make_app, api_headers):
    """A cart change then updates the Klarna order under the session's checkout lease, which a
    checkout load may hold for seconds of Klarna calls: that wait takes no slot."""
    app, results = make_app(1), {}
    store, lifecycle = app.extensions["kco"].store, app.extensions["kco"].lifecycle
    leased, release, syncing = threading.Event(), threading.Event(), threading.Event()

    def checkout_load():  # holds the lease, as a checkout load talking to Klarna does
        with store.lease("s-0"):
            leased.set()
            assert release.wait(WAIT)
    sync = lifecycle.sync

    def noted_sync(sid):
        syncing.set()
        return sync(sid)
    lifecycle.sync = noted_sync
    holder = threading.Thread(target=checkout_load, daemon=True)
    holder.start()
    assert leased.wait(WAIT)

    def put():
        results["put"] = app.test_client().put("/api/sessions/s-0/cart", headers=api_headers, json={
            "items": [{"reference": TSHIRT, "quantity": 1}]}).status_code
    writer = threading.Thread(target=put, daemon=True)
    writer.start()
    assert syncing.wait(WAIT)  # the cart is written; its Klarna update waits for the lease
    post_in_thread(app, "s-9", results).join(WAIT)  # hangs (and fails) if the wait held the slot
    assert results == {"s-9": 200}
    release.set()
    for thread in (holder, writer):
        thread.join(WAIT)
    assert results == {"s-9": 200, "put": 200}


def test_reads_and_long_polls_do_not_wait_for_a_slot(make_app, monkeypatch, api_headers):
    app, gate, results = make_app(1), Gate(monkeypatch), {}
    client = app.test_client()
    assert client.put("/api/sessions/s-0/cart", headers=api_headers,
                      json={"items": [{"reference": TSHIRT, "quantity": 1}]}).status_code == 200
    holder = post_in_thread(app, "s-1", results)
    assert gate.entered.acquire(timeout=WAIT)  # the only slot is taken
    assert client.get("/api/sessions/s-0/state", headers=api_headers).status_code == 200
    polled = client.get("/api/sessions/s-0/events?after=0&wait=1", headers=api_headers)
    assert polled.status_code == 200 and polled.get_json()["events"]
    gate.release.set()
    holder.join(WAIT)
    assert results == {"s-1": 200}


class SlowBody(io.RawIOBase):
    """A request body that has not arrived until `arrived` is set."""

    def __init__(self, data: bytes):
        self.data, self.arrived = io.BytesIO(data), threading.Event()

    def readable(self):
        return True

    def readinto(self, buffer):
        assert self.arrived.wait(WAIT)
        chunk = self.data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_a_slow_body_or_a_forged_url_holds_no_slot(make_app, monkeypatch):
    """A slot is taken after the token check and once the body is in: whoever trickles a body,
    or posts to a leaked URL with a made-up token, cannot take Klarna's callbacks' slots."""
    app, results = make_app(1), {}
    shop = app.extensions["kco"].shop
    data = json.dumps(shipping_service_body([goods_line(shop, TSHIRT, 1, "SEK", 2500)])).encode()
    slow = SlowBody(data)

    def post_slowly():
        environ = EnvironBuilder(kco_url(app, "address_update", "s-slow"), method="POST", data=data,
                                 content_type="application/json").get_environ()
        environ["wsgi.input"] = io.BufferedReader(slow)  # as a server hands it over: unread
        _, status, _ = run_wsgi_app(app, environ, buffered=True)
        results["slow"] = int(status.split()[0])
    trickling = threading.Thread(target=post_slowly, daemon=True)
    trickling.start()
    forged = app.test_client().post(kco_url(app, "address_update", "s-1", token="forged"), data=data,
                                    content_type="application/json")
    assert forged.status_code in (401, 403)
    post_in_thread(app, "s-2", results).join(WAIT)  # hangs (and fails) if either held the slot
    assert results == {"s-2": 200}
    slow.arrived.set()
    trickling.join(WAIT)
    assert results == {"s-2": 200, "slow": 200}


def test_a_refused_or_failing_request_gives_its_slot_back(make_app, monkeypatch):
    app, results = make_app(1), {}
    client = app.test_client()
    bad = client.post(kco_url(app, "address_update", "s-1"), data="{", content_type="application/json")
    assert bad.status_code == 400

    def broken(*_args):
        raise RuntimeError("a bug in a decision")
    monkeypatch.setattr(checkout, "address_update", broken)
    body = shipping_service_body([goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)])
    assert client.post(kco_url(app, "address_update", "s-1"), json=body).status_code == 500
    monkeypatch.undo()
    post_in_thread(app, "s-2", results).join(WAIT)  # hangs (and fails) if a slot leaked
    assert results == {"s-2": 200}


def test_no_limit_with_zero(make_app, monkeypatch):
    app, gate, results = make_app(0), Gate(monkeypatch), {}
    threads = [post_in_thread(app, sid, results) for sid in ("s-1", "s-2", "s-3")]
    for _ in threads:
        assert gate.entered.acquire(timeout=WAIT)
    assert sorted(gate.inside) == ["s-1", "s-2", "s-3"]
    gate.release.set()
    for thread in threads:
        thread.join(WAIT)
    assert results == {"s-1": 200, "s-2": 200, "s-3": 200}


@pytest.mark.parametrize("value", ["four", "-1", "2.5", " "])
def test_a_work_slot_count_that_is_not_a_whole_number_is_refused(monkeypatch, value):
    monkeypatch.setenv("KCO_WORK_SLOTS", value)
    if value.strip():
        with pytest.raises(ConfigError, match="KCO_WORK_SLOTS"):
            Config()
    else:  # blank: the default
        assert Config().KCO_WORK_SLOTS == 4
