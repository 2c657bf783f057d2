"""The Klarna order lifecycle against the sandbox running as a real HTTP server (no mocks)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from callbacks import create_app
from callbacks.klarna.lifecycle import KlarnaUnavailable
from callbacks.klarna.order import CALLBACKS
from callbacks.rules import amounts as rules
from callbacks.rules.pricing import CartItem
from callbacks.web.tokens import callback_token

from .conftest import kco_url
from .payloads import shipping_service_body
from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures


@pytest.fixture
def lc_app(database_url, sandbox_server):
    # A read timeout a busy CI machine's sandbox always answers within (1.5 s once did not);
    # the one test of a timed-out read delays its answer past it.
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "KLARNA_API_URL": sandbox_server.url, "KLARNA_TIMEOUT": "1,5"})
    app.sandbox = sandbox_server
    yield app
    app.extensions["kco"].store.dispose()


@pytest.fixture
def lc(lc_app):
    return lc_app.extensions["kco"].lifecycle


def put_cart(app, sid, items, coupon=None):
    """Store a cart the way the storefront's PUT does (state + event), without HTTP."""
    from callbacks.rules.cart import set_cart
    kco = app.extensions["kco"]
    with kco.store.session(sid) as tx:
        d = set_cart(kco.shop, tx.state, sid, [CartItem(r, q) for r, q in items], coupon)
        if d.event_type:
            tx.save(d.state, d.event_type, d.data)


def event_types(app, sid):
    return [e["type"] for e in app.extensions["kco"].store.events_after(0, sid=sid, limit=1000)]


def test_new_session_creates_one_order_with_everything_klarna_needs(lc_app, lc):
    put_cart(lc_app, "s-new", [("TSHIRT-BLUE-M", 2)])
    loaded = lc.load_checkout("s-new")
    assert loaded.outcome == "order_created"
    assert "_klarnaCheckout" in loaded.order["html_snippet"]
    sent = lc_app.sandbox.requests("checkout.create_order")[0]["body"]
    assert rules.order_errors(sent) == []
    assert sent["merchant_reference2"] == "s-new"
    token = callback_token(lc_app.config["KCO_CALLBACK_SECRET"], "s-new")
    for name in CALLBACKS:
        url = sent["merchant_urls"][name]
        assert url.startswith(f"{lc_app.config['KCO_PUBLIC_URL']}/kco/{name}?")
        assert "session=s-new" in url and "order_id={checkout.order.id}" in url and f"token={token}" in url
    assert {"terms", "checkout", "confirmation"} <= set(sent["merchant_urls"])
    assert '"cart_version"' in sent["merchant_data"]
    assert {"SE", "FI", "US"} <= set(sent["shipping_countries"]) and sent["billing_countries"] == sent["shipping_countries"]
    state = lc_app.extensions["kco"].store.get_state("s-new")
    assert state["klarna"]["order_id"] == loaded.order["order_id"]
    assert event_types(lc_app, "s-new")[-1] == "order_created"


