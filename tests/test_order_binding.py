"""A leaked callback URL must not move another shopper's order.

The callback token covers the session only; the order id in the URL or body is the caller's.
"""
from __future__ import annotations

import copy
import logging
import uuid

import pytest
import sqlalchemy as sa

from callbacks.klarna.order import SYNCHRONOUS
from callbacks.store.database import callback_log

from .conftest import kco_url
from .payloads import goods_line, shipping_service_body, validation_body
from .sandbox_fixtures import sample_order, sandbox_server, start_sandbox  # noqa: F401
from .test_lifecycle import completed_order, event_types, lc, lc_app, post_push, put_cart  # noqa: F401


def priced_body(klarna, shop, sid, order_id):
    """Validation body for `sid`'s cart (priced by an address_update), naming `order_id`."""
    lines = [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]
    reply = klarna("address_update", sid, shipping_service_body(lines)).get_json()
    return validation_body(reply["order_lines"], currency=reply["purchase_currency"], country="SE",
                           order_amount=reply["order_amount"],
                           order_tax_amount=reply["order_tax_amount"], order_id=order_id)


def logged(store, sid):
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(callback_log).where(callback_log.c.session == sid).order_by(callback_log.c.id))]


def bound(store, sid):
    return (store.get_state(sid) or {}).get("klarna", {}).get("order_id")


# -- item 2: the synchronous callbacks -----------------------------------------------------------
@pytest.mark.parametrize("callback", SYNCHRONOUS)
def test_a_callback_naming_another_order_is_refused_and_binds_nothing(klarna, shop, store, callback):
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    assert klarna("validation", "s-a", priced_body(klarna, shop, "s-a", mine), order_id=mine).status_code == 200
    assert bound(store, "s-a") == mine
    before = store.get_state("s-a")
    body = priced_body(klarna, shop, "s-probe", None)
    body["order_id"] = theirs
    r = klarna(callback, "s-a", body, order_id=theirs)
    assert r.status_code == 400
    assert r.get_json()["error_type"] == "approval_failed" and r.get_json()["error_text"]
    assert store.get_state("s-a") == before  # no new version, binding and cart unchanged
    row = logged(store, "s-a")[-1]
    assert (row["callback"], row["status"], row["order_id"]) == (callback, 400, theirs)


def test_validation_checks_the_bodys_order_id_against_the_sessions_order(klarna, shop, store):
    mine = str(uuid.uuid4())
    body = priced_body(klarna, shop, "s-b", mine)
    assert klarna("validation", "s-b", body, order_id=mine).status_code == 200
    body["order_id"] = str(uuid.uuid4())  # the URL is right, the order Klarna sent is not
    r = klarna("validation", "s-b", body, order_id=mine)
    assert r.status_code == 400 and r.get_json()["error_type"] == "approval_failed"
    body["order_id"] = str(uuid.uuid4())  # and with no order id in the URL at all
    assert klarna("validation", "s-b", body).status_code == 400
    assert bound(store, "s-b") == mine


@pytest.mark.parametrize("callback", SYNCHRONOUS)
def test_a_session_without_an_order_cannot_take_another_sessions_order(klarna, shop, store, callback):
    """The issue's attack: A's token, B's order id in the URL."""
    theirs = str(uuid.uuid4())
    assert klarna("validation", "s-owner", priced_body(klarna, shop, "s-owner", theirs),
                  order_id=theirs).status_code == 200
    body = priced_body(klarna, shop, "s-attacker", theirs)
    r = klarna(callback, "s-attacker", body, order_id=theirs)
    assert r.status_code == 400 and r.get_json()["error_type"] == "approval_failed"
    assert bound(store, "s-attacker") is None and bound(store, "s-owner") == theirs


