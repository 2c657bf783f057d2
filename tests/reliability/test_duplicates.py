"""Duplicates: Klarna repeats itself, sometimes all at once (docs/design.md §10: push and
notification idempotent under any number of repeats; docs/design.md §8: concurrent callbacks serialize).

* 100 identical pushes in parallel → one `order_completed`, one `order_acknowledged`, one
  completed-order row, acknowledged; every acknowledge Klarna saw carries the one idempotency
  key, so Klarna counts one acknowledgement.
* 100 identical validations in parallel → 100 identical replies (status, body, Location) and
  exactly one event, for a validation that passes, one whose cart changed (303) and one out of
  stock (400 approval_failed).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from callbacks.klarna import idempotency

from ..conftest import kco_url
from ..payloads import validation_body
from ..test_lifecycle import put_cart
from . import figures

COPIES = 100


def event_types(app, sid):
    return [e["type"] for e in app.extensions["kco"].store.events_after(0, sid=sid, limit=5000)]


def all_at_once(app, send, copies: int = COPIES):
    """`copies` threads, each with its own test client, released together by a barrier."""
    barrier = threading.Barrier(copies)

    def one(_):
        client = app.test_client()
        barrier.wait(timeout=30)
        return send(client)

    with ThreadPoolExecutor(copies) as pool:
        return list(pool.map(one, range(copies)))


def test_a_hundred_identical_pushes_complete_and_acknowledge_once(rel_app):
    kco = rel_app.extensions["kco"]
    put_cart(rel_app, "dup-push", [("TSHIRT-BLUE-M", 1), ("MUG-ENAMEL", 2)])
    order_id = kco.lifecycle.load_checkout("dup-push").order["order_id"]
    rel_app.sandbox.complete(order_id)
    url = kco_url(rel_app, "push", "dup-push", order_id=order_id)

    def push(client):
        response = client.post(url)
        response.close()  # the push's work runs when the response is closed, as under gunicorn
        figures.response("duplicates: push", response.status_code)
        return response.status_code

    assert all_at_once(rel_app, push) == [200] * COPIES
    types = event_types(rel_app, "dup-push")
    assert types.count("order_completed") == 1 and types.count("order_acknowledged") == 1, types
    row = kco.store.completed_order(order_id)
    assert row is not None and row["acknowledged_at"] is not None
    assert kco.store.unacknowledged_orders() == []
    state = kco.store.get_state("dup-push")
    assert state["klarna"]["status"] == "checkout_complete" and state["klarna"]["acknowledged"]
    at_klarna = rel_app.sandbox.inspect(order_id)
    keys = set(at_klarna.get("acknowledge_keys") or [at_klarna.get("last_idempotency_key")])
    assert keys == {idempotency.acknowledge_order(order_id)}, keys
    acks = rel_app.sandbox.attempts("ordermanagement.acknowledge_order", order_id)
    figures.add("duplicates: push", "acknowledge calls to Klarna (one idempotency key)", acks)
    figures.add("duplicates: push", "order_completed events", types.count("order_completed"))


def passing(app, sid):
    state = app.extensions["kco"].store.get_state(sid)
    return validation_body(state["order"]["order_lines"], currency="SEK", country="SE",
                           order_amount=state["order"]["order_amount"],
                           order_tax_amount=state["order"]["order_tax_amount"], order_id="ord-dup")


@pytest.mark.parametrize("case", ["passes", "cart_changed", "out_of_stock"])
def test_a_hundred_identical_validations_get_one_reply_and_one_event(rel_app, case):
    sid = f"dup-val-{case}"
    stock = {p.sku: p.stock for p in rel_app.extensions["kco"].shop.products.values()}
    limited = next((sku for sku, left in stock.items() if left is not None), None)
    if case == "out_of_stock":
        if limited is None:
            pytest.skip("the example shop has no product with a stock figure")
        put_cart(rel_app, sid, [(limited, stock[limited] + 1)])
    else:
        put_cart(rel_app, sid, [("TSHIRT-BLUE-M", 2), ("BOOK-TRAIL-GUIDE", 1)])
    body = passing(rel_app, sid)
    if case == "cart_changed":
        body["order_amount"] += 100
    url = kco_url(rel_app, "validation", sid, order_id="ord-dup")

    def validate(client):
        response = client.post(url, json=body)
        figures.response("duplicates: validation", response.status_code)
        return response.status_code, response.get_data(), response.headers.get("Location")

    replies = all_at_once(rel_app, validate)
    assert len(set(replies)) == 1, set(replies)
    status = replies[0][0]
    assert status == {"passes": 200, "cart_changed": 303, "out_of_stock": 400}[case], replies[0]
    expected = "validation_passed" if case == "passes" else "validation_failed"
    types = event_types(rel_app, sid)
    assert types.count(expected) == 1 and len(types) == 2, types  # cart_updated + one
    assert rel_app.extensions["kco"].store.get_state(sid)["version"] == 2
