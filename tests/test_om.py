"""Order Management through kco-sync, against the sandbox: read, capture, refund, cancel,
extend, release, merchant references; Klarna's refusals; idempotent retries; events recorded
(and so delivered as webhooks)."""
from __future__ import annotations

import pytest

from callbacks import create_app
from callbacks.rules.pricing import CartItem

from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures


@pytest.fixture
def om_app(database_url, sandbox_server):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "KLARNA_API_URL": sandbox_server.url, "KLARNA_TIMEOUT": "1,3"})
    app.sandbox = sandbox_server
    yield app
    app.extensions["kco"].store.dispose()


def paid_order(app, sid="s-om", items=(("TSHIRT-BLUE-M", 2),)):
    """A session whose order the shopper bought and Klarna pushed."""
    from callbacks.rules.cart import set_cart
    kco = app.extensions["kco"]
    with kco.store.session(sid) as tx:
        d = set_cart(kco.shop, tx.state, sid, [CartItem(r, q) for r, q in items], None)
        tx.save(d.state, d.event_type, d.data)
    order_id = kco.lifecycle.load_checkout(sid).order["order_id"]
    app.sandbox.complete(order_id)
    kco.lifecycle.push(sid, order_id)
    return order_id


@pytest.fixture
def call(om_app, api_headers):
    client = om_app.test_client()

    def do(method, path, body=None, key="k-1", headers=None):
        h = {**api_headers, **({"Idempotency-Key": key} if key else {}), **(headers or {})}
        return client.open(path, method=method, json=body, headers=h)
    return do


def events(app, sid="s-om"):
    return app.extensions["kco"].store.events_after(0, sid=sid, limit=1000)


def test_read_returns_klarnas_order_as_klarna_gives_it(om_app, call):
    order_id = paid_order(om_app)
    got = call("GET", f"/api/orders/{order_id}", key=None)
    assert got.status_code == 200
    assert got.json == om_app.sandbox.client().read_merchant_order(order_id)
    assert got.json["billing_address"]["email"]  # personal data passes through …
    store = om_app.extensions["kco"].store
    assert "customer@example.com" not in str(events(om_app))  # … and is never stored
    assert store.get_state("s-om")["klarna"]["order_id"] == order_id
    assert call("GET", "/api/orders/nobodys-order", key=None).status_code == 404
    assert om_app.test_client().get(f"/api/orders/{order_id}").status_code == 401


def test_capture_partial_refund_and_their_events(om_app, call):
    order_id = paid_order(om_app)
    amount = call("GET", f"/api/orders/{order_id}", key=None).json["order_amount"]
    part = call("POST", f"/api/orders/{order_id}/captures",
                {"captured_amount": amount - 100, "reference": "ship-1"}, key="cap-1")
    assert part.status_code == 201, part.json
    assert call("GET", f"/api/orders/{order_id}", key=None).json["status"] == "PART_CAPTURED"
    rest = call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": 100}, key="cap-2")
    assert rest.status_code == 201
    order = call("GET", f"/api/orders/{order_id}", key=None).json
    assert order["status"] == "CAPTURED" and order["captured_amount"] == amount
    refund = call("POST", f"/api/orders/{order_id}/refunds", {"refunded_amount": 50}, key="ref-1")
    assert refund.status_code == 201 and refund.json["refunded_amount"] == 50
    assert call("GET", f"/api/orders/{order_id}", key=None).json["refunded_amount"] == 50
    recorded = [e for e in events(om_app) if e["type"] in ("order_captured", "order_refunded")]
    assert [(e["type"], e["data"].get("captured_amount", e["data"].get("refunded_amount")))
            for e in recorded] == [("order_captured", amount - 100), ("order_captured", 100),
                                   ("order_refunded", 50)]
    assert recorded[0]["data"]["capture_id"] == part.json["capture_id"]
    assert recorded[0]["data"]["reference"] == "ship-1"


