"""Klarna-Idempotency-Key values (callbacks/klarna/idempotency.py): UUIDv5 over a fixed namespace
and the logical call, so a retry — urllib3's, a second load after a crash, another process —
is the same key, and two calls that must both happen never share one."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callbacks import create_app
from callbacks.klarna import idempotency
from callbacks.rules.pricing import CartItem

from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
part = st.one_of(st.none(), st.integers(0, 10**9),
                 st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                         max_size=40))
parts = st.lists(part, max_size=5)


@given(st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), min_size=1),
       parts)
def test_a_key_is_a_uuid5_in_kco_syncs_namespace_and_the_same_every_time(operation, names):
    key = idempotency.key(operation, *names)
    parsed = uuid.UUID(key)
    assert parsed.version == 5 and str(parsed) == key
    assert key == idempotency.key(operation, *names)  # no time, process or randomness in it
    name = "\n".join([operation, *("" if p is None else str(p) for p in names)])
    assert key == str(uuid.uuid5(idempotency.NAMESPACE, name))


@given(st.tuples(st.sampled_from(["create_order", "update_order"]), parts),
       st.tuples(st.sampled_from(["create_order", "update_order"]), parts))
def test_two_different_calls_never_share_a_key(a, b):
    def name(call):
        return [call[0], *("" if p is None else str(p) for p in call[1])]
    if len(name(a)) == len(name(b)) and name(a) != name(b):
        assert idempotency.key(a[0], *a[1]) != idempotency.key(b[0], *b[1])


def test_a_line_break_in_a_part_is_refused_as_it_could_merge_two_calls():
    with pytest.raises(ValueError, match="line break"):
        idempotency.key("capture", "o-1\nk", "2")


def test_order_management_keys_are_the_ones_made_before_the_module_existed():
    """A caller's retry spanning the upgrade must still be one action at Klarna."""
    old = str(uuid.uuid5(uuid.UUID("5b0f2c1e-7d1a-5c3e-9a53-6b636f2d7379"), "capture\no-1\ncap-1"))
    assert idempotency.order_management("capture", "o-1", "cap-1") == old


def test_the_logical_calls_differ_by_what_identifies_them():
    create = idempotency.create_order("s-1", 3, None, None, "https://shop.example")
    assert create == idempotency.create_order("s-1", 3, None, None, "https://shop.example")
    assert len({create, idempotency.create_order("s-1", 4, None, None, "https://shop.example"),
                idempotency.create_order("s-1", 3, "o-1", None, "https://shop.example"),
                idempotency.create_order("s-1", 3, None, "north_america", "https://shop.example"),
                idempotency.create_order("s-1", 3, None, None, "https://staging.shop.example"),
                idempotency.update_order("s-1", "o-1", 3), idempotency.acknowledge_order("o-1")}) == 7


def test_another_process_makes_the_same_keys():
    code = ("from callbacks.klarna import idempotency as i; "
            "print(i.create_order('s-1', 3, 'o-0', 'na', 'https://shop.example'), "
            "i.update_order('s-1', 'o-1', 3), i.acknowledge_order('o-1'), "
            "i.order_management('refund', 'o-1', 'r-1'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == [idempotency.create_order("s-1", 3, "o-0", "na", "https://shop.example"),
                                  idempotency.update_order("s-1", "o-1", 3),
                                  idempotency.acknowledge_order("o-1"),
                                  idempotency.order_management("refund", "o-1", "r-1")]


# -- what Klarna receives --------------------------------------------------------------------------
def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def _app(database_url, sandbox):
    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "KLARNA_API_URL": sandbox.url, "KLARNA_TIMEOUT": "1,3"})


def _cart(app, sid, quantity):
    from callbacks.rules.cart import set_cart
    kco = app.extensions["kco"]
    with kco.store.session(sid) as tx:
        d = set_cart(kco.shop, tx.state, sid, [CartItem("TSHIRT-BLUE-M", quantity)], None)
        if d.event_type:
            tx.save(d.state, d.event_type, d.data)


def test_a_retried_update_carries_the_same_key_every_attempt(sqlite_url, sandbox_server):
    app = _app(sqlite_url, sandbox_server)
    lifecycle = app.extensions["kco"].lifecycle
    _cart(app, "s-up", 1)
    order_id = lifecycle.load_checkout("s-up").order["order_id"]
    _cart(app, "s-up", 2)
    sandbox_server.fail("checkout.update_order", 503, count=2)
    assert lifecycle.load_checkout("s-up").outcome == "order_updated"
    attempts = sandbox_server.requests("checkout.update_order", order_id)
    assert [a["status"] for a in attempts] == [503, 503, 200]
    version = app.extensions["kco"].store.get_state("s-up")["klarna"]["synced_version"]
    assert {a["idempotency_key"] for a in attempts} == {idempotency.update_order("s-up", order_id, version)}
    app.extensions["kco"].store.dispose()


def test_a_create_lost_in_one_process_is_the_same_order_in_the_next(sqlite_url, sandbox_server):
    """The create reached Klarna but its answer never came back (a timeout, the worker killed):
    the next process's load sends the same key and gets that order, not a second one."""
    first = _app(sqlite_url, sandbox_server)
    _cart(first, "s-lost", 1)
    sandbox_server.fail("checkout.create_order", delay=4)  # done at Klarna, answered too late
    with pytest.raises(Exception):  # noqa: B017 - KlarnaUnavailable: nothing recorded
        first.extensions["kco"].lifecycle.load_checkout("s-lost")
    first.extensions["kco"].store.dispose()
    second = _app(sqlite_url, sandbox_server)  # as another process would, on the same database
    loaded = second.extensions["kco"].lifecycle.load_checkout("s-lost")
    wait_for(lambda: len(sandbox_server.requests("checkout.create_order")) == 2)  # the late one too
    creates = sandbox_server.requests("checkout.create_order")
    assert len({c["idempotency_key"] for c in creates}) == 1
    orders = sandbox_server.control("GET", "/orders")
    made = orders["orders"] if isinstance(orders, dict) else orders
    assert len(made) == 1 and loaded.order["order_id"] == made[0]["order_id"]
    second.extensions["kco"].store.dispose()


def test_acknowledge_is_keyed_once_per_order(sqlite_url, sandbox_server):
    app = _app(sqlite_url, sandbox_server)
    lifecycle = app.extensions["kco"].lifecycle
    _cart(app, "s-ack", 1)
    order_id = lifecycle.load_checkout("s-ack").order["order_id"]
    sandbox_server.complete(order_id)
    sandbox_server.fail("ordermanagement.acknowledge_order", 503, count=1)
    lifecycle.push("s-ack", order_id)
    keys = sandbox_server.inspect(order_id)["acknowledge_keys"]
    assert keys == [idempotency.acknowledge_order(order_id)]
    app.extensions["kco"].store.dispose()
