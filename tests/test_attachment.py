"""Extra merchant data (docs/design.md §7.5): PUT /api/sessions/{sid}/attachment, against the
sandbox as a real HTTP server — what Klarna receives on create and update, what is refused in
our error body, and that the body never reaches the state, the events or the callback log."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from callbacks import create_app
from callbacks.store.tables import callback_log

from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures
from .test_lifecycle import event_types

EMD = "application/vnd.klarna.internal.emd-v2+json"
SECRET = "Testperson-se Approved, 19770111-6050"   # what must never leave the attachment table
BODY = json.dumps({"customer_account_info": [{"unique_account_identifier": SECRET,
                                              "account_registration_date": "2020-01-24T15:00:00Z"}]})


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

    def call(method, path, json=None, **kw):
        return client.open(path, method=method, json=json, headers=kw.pop("headers", headers), **kw)
    return call


def cart(sid, api):
    assert api("PUT", f"/api/sessions/{sid}/cart",
               {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]}).status_code == 200


def attach(api, sid, body=BODY, content_type=EMD, **kw):
    return api("PUT", f"/api/sessions/{sid}/attachment",
               {"content_type": content_type, "body": body}, **kw)


def everything_stored_but_the_attachment(app, sid) -> str:
    store = app.extensions["kco"].store
    with store.engine.connect() as conn:
        log = [dict(r._mapping) for r in conn.execute(sa.select(callback_log))]
    return json.dumps([store.get_state(sid), store.events_after(0, sid=sid, limit=1000), log],
                      default=str)


def test_the_attachment_goes_to_klarna_on_create_and_update_and_nowhere_else(app, api):
    cart("s-emd", api)
    reply = attach(api, "s-emd")
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json() == {"session": "s-emd", "content_type": EMD,
                                "size": len(BODY.encode()), "version": 2}
    loaded = api("POST", "/api/sessions/s-emd/checkout")
    assert loaded.status_code == 200, loaded.get_json()
    created = app.sandbox.requests("checkout.create_order")[-1]["body"]
    assert created["attachment"] == {"content_type": EMD, "body": BODY}
    # A new attachment updates the open order at once, under a new idempotency key.
    newer = json.dumps({"payment_history_full": [{"payment_option": "card", "number_paid_purchases": 3}]})
    assert attach(api, "s-emd", newer).status_code == 200
    updated = app.sandbox.requests("checkout.update_order")[-1]
    assert updated["body"]["attachment"] == {"content_type": EMD, "body": newer}
    order_id = loaded.get_json()["order_id"]
    assert app.sandbox.client().read_order(order_id)["attachment"]["body"] == newer
    # The same attachment again changes nothing: no event, no call to Klarna.
    calls = len(app.sandbox.requests("checkout.update_order"))
    assert attach(api, "s-emd", newer).status_code == 200
    assert len(app.sandbox.requests("checkout.update_order")) == calls
    assert event_types(app, "s-emd").count("attachment_updated") == 2
    # A checkout load finds Klarna in step: read only.
    assert api("POST", "/api/sessions/s-emd/checkout").status_code == 200
    assert len(app.sandbox.requests("checkout.update_order")) == calls
    # Klarna's validation echoes the order, attachment and all: the log keeps none of it.
    app.sandbox.control("POST", f"/orders/{order_id}/purchase", {})
    stored = everything_stored_but_the_attachment(app, "s-emd")
    assert "validation" in stored and "payment_history_full" not in stored and "card" not in stored
    assert SECRET not in stored and "customer_account_info" not in stored
    events = app.extensions["kco"].store.events_after(0, sid="s-emd", limit=100)
    assert [e["data"] for e in events if e["type"] == "attachment_updated"][0] == {
        "content_type": EMD, "size": len(BODY.encode()), "replaced": False}


def test_a_load_brings_an_attachment_klarna_missed_in_step(app, api):
    cart("s-missed", api)
    order_id = api("POST", "/api/sessions/s-missed/checkout").get_json()["order_id"]
    app.sandbox.fail("checkout.update_order", 503, count=5)   # the update and its retries
    app.sandbox.fail("checkout.create_order", 503, count=5)   # and the new order after them (keyed: retried too)
    assert attach(api, "s-missed").status_code == 502   # saved, Klarna not reached
    app.sandbox.control("DELETE", "/faults")
    assert "attachment" not in app.sandbox.client().read_order(order_id)
    assert api("POST", "/api/sessions/s-missed/checkout").status_code == 200
    assert app.sandbox.client().read_order(order_id)["attachment"]["body"] == BODY


BAD = [
    ("not JSON", {"body": "{customer_account_info: []"}, "body", "not JSON"),
    ("JSON but not an object", {"body": "[1, 2]"}, "body", "JSON object"),
    ("JSON string", {"body": '"x"'}, "body", "JSON object"),
    ("over 100 kB", {"body": json.dumps({"x": "y" * 100_000})}, "body", "100 kB"),
    ("not a string", {"body": {"customer_account_info": []}}, "body", "string"),
    ("another content type", {"content_type": "application/json"}, "content_type", EMD),
    ("an unknown field", {"attachment": "x"}, "attachment", "Unknown"),
]


@pytest.mark.parametrize("case, change, field, words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_attachment_is_our_422_naming_the_field(app, api, case, change, field, words):
    cart("s-bad", api)
    body = {"content_type": EMD, "body": BODY, **change}
    reply = api("PUT", "/api/sessions/s-bad/attachment", body)
    assert reply.status_code == 422
    error = reply.get_json()
    assert set(error) == {"code", "status", "message", "errors"} and field in error["errors"]
    assert words in " ".join(error["errors"][field]), error
    assert "attachment_updated" not in event_types(app, "s-bad")


def test_missing_fields_and_unknown_sessions(app, api):
    assert api("PUT", "/api/sessions/s-x/attachment", {"content_type": EMD}).status_code == 422
    reply = attach(api, "s-nobody")
    assert reply.status_code == 404 and "session" in reply.get_json()["errors"]


def test_only_the_api_key_sets_it_never_a_browser_token(app, api):
    cart("s-tok", api)
    token = api("POST", "/api/sessions/s-tok/browser-token").get_json()["browser_token"]
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        assert attach(api, "s-tok", headers=headers).status_code == 401
    assert api("PUT", f"/api/sessions/s-tok/attachment?token={token}",
               {"content_type": EMD, "body": BODY}, headers={}).status_code == 401


def test_a_complete_order_keeps_its_attachment(app, api):
    cart("s-paid", api)
    order_id = api("POST", "/api/sessions/s-paid/checkout").get_json()["order_id"]
    app.sandbox.complete(order_id)
    app.extensions["kco"].lifecycle.push("s-paid", order_id)
    reply = attach(api, "s-paid")
    assert reply.status_code == 409 and reply.get_json()["errors"] == {"session": ["Order complete."]}