def test_refusals_come_back_with_klarnas_error(om_app, call):
    order_id = paid_order(om_app)
    amount = call("GET", f"/api/orders/{order_id}", key=None).json["order_amount"]
    over = call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": amount + 1}, key="a")
    assert over.status_code == 403
    assert over.json["klarna"]["error_code"] == "CAPTURE_NOT_ALLOWED"
    assert over.json["klarna"]["correlation_id"] and over.json["code"] == 403
    assert over.json["message"].startswith("Klarna refused: CAPTURE_NOT_ALLOWED")
    over = call("POST", f"/api/orders/{order_id}/refunds", {"refunded_amount": 1}, key="b")
    assert over.status_code == 403 and over.json["klarna"]["error_code"] == "REFUND_NOT_ALLOWED"
    assert call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": 10},
                key="c").status_code == 201
    cancel = call("POST", f"/api/orders/{order_id}/cancel", key="d")
    assert cancel.status_code == 403 and cancel.json["klarna"]["error_code"] == "CANCEL_NOT_ALLOWED"
    assert not [e for e in events(om_app) if e["type"] in ("order_refunded", "order_cancelled")]


def test_cancel_then_nothing_more_is_allowed(om_app, call):
    order_id = paid_order(om_app)
    assert call("POST", f"/api/orders/{order_id}/cancel", key="x").status_code == 200
    assert call("GET", f"/api/orders/{order_id}", key=None).json["status"] == "CANCELLED"
    again = call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": 1}, key="y")
    assert again.status_code == 403 and again.json["klarna"]["error_code"] == "CAPTURE_NOT_ALLOWED"
    ext = call("POST", f"/api/orders/{order_id}/extend-authorization-time", key="z")
    assert ext.status_code == 403 and ext.json["klarna"]["error_code"] == "NOT_ALLOWED"
    assert [e["type"] for e in events(om_app)].count("order_cancelled") == 1


def test_extend_release_and_merchant_references(om_app, call):
    order_id = paid_order(om_app)
    before = call("GET", f"/api/orders/{order_id}", key=None).json["expires_at"]
    om_app.sandbox.advance(3 * 86400)
    assert call("POST", f"/api/orders/{order_id}/extend-authorization-time", key="e").status_code == 200
    assert call("GET", f"/api/orders/{order_id}", key=None).json["expires_at"] > before
    assert call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": 100},
                key="c").status_code == 201
    assert call("POST", f"/api/orders/{order_id}/release-remaining-authorization",
                key="r").status_code == 200
    order = call("GET", f"/api/orders/{order_id}", key=None).json
    assert order["status"] == "CAPTURED" and order["remaining_authorized_amount"] == 0
    released = call("POST", f"/api/orders/{order_id}/release-remaining-authorization", key="r2")
    assert released.status_code == 403 and released.json["klarna"]["error_code"] == "NOT_ALLOWED"
    ref = call("PATCH", f"/api/orders/{order_id}/merchant-references",
               {"merchant_reference1": "ORDER-42"}, key="m")
    assert ref.status_code == 200
    order = call("GET", f"/api/orders/{order_id}", key=None).json
    assert order["merchant_reference1"] == "ORDER-42" and order["merchant_reference2"] == "s-om"
    assert om_app.extensions["kco"].store.get_state("s-om")["merchant_reference1"] == "ORDER-42"
    no2 = call("PATCH", f"/api/orders/{order_id}/merchant-references",
               {"merchant_reference1": "X", "merchant_reference2": "mine"}, key="m2")
    assert no2.status_code == 422 and "merchant_reference2" in no2.json["errors"]
    assert [e["type"] for e in events(om_app)][-4:] == [
        "authorization_extended", "order_captured", "authorization_released",
        "merchant_reference_updated"]


@pytest.mark.parametrize("action, body", [
    ("captures", {"captured_amount": 100}), ("refunds", None), ("cancel", None),
    ("extend-authorization-time", None), ("release-remaining-authorization", None)])