def test_the_sessions_own_order_and_no_order_id_still_work(klarna, shop, store):
    mine = str(uuid.uuid4())
    body = priced_body(klarna, shop, "s-c", mine)
    assert klarna("validation", "s-c", body, order_id=mine).status_code == 200
    for callback in SYNCHRONOUS[:3]:
        assert klarna(callback, "s-c", body, order_id=mine).status_code == 200
        assert klarna(callback, "s-c", {k: v for k, v in body.items() if k != "order_id"}).status_code == 200


def test_a_leaked_url_cannot_take_over_an_order_created_by_checkout(lc_app, lc):
    """End to end, as observed: B loads checkout (order OB); A's token with OB in the URL."""
    client = lc_app.test_client()
    put_cart(lc_app, "s-b", [("HOODIE-GREY-L", 1)])
    order_b = lc.load_checkout("s-b").order["order_id"]
    put_cart(lc_app, "s-a", [("TSHIRT-BLUE-M", 1)])
    state_a = lc_app.extensions["kco"].store.get_state("s-a")
    body = validation_body(state_a["order"]["order_lines"], order_amount=state_a["order"]["order_amount"],
                           order_tax_amount=state_a["order"]["order_tax_amount"], order_id=order_b)
    r = client.post(kco_url(lc_app, "validation", "s-a", order_id=order_b), json=body)
    assert r.status_code == 400
    order_a = lc.load_checkout("s-a").order["order_id"]
    assert order_a != order_b
    lines_b = lc_app.sandbox.inspect(order_b)["order"]["order_lines"]
    assert [line["reference"] for line in lines_b if line["type"] == "physical"] == ["HOODIE-GREY-L"]
    lc_app.sandbox.complete(order_b)
    post_push(client, kco_url(lc_app, "push", "s-a", order_id=order_b))
    assert lc_app.extensions["kco"].store.get_state("s-a")["klarna"]["status"] != "checkout_complete"


# -- item 3: push and notification -------------------------------------------------------------
def test_a_push_for_an_order_without_merchant_reference2_is_refused(lc_app, caplog):
    """Order Management names no owner and no session has the order: nobody may claim it."""
    order = lc_app.sandbox.client().create_order(
        {k: v for k, v in sample_order().items() if k != "merchant_reference2"})
    lc_app.sandbox.complete(order["order_id"])
    with caplog.at_level(logging.INFO):
        r = post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-victim", order_id=order["order_id"]))
    assert r.status_code == 400 and r.get_json()["errors"] == {"order_id": ["Not an order of this session."]}
    store = lc_app.extensions["kco"].store
    assert event_types(lc_app, "s-victim") == [] and store.get_state("s-victim") is None
    assert store.completed_order(order["order_id"]) is None
    assert lc_app.sandbox.inspect(order["order_id"])["acknowledged"] == 0


def test_a_push_for_another_sessions_order_is_a_warning_without_traceback(lc_app, lc, caplog):
    order_id = completed_order(lc_app, lc, "s-owner")
    with caplog.at_level(logging.INFO):
        r = post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-thief", order_id=order_id))
    assert r.status_code == 400
    assert [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info] == []
    assert any(rec.levelno == logging.WARNING and order_id in rec.getMessage() for rec in caplog.records)
    assert "s-owner" not in r.get_data(as_text=True)  # the owner is not told to a stranger
    assert event_types(lc_app, "s-thief") == []
    assert lc_app.sandbox.inspect(order_id)["acknowledged"] == 0
    # The owner's own push still goes through.
    assert post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-owner", order_id=order_id)).status_code == 200
    assert lc_app.sandbox.inspect(order_id)["acknowledged"] == 1