def test_reload_with_an_unchanged_cart_only_reads(lc_app, lc):
    put_cart(lc_app, "s-same", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-same")
    before = len(lc_app.sandbox.requests())
    again = lc.load_checkout("s-same")
    assert again.order["order_id"] == first.order["order_id"] and again.outcome is None
    assert [r["endpoint"] for r in lc_app.sandbox.requests()[before:]] == ["checkout.read_order"]


def test_changed_cart_updates_the_same_order(lc_app, lc):
    put_cart(lc_app, "s-chg", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-chg")
    put_cart(lc_app, "s-chg", [("TSHIRT-BLUE-M", 3)])
    again = lc.load_checkout("s-chg")
    assert again.outcome == "order_updated" and again.order["order_id"] == first.order["order_id"]
    at_klarna = lc_app.sandbox.inspect(first.order["order_id"])
    assert any(line.get("quantity") == 3 for line in (at_klarna.get("order") or at_klarna)["order_lines"])


def test_expired_order_is_recreated(lc_app, lc):
    put_cart(lc_app, "s-exp", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-exp")
    lc_app.sandbox.advance(49 * 3600)
    again = lc.load_checkout("s-exp")
    assert again.outcome == "order_recreated" and again.order["order_id"] != first.order["order_id"]
    recreated = lc_app.extensions["kco"].store.events_after(0, sid="s-exp")[-1]
    assert recreated["data"]["old_order_id"] == first.order["order_id"]
    assert recreated["data"]["reason"].startswith("404")


@pytest.mark.parametrize("fault,expected_reason", [
    ({"endpoint": "checkout.read_order", "status": 500}, "500"),
    ({"endpoint": "checkout.read_order", "status": 401}, "401"),
    ({"endpoint": "checkout.read_order", "delay": 8}, "network"),  # past the 5 s read timeout
])
def test_any_error_reading_the_order_creates_a_new_one(lc_app, lc, fault, expected_reason):
    put_cart(lc_app, "s-err", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-err")
    lc_app.sandbox.fail(**fault, count=5)
    again = lc.load_checkout("s-err")
    assert again.outcome == "order_recreated" and again.order["order_id"] != first.order["order_id"]
    reason = lc_app.extensions["kco"].store.events_after(0, sid="s-err")[-1]["data"]["reason"]
    assert reason.startswith(expected_reason)


def test_read_only_order_on_update_creates_a_new_one(lc_app, lc):
    put_cart(lc_app, "s-ro", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-ro")
    put_cart(lc_app, "s-ro", [("TSHIRT-BLUE-M", 2)])
    lc_app.sandbox.fail("checkout.update_order", 403, error_code="READ_ONLY_ORDER",
                        error_messages=["Resource is read-only"])
    again = lc.load_checkout("s-ro")
    assert again.outcome == "order_recreated" and again.order["order_id"] != first.order["order_id"]
    assert "READ_ONLY_ORDER" in event_data(lc_app, "s-ro")["reason"]


def test_payment_fields_never_carry_to_a_new_order(lc_app, lc):
    """A session that moves to a new Klarna order (here: the old one expired) starts the new
    one unpaid, whatever the old one's record said."""
    put_cart(lc_app, "s-carry", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-carry")
    store = lc_app.extensions["kco"].store
    with store.session("s-carry") as tx:
        state = {**tx.state, "klarna": {**tx.state["klarna"], "fraud_status": "ACCEPTED",
                                        "acknowledged": True}}
        tx.save(state, "order_updated", {"order_id": first.order["order_id"]})
    lc_app.sandbox.advance(49 * 3600)
    again = lc.load_checkout("s-carry")
    assert again.outcome == "order_recreated" and again.order["order_id"] != first.order["order_id"]
    klarna = store.get_state("s-carry")["klarna"]
    assert klarna["order_id"] == again.order["order_id"] and klarna["status"] == "checkout_incomplete"
    assert "fraud_status" not in klarna and "acknowledged" not in klarna


def order_count(app):
    return len(app.sandbox.requests("checkout.create_order"))


def assert_confirmation(loaded, order_id):
    assert loaded.state["klarna"]["status"] == "checkout_complete"
    assert loaded.order["order_id"] == order_id
    assert "/confirmation" in loaded.order["html_snippet"]


def test_load_after_push_returns_the_confirmation_and_creates_no_order(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-paid")
    post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-paid", order_id=order_id))
    before = order_count(lc_app)
    assert_confirmation(lc.load_checkout("s-paid"), order_id)
    assert_confirmation(lc.load_checkout("s-paid", merchant_reference1="SHOP-9"), order_id)
    assert order_count(lc_app) == before
    assert not lc_app.sandbox.requests("checkout.update_order")
    assert event_types(lc_app, "s-paid").count("order_completed") == 1


def test_load_between_purchase_and_push_records_the_completion_once(lc_app, lc):
    """Klarna's order reads checkout_complete before any push: the load verifies it through
    Order Management, records it as the push would, and a late push changes nothing."""
    order_id = completed_order(lc_app, lc, "s-early")
    before = order_count(lc_app)
    assert_confirmation(lc.load_checkout("s-early"), order_id)
    assert event_types(lc_app, "s-early")[-2:] == ["order_completed", "order_acknowledged"]
    store = lc_app.extensions["kco"].store
    assert store.completed_order(order_id)["acknowledged_at"] is not None
    assert store.get_state("s-early")["klarna"]["fraud_status"] == "ACCEPTED"
    assert lc_app.sandbox.requests("ordermanagement.read_order", order_id=order_id)
    assert_confirmation(lc.load_checkout("s-early"), order_id)
    r = post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-early", order_id=order_id))
    assert r.status_code == 200
    assert event_types(lc_app, "s-early").count("order_completed") == 1
    assert event_types(lc_app, "s-early").count("order_acknowledged") == 1
    assert lc_app.sandbox.inspect(order_id)["acknowledged"] == 1
    assert order_count(lc_app) == before


def test_load_whose_update_is_read_only_records_the_completion(lc_app, lc):
    """The shopper bought between the load's read (still incomplete) and its update: Klarna
    refuses the update as READ_ONLY_ORDER, and the load answers with the confirmation."""
    put_cart(lc_app, "s-ro-paid", [("TSHIRT-BLUE-M", 1)])
    stale = lc.load_checkout("s-ro-paid").order
    put_cart(lc_app, "s-ro-paid", [("TSHIRT-BLUE-M", 2)])
    lc_app.sandbox.complete(stale["order_id"])
    before = order_count(lc_app)
    lc_app.sandbox.fail("checkout.read_order", 200, body=stale)  # the read before the purchase
    assert_confirmation(lc.load_checkout("s-ro-paid"), stale["order_id"])
    refused = lc_app.sandbox.requests("checkout.update_order")[-1]
    assert refused["status"] in (400, 403)
    assert order_count(lc_app) == before
    assert event_types(lc_app, "s-ro-paid").count("order_completed") == 1
    post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-ro-paid", order_id=stale["order_id"]))
    assert event_types(lc_app, "s-ro-paid").count("order_completed") == 1


def test_read_only_order_that_order_management_cannot_confirm_is_not_sold_again(lc_app, lc):
    put_cart(lc_app, "s-ro-down", [("TSHIRT-BLUE-M", 1)])
    stale = lc.load_checkout("s-ro-down").order
    put_cart(lc_app, "s-ro-down", [("TSHIRT-BLUE-M", 2)])
    lc_app.sandbox.complete(stale["order_id"])
    before = order_count(lc_app)
    lc_app.sandbox.fail("checkout.read_order", 200, body=stale)
    lc_app.sandbox.fail("ordermanagement.read_order", 503, count=5)
    with pytest.raises(KlarnaUnavailable):
        lc.load_checkout("s-ro-down")
    assert order_count(lc_app) == before
    assert "order_completed" not in event_types(lc_app, "s-ro-down")


def test_cart_write_between_purchase_and_push_makes_no_new_order(lc_app, api):
    api("PUT", "/sessions/web-paid/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    order_id = api("POST", "/sessions/web-paid/checkout").get_json()["order_id"]
    lc_app.sandbox.complete(order_id)
    before = order_count(lc_app)
    r = api("PUT", "/sessions/web-paid/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 5}]})
    assert r.status_code == 409
    assert lc_app.extensions["kco"].store.get_state("web-paid")["klarna"]["status"] == "checkout_complete"
    assert api("PUT", "/sessions/web-paid/market", {"country": "FI"}).status_code == 409
    body = api("POST", "/sessions/web-paid/checkout").get_json()
    assert (body["status"], body["order_id"]) == ("checkout_complete", order_id)
    assert order_count(lc_app) == before
    assert event_types(lc_app, "web-paid").count("order_completed") == 1


def event_data(app, sid):
    return app.extensions["kco"].store.events_after(0, sid=sid, limit=1000)[-1]["data"]


def test_bad_value_from_klarna_is_surfaced(lc_app, lc):
    put_cart(lc_app, "s-bv", [("TSHIRT-BLUE-M", 1)])
    lc_app.sandbox.fail("checkout.create_order", 400, error_code="BAD_VALUE",
                        error_messages=["Bad value: purchase_currency"])
    with pytest.raises(KlarnaUnavailable) as caught:
        lc.load_checkout("s-bv")
    assert caught.value.error.error_code == "BAD_VALUE"
    assert "purchase_currency" in str(caught.value)
    assert lc_app.extensions["kco"].store.get_state("s-bv")["klarna"]["order_id"] is None


def test_two_tabs_loading_at_once_end_with_one_order(lc_app, lc):
    put_cart(lc_app, "s-tabs", [("TSHIRT-BLUE-M", 1)])
    barrier = threading.Barrier(4)

    def load(_):
        barrier.wait()
        return lc.load_checkout("s-tabs").order["order_id"]

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(load, range(4)))
    assert len(ids) == 1
    assert lc_app.sandbox.attempts("checkout.create_order") == 1


def test_market_change_updates_purchase_country_currency_and_locale(lc_app, lc):
    put_cart(lc_app, "s-mkt", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-mkt")
    lc.change_market("s-mkt", "FI", None)
    lc.sync("s-mkt")
    state = lc_app.extensions["kco"].store.get_state("s-mkt")
    assert state["market"]["currency"] == "EUR" and state["purchase_country"] == "FI"
    assert state["pending_purchase_country"] is None
    order = lc_app.sandbox.inspect(first.order["order_id"])
    order = order.get("order", order)
    assert (order["purchase_country"].upper(), order["purchase_currency"]) == ("FI", "EUR")


def test_market_change_refused_by_klarna_creates_a_new_order(lc_app, lc):
    put_cart(lc_app, "s-mkt2", [("TSHIRT-BLUE-M", 1)])
    first = lc.load_checkout("s-mkt2")
    lc_app.sandbox.fail("checkout.update_order", 400, error_code="BAD_VALUE",
                        error_messages=["Bad value: purchase_country"])
    lc.change_market("s-mkt2", "DE", None)
    lc.sync("s-mkt2")
    state = lc_app.extensions["kco"].store.get_state("s-mkt2")
    assert state["klarna"]["order_id"] != first.order["order_id"]
    assert event_types(lc_app, "s-mkt2")[-2:] == ["market_changed", "order_recreated"]


def test_synchronous_callbacks_never_call_klarna(lc_app, lc):
    put_cart(lc_app, "s-sync", [("TSHIRT-BLUE-M", 1)])
    lc.load_checkout("s-sync")
    before = len(lc_app.sandbox.requests())
    client = lc_app.test_client()
    body = shipping_service_body([], country="FI")
    for callback in ("address_update", "shipping_option_update", "country_change"):
        assert client.post(kco_url(lc_app, callback, "s-sync"), json=body).status_code == 200
    assert len(lc_app.sandbox.requests()) == before


# -- push -----------------------------------------------------------------------------------
def post_push(client, url):
    """A push as a server delivers it: the work after the reply runs when the response closes."""
    response = client.post(url)
    response.close()
    return response


def completed_order(app, lc, sid, fraud_status="ACCEPTED"):
    put_cart(app, sid, [("TSHIRT-BLUE-M", 1)])
    order_id = lc.load_checkout(sid).order["order_id"]
    app.sandbox.complete(order_id, fraud_status=fraud_status)
    return order_id


def test_push_reads_records_and_acknowledges_once(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-push")
    client = lc_app.test_client()
    r = post_push(client, kco_url(lc_app, "push", "s-push", order_id=order_id))
    assert r.status_code == 200
    assert lc_app.sandbox.inspect(order_id)["acknowledged"] >= 1
    assert event_types(lc_app, "s-push")[-2:] == ["order_completed", "order_acknowledged"]
    state = lc_app.extensions["kco"].store.get_state("s-push")
    assert state["klarna"]["status"] == "checkout_complete" and state["klarna"]["acknowledged"]
    post_push(client, kco_url(lc_app, "push", "s-push", order_id=order_id))
    assert event_types(lc_app, "s-push").count("order_completed") == 1


def test_fifty_simultaneous_duplicate_pushes(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-dup")
    url = kco_url(lc_app, "push", "s-dup", order_id=order_id)
    barrier = threading.Barrier(50)

    def push(_):
        client = lc_app.test_client()
        barrier.wait()
        return post_push(client, url).status_code

    with ThreadPoolExecutor(50) as pool:
        assert set(pool.map(push, range(50))) == {200}
    types = event_types(lc_app, "s-dup")
    assert types.count("order_completed") == 1 and types.count("order_acknowledged") == 1
    assert lc_app.extensions["kco"].store.unacknowledged_orders() == []


def test_acknowledge_that_fails_succeeds_on_the_next_push(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-ack")
    lc_app.sandbox.fail("ordermanagement.acknowledge_order", 500)
    client = lc_app.test_client()
    post_push(client, kco_url(lc_app, "push", "s-ack", order_id=order_id))
    assert event_types(lc_app, "s-ack")[-1] == "order_completed"
    assert [o["order_id"] for o in lc_app.extensions["kco"].store.unacknowledged_orders()] == [order_id]
    post_push(client, kco_url(lc_app, "push", "s-ack", order_id=order_id))
    assert event_types(lc_app, "s-ack")[-1] == "order_acknowledged"
    assert event_types(lc_app, "s-ack").count("order_completed") == 1


def test_reconcile_acknowledges_what_pushes_could_not(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-rec")
    lc_app.sandbox.fail("ordermanagement.acknowledge_order", 500)
    post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-rec", order_id=order_id))
    result = lc_app.test_cli_runner().invoke(args=["kco", "reconcile"])
    assert result.exit_code == 0, result.output
    assert f"{order_id}: acknowledged" in result.output
    assert lc_app.extensions["kco"].store.unacknowledged_orders() == []


def test_push_for_an_order_of_another_session_records_nothing(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-owner")
    post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-thief", order_id=order_id))
    assert event_types(lc_app, "s-thief") == []
    assert lc_app.extensions["kco"].store.completed_order(order_id) is None


def test_push_without_order_id_is_400(lc_app):
    r = lc_app.test_client().post(kco_url(lc_app, "push", "s-x"))
    assert r.status_code == 400 and r.get_json()["errors"] == {"order_id": ["Missing."]}


# -- notification -------------------------------------------------------------------------
def test_notification_records_the_verified_fraud_status(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-fraud", fraud_status="PENDING")
    lc_app.sandbox.set_fraud_status(order_id, "ACCEPTED")
    r = lc_app.test_client().post(kco_url(lc_app, "notification", "s-fraud", order_id=order_id),
                                  json={"order_id": order_id, "event_type": "FRAUD_RISK_ACCEPTED"})
    assert r.status_code == 200
    event = lc_app.extensions["kco"].store.events_after(0, sid="s-fraud")[-1]
    assert event["type"] == "fraud_status_changed"
    assert event["data"]["fraud_status"] == "ACCEPTED" and event["data"]["verified"] is True


def test_notification_that_order_management_contradicts_is_recorded_unverified(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-lie", fraud_status="PENDING")
    lc_app.sandbox.set_fraud_status(order_id, "REJECTED")
    lc_app.test_client().post(kco_url(lc_app, "notification", "s-lie", order_id=order_id),
                              json={"order_id": order_id, "event_type": "FRAUD_RISK_ACCEPTED"})
    data = event_data(lc_app, "s-lie")
    assert data["fraud_status"] == "REJECTED" and data["verified"] is False


def test_notification_with_an_unknown_event_type_is_400(lc_app):
    r = lc_app.test_client().post(kco_url(lc_app, "notification", "s-n"),
                                  json={"order_id": "x", "event_type": "ORDER_ACCEPTED"})
    assert r.status_code == 400 and "event_type" in r.get_json()["errors"]


def test_notification_when_order_management_is_down_is_503(lc_app, lc):
    order_id = completed_order(lc_app, lc, "s-down", fraud_status="PENDING")
    lc_app.sandbox.fail("ordermanagement.read_order", 500, count=5)
    r = lc_app.test_client().post(kco_url(lc_app, "notification", "s-down", order_id=order_id),
                                  json={"order_id": order_id, "event_type": "FRAUD_RISK_ACCEPTED"})
    assert r.status_code == 503 and r.get_json()["code"] == 503


# -- the storefront endpoints that talk to Klarna -------------------------------------------
@pytest.fixture
def api(lc_app):
    headers = {"Authorization": f"Bearer {lc_app.config['KCO_API_KEY']}"}
    client = lc_app.test_client()

    def call(method, path, body=None, **kw):
        return client.open(f"/api{path}", method=method, json=body, headers=headers, **kw)
    return call


def test_checkout_endpoint_returns_snippet_order_and_a_working_poll_token(lc_app, api):
    api("PUT", "/sessions/web-1/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    r = api("POST", "/sessions/web-1/checkout")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["order_id"] and "_klarnaCheckout" in body["html_snippet"]
    assert body["status"] == "checkout_incomplete"
    assert body["state"]["klarna"]["order_id"] == body["order_id"]
    polled = lc_app.test_client().get(f"/api/sessions/web-1/state?token={body['poll_token']}")
    assert polled.status_code == 200 and polled.get_json()["klarna"]["order_id"] == body["order_id"]
    other = lc_app.test_client().get(f"/api/sessions/web-2/state?token={body['poll_token']}")
    assert other.status_code == 401


def test_checkout_endpoint_errors(lc_app, api):
    assert api("POST", "/sessions/nobody/checkout").status_code == 404
    api("PUT", "/sessions/empty/cart", {"items": []})
    r = api("POST", "/sessions/empty/checkout")
    assert r.status_code == 409 and r.get_json()["code"] == 409
    api("PUT", "/sessions/web-3/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    assert api("POST", "/sessions/web-3/checkout", {"x": 1}).status_code == 422
    lc_app.sandbox.fail("checkout.create_order", 400, error_code="BAD_VALUE",
                        error_messages=["Bad value: order_lines"])
    r = api("POST", "/sessions/web-3/checkout")
    assert r.status_code == 502
    assert r.get_json()["errors"]["klarna"] == ["BAD_VALUE: Bad value: order_lines"]


def test_cart_change_updates_the_open_klarna_order(lc_app, api):
    api("PUT", "/sessions/web-4/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    order_id = api("POST", "/sessions/web-4/checkout").get_json()["order_id"]
    r = api("PUT", "/sessions/web-4/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 4}]})
    assert r.status_code == 200 and r.get_json()["klarna"]["order_id"] == order_id
    lines = lc_app.sandbox.inspect(order_id)["order"]["order_lines"]
    assert [line["quantity"] for line in lines if line["reference"] == "TSHIRT-BLUE-M"] == [4]
    assert event_types(lc_app, "web-4")[-2:] == ["cart_updated", "order_updated"]
    assert api("PUT", "/sessions/web-4/cart", {"items": []}).status_code == 200


def test_cart_change_with_an_expired_order_makes_a_new_one(lc_app, api):
    api("PUT", "/sessions/web-5/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    order_id = api("POST", "/sessions/web-5/checkout").get_json()["order_id"]
    lc_app.sandbox.advance(49 * 3600)
    r = api("PUT", "/sessions/web-5/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 2}]})
    assert r.status_code == 200 and r.get_json()["klarna"]["order_id"] != order_id
    assert event_types(lc_app, "web-5")[-1] == "order_recreated"


def test_market_endpoint(lc_app, api):
    api("PUT", "/sessions/web-6/cart", {"items": [{"reference": "HONEY-WILDFLOWER-350", "quantity": 1}]})
    order_id = api("POST", "/sessions/web-6/checkout").get_json()["order_id"]
    r = api("PUT", "/sessions/web-6/market", {"country": "fi"})
    assert r.status_code == 200
    state = r.get_json()
    assert state["market"] == {"country": "FI", "currency": "EUR", "locale": "sv-FI"}
    at_klarna = lc_app.sandbox.inspect(order_id)["order"]
    assert (at_klarna["purchase_country"].upper(), at_klarna["purchase_currency"], at_klarna["locale"]) == ("FI", "EUR", "sv-FI")
    r = api("PUT", "/sessions/web-6/market", {"country": "FI", "locale": "fi-fi"})
    assert r.get_json()["market"]["locale"] == "fi-FI"
    assert api("PUT", "/sessions/web-6/market", {"country": "JP"}).status_code == 422
    assert "locale" in api("PUT", "/sessions/web-6/market", {"country": "FI", "locale": "de-DE"}).get_json()["errors"]
    assert "country" in api("PUT", "/sessions/web-6/market", {"country": "FIN"}).get_json()["errors"]
    assert api("PUT", "/sessions/web-6/market", {"country": "FI", "extra": 1}).status_code == 422
    before = lc_app.extensions["kco"].store.get_state("web-6")
    refused = api("PUT", "/sessions/web-6/market", {"country": "CH"})  # no CHF price for the honey
    assert refused.status_code == 422 and "HONEY-WILDFLOWER-350" in refused.get_json()["message"]
    assert lc_app.extensions["kco"].store.get_state("web-6") == before
    assert api("PUT", "/sessions/nobody/market", {"country": "FI"}).status_code == 404


def test_klarna_calls_are_in_the_metrics(lc_app, api):
    api("PUT", "/sessions/web-7/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    api("POST", "/sessions/web-7/checkout")
    text = lc_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'kco_klarna_api_calls_total{operation="create_order",status="201"} 1.0' in text


def test_a_load_that_read_the_order_before_completion_does_not_undo_it(lc_app, lc):
    """Interleaving: load reads 'incomplete', push records 'complete', load records its read."""
    put_cart(lc_app, "s-race", [("TSHIRT-BLUE-M", 1)])
    order = lc.load_checkout("s-race").order
    lc_app.sandbox.complete(order["order_id"])
    post_push(lc_app.test_client(), kco_url(lc_app, "push", "s-race", order_id=order["order_id"]))
    state = lc._record("s-race", order, None, {})  # the stale read of step 1, recorded late
    assert state["klarna"]["status"] == "checkout_complete"


def test_checkout_endpoint_after_purchase_answers_the_confirmation(lc_app, api):
    """What kco-sync.js relies on to show a confirmation rather than a buyable checkout."""
    api("PUT", "/sessions/web-8/cart", {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    order_id = api("POST", "/sessions/web-8/checkout").get_json()["order_id"]
    lc_app.sandbox.complete(order_id)
    post_push(lc_app.test_client(), kco_url(lc_app, "push", "web-8", order_id=order_id))
    before = order_count(lc_app)
    r = api("POST", "/sessions/web-8/checkout")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["status"], body["order_id"]) == ("checkout_complete", order_id)
    assert "/confirmation" in body["html_snippet"] and body["browser_token"]
    assert body["state"]["klarna"]["status"] == "checkout_complete"
    assert order_count(lc_app) == before
    lc_app.sandbox.advance(49 * 3600)  # gone from the Checkout API: still no new order
    body = api("POST", "/sessions/web-8/checkout").get_json()
    assert (body["status"], body["order_id"], body["html_snippet"]) == ("checkout_complete", order_id, None)
    assert order_count(lc_app) == before


def test_klarna_out_of_reach_is_a_502_that_names_no_host_port_or_library(database_url, start_sandbox):
    """A browser token's caller reads the 502; Klarna's address and the HTTP library's text stay
    in the log. Both paths: the checkout load, and a cart change the open order cannot follow."""
    sandbox = start_sandbox()
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "KLARNA_API_URL": sandbox.url, "KLARNA_TIMEOUT": "1,5"})
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    client = app.test_client()
    cart = {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]}
    try:
        assert client.put("/api/sessions/gone-1/cart", json=cart, headers=headers).status_code == 200
        assert client.post("/api/sessions/gone-1/checkout", headers=headers).status_code == 200
        assert client.put("/api/sessions/gone-2/cart", json=cart, headers=headers).status_code == 200
        port = sandbox.url.rsplit(":", 1)[1].strip("/")
        sandbox.stop()
        changed = client.put("/api/sessions/gone-1/cart", headers=headers,
                             json={"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 2}]})
        loaded = client.post("/api/sessions/gone-2/checkout", headers=headers)
        for r in (changed, loaded):
            assert r.status_code == 502, r.get_json()
            text = r.get_data(as_text=True)
            assert port not in text and "127.0.0.1" not in text and "onnection" not in text, text
            assert r.get_json()["errors"]["klarna"] in (["NETWORK_ERROR"], ["TIMEOUT"])
            assert "could not be reached" in r.get_json()["message"]
    finally:
        app.extensions["kco"].store.dispose()