def test_every_action_is_idempotent_under_retries(om_app, call, action, body):
    order_id = paid_order(om_app)
    if action == "refunds":
        assert call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": 300},
                    key="first").status_code == 201
        body = {"refunded_amount": 100}
    replies = [call("POST", f"/api/orders/{order_id}/{action}", body, key="retry-me")
               for _ in range(3)]
    assert len({r.status_code for r in replies}) == 1 and replies[0].status_code < 300
    assert len({str(r.json) for r in replies}) == 1  # the same capture_id, the same event
    keys = {r["idempotency_key"] for r in om_app.sandbox.requests()
            if r["path"].endswith(f"/{action}")}
    assert len(keys) == 1  # one Klarna-Idempotency-Key for the three calls
    order = call("GET", f"/api/orders/{order_id}", key=None).json
    if action == "captures":
        assert order["captured_amount"] == 100
    if action == "refunds":
        assert order["refunded_amount"] == 100
    recorded = {"captures": "order_captured", "refunds": "order_refunded",
                "cancel": "order_cancelled", "extend-authorization-time": "authorization_extended",
                "release-remaining-authorization": "authorization_released"}[action]
    assert [e["type"] for e in events(om_app)].count(recorded) == 1
    other = call("POST", f"/api/orders/{order_id}/{action}", body, key="another")
    if action in ("captures", "refunds"):
        assert other.status_code == 201 and other.json != replies[0].json


def test_an_action_needs_an_idempotency_key_and_a_valid_body(om_app, call):
    order_id = paid_order(om_app)
    no_key = call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": 1}, key=None)
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json["errors"]
    bad = call("POST", f"/api/orders/{order_id}/captures", {"captured_amount": "1", "x": 1})
    assert bad.status_code == 422 and {"captured_amount", "x"} <= set(bad.json["errors"])
    assert call("POST", "/api/orders/nobodys/cancel").status_code == 404
    paths = om_app.test_client().get("/openapi.json").json["paths"]
    assert "/api/orders/{order_id}/captures" in paths


def test_sandbox_idempotency_keys_last_24_hours(sandbox_server):
    from sandbox.om import KEY_TTL
    assert KEY_TTL.total_seconds() == 24 * 3600


def test_push_records_what_was_paid_when_it_differs_and_still_acknowledges(om_app):
    from callbacks.rules.cart import set_cart
    kco = om_app.extensions["kco"]
    sid = "s-mismatch"
    with kco.store.session(sid) as tx:
        d = set_cart(kco.shop, tx.state, sid, [CartItem("TSHIRT-BLUE-M", 1)], None)
        tx.save(d.state, d.event_type, d.data)
    order_id = kco.lifecycle.load_checkout(sid).order["order_id"]
    with kco.store.session(sid) as tx:  # the cart changes at us, Klarna's order does not
        d = set_cart(kco.shop, tx.state, sid, [CartItem("TSHIRT-BLUE-M", 3)], None)
        tx.save(d.state, d.event_type, d.data)
    om_app.sandbox.complete(order_id)
    assert kco.lifecycle.push(sid, order_id) == "acknowledged"
    [found] = [e for e in events(om_app, sid) if e["type"] == "order_mismatch"]
    priced = kco.store.get_state(sid)["order"]["order_amount"]
    paid = om_app.sandbox.client().read_merchant_order(order_id)["order_amount"]
    assert found["data"]["expected"]["order_amount"] == priced != paid
    assert found["data"]["paid"]["order_amount"] == paid
    assert "TSHIRT-BLUE-M" in found["data"]["references"] and found["data"]["order_id"] == order_id
    kco.lifecycle.push(sid, order_id)  # Klarna pushes again: recorded once
    assert [e["type"] for e in events(om_app, sid)].count("order_mismatch") == 1


def test_a_paid_order_as_priced_records_no_mismatch(om_app):
    paid_order(om_app, "s-fine")
    assert "order_mismatch" not in [e["type"] for e in events(om_app, "s-fine")]