def test_a_push_without_merchant_reference2_is_accepted_for_the_session_bound_to_it(lc_app, klarna, shop):
    order = lc_app.sandbox.client().create_order(
        {k: v for k, v in sample_order().items() if k != "merchant_reference2"})
    client = lc_app.test_client()
    put_cart(lc_app, "s-bound", [("TSHIRT-BLUE-M", 1)])
    state = lc_app.extensions["kco"].store.get_state("s-bound")
    body = validation_body(state["order"]["order_lines"], order_amount=state["order"]["order_amount"],
                           order_tax_amount=state["order"]["order_tax_amount"], order_id=order["order_id"])
    assert client.post(kco_url(lc_app, "validation", "s-bound", order_id=order["order_id"]),
                       json=body).status_code == 200
    lc_app.sandbox.complete(order["order_id"])
    r = post_push(client, kco_url(lc_app, "push", "s-bound", order_id=order["order_id"]))
    assert r.status_code == 200
    # sample_order() is not the cart priced for s-bound: the push also records what differs.
    assert event_types(lc_app, "s-bound")[-3:] == ["order_completed", "order_mismatch", "order_acknowledged"]


def test_a_notification_for_an_order_without_owner_is_refused(lc_app):
    order = lc_app.sandbox.client().create_order(
        {k: v for k, v in sample_order().items() if k != "merchant_reference2"})
    lc_app.sandbox.complete(order["order_id"], fraud_status="REJECTED")
    r = lc_app.test_client().post(kco_url(lc_app, "notification", "s-victim", order_id=order["order_id"]),
                                  json={"order_id": order["order_id"], "event_type": "FRAUD_RISK_REJECTED"})
    assert r.status_code == 400
    assert event_types(lc_app, "s-victim") == []


# -- item 5: a complete order changes no more --------------------------------------------------
@pytest.fixture
def completed(app, client, api_headers, store):
    """A session whose Klarna order o-done is complete, 1 T-shirt in SEK."""
    cart = {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}], "coupon": None}
    assert client.put("/api/sessions/s-done/cart", json=cart, headers=api_headers).status_code == 200
    with store.session("s-done") as tx:
        state = {**tx.state, "klarna": {"order_id": "o-done", "status": "checkout_complete"}}
        tx.save(state, "order_completed", {"order_id": "o-done"})
    return store.get_state("s-done")


@pytest.mark.parametrize("callback", SYNCHRONOUS[:3])
def test_shipping_callbacks_after_completion_change_nothing(klarna, shop, store, completed, callback):
    body = shipping_service_body([goods_line(shop, "COFFEE-DARK-500", 3, "EUR", 700)],
                                 currency="EUR", country="DE", locale="de-DE")
    r = klarna(callback, "s-done", body, order_id="o-done")
    assert r.status_code == 200
    reply = r.get_json()
    assert (reply["order_amount"], reply["purchase_currency"]) == (completed["order"]["order_amount"], "SEK")
    assert store.get_state("s-done") == completed
    assert logged(store, "s-done")[-1]["callback"] == callback  # the attempt is recorded


def test_validation_after_completion_changes_nothing(klarna, shop, store, completed):
    order = copy.deepcopy(completed["order"])
    body = validation_body(order["order_lines"], order_amount=order["order_amount"],
                           order_tax_amount=order["order_tax_amount"], order_id="o-done")
    assert klarna("validation", "s-done", body, order_id="o-done").status_code == 200
    body["order_lines"][0]["quantity"] = 5
    assert klarna("validation", "s-done", body, order_id="o-done").status_code == 303
    assert store.get_state("s-done") == completed
    assert [r["status"] for r in logged(store, "s-done")] == [200, 303]


def test_the_storefront_cannot_change_a_completed_session(client, api_headers, store, completed):
    cart = {"items": [{"reference": "HOODIE-GREY-L", "quantity": 2}], "coupon": None}
    r = client.put("/api/sessions/s-done/cart", json=cart, headers=api_headers)
    assert r.status_code == 409
    assert set(r.get_json()) == {"code", "status", "message", "errors"} and r.get_json()["code"] == 409
    r = client.put("/api/sessions/s-done/market", json={"country": "FI"}, headers=api_headers)
    assert r.status_code == 409 and r.get_json()["code"] == 409
    assert store.get_state("s-done") == completed
