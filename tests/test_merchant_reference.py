"""The shop's order number (merchant_reference1) and klarna.synced_version, against the sandbox
as a real HTTP server: what Klarna receives, what the state and the events keep."""
from __future__ import annotations

import pytest

from callbacks import create_app

from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures
from .test_lifecycle import event_types, put_cart

TSHIRT, HOODIE = "TSHIRT-BLUE-M", "HOODIE-GREY-L"


@pytest.fixture
def app(database_url, sandbox_server):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "KLARNA_API_URL": sandbox_server.url, "KLARNA_TIMEOUT": "1,5"})
    app.sandbox = sandbox_server
    yield app
    app.extensions["kco_notify"].stop()
    app.extensions["kco"].store.dispose()


@pytest.fixture
def api(app):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}

    def call(method, path, json=None):
        return client.open(path, method=method, json=json, headers=headers)
    return call


def cart(*items, **extra):
    return {"items": [{"reference": r, "quantity": q} for r, q in items], **extra}


def test_reference_from_the_cart_write_reaches_klarna_on_create_and_update(app, api):
    assert api("PUT", "/api/sessions/s-ref/cart", cart((TSHIRT, 1), merchant_reference1="SHOP-1001")).status_code == 200
    loaded = api("POST", "/api/sessions/s-ref/checkout")
    assert loaded.status_code == 200, loaded.get_json()
    created = app.sandbox.requests("checkout.create_order")[-1]["body"]
    assert created["merchant_reference1"] == "SHOP-1001"
    assert created["merchant_reference2"] == "s-ref"  # still the session id
    assert api("PUT", "/api/sessions/s-ref/cart",
               cart((TSHIRT, 2), merchant_reference1="SHOP-1002")).get_json()["merchant_reference1"] == "SHOP-1002"
    updated = app.sandbox.requests("checkout.update_order")[-1]["body"]
    assert updated["merchant_reference1"] == "SHOP-1002"
    order = app.sandbox.client().read_order(loaded.get_json()["order_id"])
    assert order["merchant_reference1"] == "SHOP-1002"


def test_reference_set_on_checkout_load_updates_an_unchanged_order(app, api):
    api("PUT", "/api/sessions/s-load/cart", cart((TSHIRT, 1)))
    first = api("POST", "/api/sessions/s-load/checkout").get_json()
    assert "merchant_reference1" not in app.sandbox.requests("checkout.create_order")[-1]["body"]
    again = api("POST", "/api/sessions/s-load/checkout", {"merchant_reference1": "ORD 77/2026"})
    assert again.status_code == 200
    body = again.get_json()
    assert body["order_id"] == first["order_id"]
    assert body["state"]["merchant_reference1"] == "ORD 77/2026"
    assert app.sandbox.client().read_order(first["order_id"])["merchant_reference1"] == "ORD 77/2026"
    assert "merchant_reference_changed" in event_types(app, "s-load")


def test_reference_is_kept_in_order_completed(app, api):
    api("PUT", "/api/sessions/s-done/cart", cart((TSHIRT, 1), merchant_reference1="SHOP-9"))
    order_id = api("POST", "/api/sessions/s-done/checkout").get_json()["order_id"]
    app.sandbox.complete(order_id)
    app.extensions["kco"].lifecycle.push("s-done", order_id)
    completed = [e for e in app.extensions["kco"].store.events_after(0, sid="s-done")
                 if e["type"] == "order_completed"]
    assert completed[0]["data"]["merchant_reference1"] == "SHOP-9"
    assert app.extensions["kco"].store.get_state("s-done")["merchant_reference1"] == "SHOP-9"


@pytest.mark.parametrize("value,word", [
    ("x" * 256, "255"), ("", "255"), ("A\nB", "control"), (17, "string"), ("A\x00", "control"),
    # what the API key could still send once browser tokens could not (seen against a production-mode
    # instance): a C1 control, a line separator, right-to-left overrides and isolates, which
    # make the order number read otherwise in Klarna's e-mails and the support console
    ("A\x85B", "control"), ("A\u2028B", "control"), ("\u202eEVIL", "direction"), ("A\u2066B", "direction"),
    ("A\u200fB", "direction")])
def test_bad_reference_is_refused_and_nothing_is_written(app, api, value, word):
    put = api("PUT", "/api/sessions/s-bad/cart", cart((TSHIRT, 1), merchant_reference1=value))
    assert put.status_code == 422
    assert word in " ".join(put.get_json()["errors"]["merchant_reference1"]).lower() or \
        word in put.get_json()["message"].lower()
    assert app.extensions["kco"].store.get_state("s-bad") is None
    api("PUT", "/api/sessions/s-bad/cart", cart((TSHIRT, 1)))
    load = api("POST", "/api/sessions/s-bad/checkout", {"merchant_reference1": value})
    assert load.status_code == 422
    assert app.sandbox.requests("checkout.create_order") == [] or all(
        r["body"]["merchant_reference2"] != "s-bad" for r in app.sandbox.requests("checkout.create_order"))


def test_unknown_key_in_the_checkout_load_body_is_refused(app, api):
    api("PUT", "/api/sessions/s-key/cart", cart((TSHIRT, 1)))
    response = api("POST", "/api/sessions/s-key/checkout", {"merchant_reference": "typo"})
    assert response.status_code == 422
    assert "merchant_reference" in response.get_json()["errors"]


def test_synced_version_names_the_cart_klarna_received_when_a_cart_write_lands_in_flight(app):
    """The race: a cart write does not wait for the checkout lease, so it can commit while
    Klarna is creating the order from the previous cart. synced_version used to be the
    session's version when the answer was recorded, i.e. the newer cart Klarna never saw."""
    kco = app.extensions["kco"]
    put_cart(app, "s-race", [(TSHIRT, 1)])
    sent_version = kco.store.get_state("s-race")["version"]
    client = kco.lifecycle.client
    create = client.create_order

    def create_while_the_shopper_adds_a_hoodie(payload, **kw):
        order = create(payload, **kw)
        put_cart(app, "s-race", [(TSHIRT, 1), (HOODIE, 1)])  # lands before we record
        return order

    client.create_order = create_while_the_shopper_adds_a_hoodie
    try:
        kco.lifecycle.load_checkout("s-race")
    finally:
        del client.create_order
    state = kco.store.get_state("s-race")
    assert len(state["cart"]["items"]) == 2
    assert state["klarna"]["synced_version"] == sent_version
    assert state["klarna"]["synced_version"] < state["version"] - 1  # the hoodie's write is unsynced
    # The next sync sends the hoodie and then names the version that carried it.
    kco.lifecycle.sync("s-race")
    synced = kco.store.get_state("s-race")
    sent = app.sandbox.requests("checkout.update_order")[-1]["body"]
    assert {line["reference"] for line in sent["order_lines"]} >= {TSHIRT, HOODIE}
    assert synced["klarna"]["synced_version"] == state["version"]
