"""The support console's webhook and Order Management parts: deliveries on the timeline, a
resend, the order_mismatch flag, and capture/refund/cancel buttons in development only."""
from __future__ import annotations

import re

import pytest

from callbacks.webhooks import endpoints
from callbacks.webhooks.worker import Deliverer
from tests.receiver import Receiver, until
from tests.test_om import paid_order
from tests.test_support import PASSWORD, basic

from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures


@pytest.fixture
def app(database_url, sandbox_server, app_factory):
    app = app_factory(DATABASE_URL=database_url, KLARNA_API_URL=sandbox_server.url,
                      KLARNA_TIMEOUT="1,3", KCO_SUPPORT_PASSWORD=PASSWORD)
    app.sandbox = sandbox_server
    return app


def test_deliveries_show_on_the_timeline_and_resend_queues_one_again(app):
    store = app.extensions["kco"].store
    receiver = Receiver(lambda n, body: (500 if n == 0 else 200, 0))
    try:
        ep = endpoints.create(store, receiver.url, ["cart_updated"])
        order_id = paid_order(app, "s-w")
        worker = Deliverer(store, backoff=(0, 0.01), private_allowed=True)
        until(lambda: worker.run_once() == 0 and endpoints.deliveries(store, ep["id"])
              and endpoints.deliveries(store, ep["id"])[-1]["status"] == 200, "a delivery")
        client = app.test_client()
        html = client.get("/support/sessions/s-w", headers=basic()).get_data(as_text=True)
        assert "Webhook delivery" in html and f"cart_updated → {ep['id']} (attempt 1)" in html
        assert "HTTP 500" in html and f"cart_updated → {ep['id']} (attempt 2)" in html
        form = re.search(r'action="(/support/sessions/s-w/resend/\d+)">\s*'
                         r'<input type="hidden" name="token" value="([^"]+)"', html)
        assert client.post(form.group(1), data={"token": "0" * 64}, headers=basic()).status_code == 403
        assert client.post(form.group(1), data={"token": form.group(2)}, headers=basic()).status_code == 200
        before = len(receiver.received)
        until(lambda: worker.run_once() == 0 and len(receiver.received) == before + 1, "resent")
        assert order_id
    finally:
        receiver.close()


def test_order_buttons_capture_in_development_and_refusals_show(app):
    order_id = paid_order(app, "s-b")
    client = app.test_client()
    html = client.get("/support/sessions/s-b", headers=basic()).get_data(as_text=True)
    forms = dict(re.findall(r'action="/support/sessions/s-b/order/(\w+)">\s*'
                            r'<input type="hidden" name="token" value="([^"]+)"', html))
    assert set(forms) == {"capture", "refund", "cancel"}
    done = client.post("/support/sessions/s-b/order/capture",
                       data={"token": forms["capture"], "amount": "100"}, headers=basic())
    assert done.status_code == 200
    assert app.sandbox.client().read_merchant_order(order_id)["captured_amount"] == 100
    refused = client.post("/support/sessions/s-b/order/cancel", data={"token": forms["cancel"]},
                          headers=basic())
    assert refused.status_code == 422 and "CANCEL_NOT_ALLOWED" in refused.get_data(as_text=True)


def test_no_order_buttons_in_production(database_url, sandbox_server, app_factory):
    app = app_factory(DATABASE_URL=database_url, KLARNA_API_URL=sandbox_server.url,
                      KCO_SUPPORT_PASSWORD=PASSWORD, PRODUCTION=True)
    app.sandbox = sandbox_server
    paid_order(app, "s-p")
    client = app.test_client()
    assert "/order/capture" not in client.get("/support/sessions/s-p", headers=basic()).get_data(as_text=True)
    assert client.post("/support/sessions/s-p/order/capture", data={"token": "x", "amount": "1"},
                       headers=basic()).status_code == 404


def test_an_order_mismatch_flags_the_session(app):
    from callbacks.rules.state import EventType
    store = app.extensions["kco"].store
    paid_order(app, "s-m")
    with store.session("s-m") as tx:
        tx.save(tx.state, EventType.ORDER_MISMATCH,
                {"order_id": "o", "expected": {"order_amount": 100, "purchase_currency": "SEK"},
                 "paid": {"order_amount": 90, "purchase_currency": "SEK"}, "references": ["A"]})
    html = app.test_client().get("/support/sessions/s-m", headers=basic()).get_data(as_text=True)
    assert "Paid order differs from the priced cart" in html and "priced 100 SEK" in html
    assert "paid 90 SEK" in html
