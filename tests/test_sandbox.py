"""The sandbox speaks Klarna's Checkout and Order Management APIs as documented, over real HTTP."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import uuid

import pytest
import requests

from sandbox.snippet import render
from tests.sandbox_fixtures import CREDENTIALS, sample_order, sandbox_server, start_sandbox  # noqa: F401

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
HOUR = 3600


@pytest.fixture
def http():
    with requests.Session() as session:
        session.auth = CREDENTIALS
        session.trust_env = False
        yield session


def create(server, http, order=None, **headers):
    resp = http.post(f"{server.url}/checkout/v3/orders", json=order or sample_order(),
                     headers=headers, timeout=5)
    assert resp.status_code == 201, resp.text
    return resp


def assert_klarna_error(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["error_code"] == code
    assert isinstance(body["error_messages"], list) and body["error_messages"]
    uuid.UUID(body["correlation_id"])
    return body


# --- create / read / update -------------------------------------------------------------------

def test_create_answers_201_with_location_and_the_order(sandbox_server, http):
    resp = create(sandbox_server, http)
    order = resp.json()
    assert resp.headers["Location"] == f"{sandbox_server.url}/checkout/v3/orders/{order['order_id']}"
    assert order["status"] == "checkout_incomplete"
    assert ISO.fullmatch(order["started_at"]) and ISO.fullmatch(order["last_modified_at"])
    for key in ("merchant_urls", "merchant_reference2", "merchant_data", "shipping_countries",
                "billing_countries", "options", "order_lines", "order_amount", "locale"):
        assert order[key] == sample_order()[key]
    assert "w._klarnaCheckout = function" in order["html_snippet"]
    assert all(f"{name}: function" in order["html_snippet"] for name in ("suspend", "resume", "on"))
    read = http.get(resp.headers["Location"], timeout=5)
    assert read.status_code == 200
    assert dict(read.json().items()) == order


def test_merchant_urls_keep_the_placeholder(sandbox_server, http):
    order = create(sandbox_server, http).json()
    assert order["merchant_urls"]["push"].endswith("order_id={checkout.order.id}&token=t")
    assert sandbox_server.inspect(order["order_id"])["merchant_urls"] == sample_order()["merchant_urls"]


def test_unknown_and_read_only_fields_on_create_are_ignored(sandbox_server, http):
    order = create(sandbox_server, http, sample_order(order_id="mine", status="checkout_complete",
                                                      surprise=1)).json()
    assert order["order_id"] != "mine" and order["status"] == "checkout_incomplete"
    assert "surprise" not in order


def test_update_changes_only_what_is_sent(sandbox_server, http):
    created = create(sandbox_server, http).json()
    url = f"{sandbox_server.url}/checkout/v3/orders/{created['order_id']}"
    lines = sample_order()["order_lines"][:1]
    resp = http.post(url, json={"order_lines": lines, "order_amount": 59800,
                                "order_tax_amount": 11960, "merchant_reference1": "A-1"}, timeout=5)
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["order_lines"] == lines and updated["merchant_reference1"] == "A-1"
    assert updated["merchant_urls"] == created["merchant_urls"]
    assert updated["locale"] == "sv-SE" and updated["started_at"] == created["started_at"]
    assert http.get(url, timeout=5).json()["order_amount"] == 59800


def test_update_unknown_order_is_404(sandbox_server, http):
    resp = http.post(f"{sandbox_server.url}/checkout/v3/orders/nope", json={}, timeout=5)
    assert_klarna_error(resp, 404, "NOT_FOUND")


def test_read_unknown_order_is_404_with_klarnas_body(sandbox_server, http):
    body = assert_klarna_error(http.get(f"{sandbox_server.url}/checkout/v3/orders/nope", timeout=5),
                               404, "NOT_FOUND")
    assert "create a new order" in body["error_messages"][0]


def test_update_after_completion_is_403_read_only(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    done = sandbox_server.complete(order_id)
    assert done["status"] == "checkout_complete" and ISO.fullmatch(done["completed_at"])
    resp = http.post(f"{sandbox_server.url}/checkout/v3/orders/{order_id}",
                     json={"merchant_reference1": "late"}, timeout=5)
    assert_klarna_error(resp, 403, "READ_ONLY_ORDER")
    read = http.get(f"{sandbox_server.url}/checkout/v3/orders/{order_id}", timeout=5).json()
    assert read["status"] == "checkout_complete" and "merchant_reference1" not in read
    assert ISO.fullmatch(read["completed_at"])
    assert f"/sandbox/checkout/{order_id}/confirmation" in read["html_snippet"]


# --- BAD_VALUE --------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["purchase_country", "purchase_currency", "locale",
                                   "order_amount", "order_tax_amount", "order_lines", "merchant_urls"])
def test_create_without_a_required_field_is_bad_value(sandbox_server, http, field):
    order = sample_order()
    del order[field]
    resp = http.post(f"{sandbox_server.url}/checkout/v3/orders", json=order, timeout=5)
    body = assert_klarna_error(resp, 400, "BAD_VALUE")
    assert f"Bad value: {field}" in body["error_messages"]


@pytest.mark.parametrize("key", ["terms", "checkout", "confirmation", "push"])
def test_create_without_a_required_merchant_url_is_bad_value(sandbox_server, http, key):
    order = sample_order()
    del order["merchant_urls"][key]
    body = assert_klarna_error(http.post(f"{sandbox_server.url}/checkout/v3/orders", json=order,
                                         timeout=5), 400, "BAD_VALUE")
    assert body["error_messages"] == [f"Bad value: merchant_urls.{key}"]


@pytest.mark.parametrize("field, value", [
    ("purchase_country", "SWE"), ("purchase_country", "S1"), ("purchase_currency", "SE"),
    ("purchase_currency", 752), ("locale", "sv_SE"), ("locale", "svenska"),
])
def test_malformed_country_currency_locale_is_bad_value(sandbox_server, http, field, value):
    resp = http.post(f"{sandbox_server.url}/checkout/v3/orders", json=sample_order(**{field: value}),
                     timeout=5)
    assert assert_klarna_error(resp, 400, "BAD_VALUE")["error_messages"] == [f"Bad value: {field}"]


def test_lower_case_country_and_currency_are_accepted(sandbox_server, http):
    create(sandbox_server, http, sample_order(purchase_country="se", purchase_currency="sek"))


def test_wrong_line_tax_names_the_line(sandbox_server, http):
    order = sample_order()
    order["order_lines"][1]["total_tax_amount"] = 600
    order["order_tax_amount"] = 11960 + 600
    body = assert_klarna_error(http.post(f"{sandbox_server.url}/checkout/v3/orders", json=order,
                                         timeout=5), 400, "BAD_VALUE")
    assert body["error_messages"] == ["Bad value: order_lines[1].total_tax_amount"]


def test_wrong_order_amount_is_bad_value(sandbox_server, http):
    body = assert_klarna_error(http.post(f"{sandbox_server.url}/checkout/v3/orders",
                                         json=sample_order(order_amount=62701), timeout=5),
                               400, "BAD_VALUE")
    assert body["error_messages"] == ["Bad value: order_amount"]


def test_more_than_1000_lines_is_bad_value(sandbox_server, http):
    line = {"name": "Pin", "quantity": 1, "unit_price": 100, "tax_rate": 2500,
            "total_amount": 100, "total_tax_amount": 20}
    order = sample_order(order_lines=[line] * 1001, order_amount=100100, order_tax_amount=20020)
    body = assert_klarna_error(http.post(f"{sandbox_server.url}/checkout/v3/orders", json=order,
                                         timeout=10), 400, "BAD_VALUE")
    assert "Bad value: order_lines" in body["error_messages"]
    order = sample_order(order_lines=[line] * 1000, order_amount=100000, order_tax_amount=20000)
    create(sandbox_server, http, order)


def test_synchronous_callback_urls_must_be_https_unless_loopback(sandbox_server, http):
    order = sample_order()
    order["merchant_urls"]["validation"] = "http://shop.example/kco/validation"
    body = assert_klarna_error(http.post(f"{sandbox_server.url}/checkout/v3/orders", json=order,
                                         timeout=5), 400, "BAD_VALUE")
    assert body["error_messages"] == ["Bad value: merchant_urls.validation"]
    order["merchant_urls"]["validation"] = "https://shop.example/kco/validation"
    create(sandbox_server, http, order)


def test_update_breaking_the_amounts_is_bad_value_and_changes_nothing(sandbox_server, http):
    created = create(sandbox_server, http).json()
    url = f"{sandbox_server.url}/checkout/v3/orders/{created['order_id']}"
    body = assert_klarna_error(http.post(url, json={"order_lines": sample_order()["order_lines"][:1]},
                                         timeout=5), 400, "BAD_VALUE")
    assert set(body["error_messages"]) == {"Bad value: order_amount", "Bad value: order_tax_amount"}
    assert http.get(url, timeout=5).json()["order_lines"] == created["order_lines"]


def test_body_that_is_not_a_json_object_is_bad_value(sandbox_server, http):
    resp = http.post(f"{sandbox_server.url}/checkout/v3/orders", data="[1, 2",
                     headers={"Content-Type": "application/json"}, timeout=5)
    assert assert_klarna_error(resp, 400, "BAD_VALUE")["error_messages"] == ["Bad value: body"]


# --- auth -------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, ("sandbox", "wrong"), ("someone", "sandbox")])
def test_wrong_or_missing_credentials_are_401(sandbox_server, auth):
    paths = [("POST", "/checkout/v3/orders"), ("GET", "/checkout/v3/orders/x"),
             ("GET", "/ordermanagement/v1/orders/x"),
             ("POST", "/ordermanagement/v1/orders/x/acknowledge")]
    for method, path in paths:
        resp = requests.request(method, sandbox_server.url + path, auth=auth, json={}, timeout=5)
        assert_klarna_error(resp, 401, "UNAUTHORIZED")
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_credentials_come_from_config(start_sandbox):
    server = start_sandbox({"SANDBOX_USERNAME": "merchant-1", "SANDBOX_PASSWORD": "s3cret"})
    url = f"{server.url}/checkout/v3/orders/x"
    assert requests.get(url, auth=CREDENTIALS, timeout=5).status_code == 401
    assert requests.get(url, auth=("merchant-1", "s3cret"), timeout=5).status_code == 404


# --- Order Management -------------------------------------------------------------------------

def test_order_management_knows_only_completed_orders(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    om = f"{sandbox_server.url}/ordermanagement/v1/orders/{order_id}"
    assert_klarna_error(http.get(om, timeout=5), 404, "NO_SUCH_ORDER")
    assert_klarna_error(http.post(om + "/acknowledge", timeout=5), 404, "NO_SUCH_ORDER")
    sandbox_server.complete(order_id, "PENDING")
    body = http.get(om, timeout=5).json()
    assert body["order_id"] == order_id and body["status"] == "AUTHORIZED"
    assert body["fraud_status"] == "PENDING"
    assert body["order_amount"] == 62700 and body["purchase_currency"] == "SEK"
    assert body["order_lines"] == sample_order()["order_lines"]
    assert body["merchant_reference2"] == "s-1"
    assert re.fullmatch(r"[A-Z0-9]{8}", body["klarna_reference"])
    assert ISO.fullmatch(body["created_at"]) and ISO.fullmatch(body["expires_at"])
    assert body["expires_at"] > body["created_at"]
    sandbox_server.set_fraud_status(order_id, "ACCEPTED")
    assert http.get(om, timeout=5).json()["fraud_status"] == "ACCEPTED"


def test_acknowledge_is_204_idempotent_and_counted(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    sandbox_server.complete(order_id)
    url = f"{sandbox_server.url}/ordermanagement/v1/orders/{order_id}/acknowledge"
    for key in ("k-1", "k-2"):
        resp = http.post(url, headers={"Klarna-Idempotency-Key": key}, timeout=5)
        assert resp.status_code == 204 and resp.content == b""
    state = sandbox_server.inspect(order_id)
    assert state["acknowledged"] == 2 and state["last_idempotency_key"] == "k-2"


def test_unknown_order_in_order_management_is_no_such_order(sandbox_server, http):
    body = assert_klarna_error(http.post(
        f"{sandbox_server.url}/ordermanagement/v1/orders/nope/acknowledge", timeout=5), 404, "NO_SUCH_ORDER")
    assert "Acknowledgement not possible" in body["error_messages"][0]


def test_completing_twice_and_fraud_status_of_incomplete_orders_conflict(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    sandbox_server.control("POST", f"/orders/{order_id}/fraud_status", {"fraud_status": "ACCEPTED"},
                           expect=(409,))
    sandbox_server.control("POST", f"/orders/{order_id}/complete", {"fraud_status": "MAYBE"},
                           expect=(400,))
    sandbox_server.complete(order_id)
    sandbox_server.control("POST", f"/orders/{order_id}/complete", {}, expect=(409,))
    sandbox_server.control("POST", "/orders/nope/complete", {}, expect=(404,))


# --- expiry -----------------------------------------------------------------------------------

def test_orders_expire_48_hours_after_the_last_update_or_interaction(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    url = f"{sandbox_server.url}/checkout/v3/orders/{order_id}"
    sandbox_server.advance(47 * HOUR)
    assert http.post(url, json={"merchant_reference1": "x"}, timeout=5).status_code == 200
    sandbox_server.advance(47 * HOUR)
    sandbox_server.touch(order_id)                      # the shopper typed something
    sandbox_server.advance(47 * HOUR)
    assert http.get(url, timeout=5).status_code == 200  # reading does not extend it
    sandbox_server.advance(1 * HOUR)
    assert_klarna_error(http.get(url, timeout=5), 404, "NOT_FOUND")
    assert_klarna_error(http.post(url, json={}, timeout=5), 404, "NOT_FOUND")
    assert sandbox_server.inspect(order_id)["expired"] is True


def test_a_completed_order_outlives_its_checkout_in_order_management(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    sandbox_server.complete(order_id)
    sandbox_server.advance(49 * HOUR)
    assert http.get(f"{sandbox_server.url}/checkout/v3/orders/{order_id}", timeout=5).status_code == 404
    om = f"{sandbox_server.url}/ordermanagement/v1/orders/{order_id}"
    assert http.get(om, timeout=5).json()["status"] == "AUTHORIZED"
    assert http.post(om + "/acknowledge", timeout=5).status_code == 204


def test_clock_only_moves_forward(sandbox_server):
    sandbox_server.control("POST", "/clock", {"advance": -1}, expect=(400,))
    assert sandbox_server.control("GET", "/clock")["offset_seconds"] == 0
    assert sandbox_server.advance(90)["offset_seconds"] == 90


# --- faults and the request log ---------------------------------------------------------------

def test_faults_fail_the_next_n_requests_then_stop(sandbox_server, http):
    order_id = create(sandbox_server, http).json()["order_id"]
    sandbox_server.fail("checkout.read_order", 503, count=2, error_code="SERVICE_UNAVAILABLE",
                        headers={"Retry-After": "1"})
    url = f"{sandbox_server.url}/checkout/v3/orders/{order_id}"
    for _ in range(2):
        resp = http.get(url, timeout=5)
        assert_klarna_error(resp, 503, "SERVICE_UNAVAILABLE")
        assert resp.headers["Retry-After"] == "1"
    assert http.get(url, timeout=5).status_code == 200
    log = sandbox_server.requests("checkout.read_order", order_id)
    assert [(e["status"], e["fault"]) for e in log] == [(503, True), (503, True), (200, False)]


def test_a_failed_create_creates_nothing(sandbox_server, http):
    sandbox_server.fail("checkout.create_order", 500)
    resp = http.post(f"{sandbox_server.url}/checkout/v3/orders", json=sample_order(), timeout=5)
    assert_klarna_error(resp, 500, "INTERNAL_SERVER_ERROR")
    assert sandbox_server.control("GET", "/orders")["orders"] == []


def test_fault_with_a_raw_body(sandbox_server, http):
    sandbox_server.fail("checkout.read_order", 502, body="<html>Bad Gateway</html>")
    resp = http.get(f"{sandbox_server.url}/checkout/v3/orders/x", timeout=5)
    assert resp.status_code == 502 and resp.text == "<html>Bad Gateway</html>"


def test_delay_without_status_is_slow_but_does_the_work(sandbox_server, http):
    sandbox_server.fail("checkout.create_order", delay=0.5)
    with pytest.raises(requests.ReadTimeout):
        http.post(f"{sandbox_server.url}/checkout/v3/orders", json=sample_order(), timeout=(2, 0.1))
    for _ in range(50):
        if sandbox_server.requests("checkout.create_order"):
            break
        threading.Event().wait(0.05)
    assert sandbox_server.requests("checkout.create_order")[0]["status"] == 201
    assert len(sandbox_server.control("GET", "/orders")["orders"]) == 1


def test_fault_specs_are_checked(sandbox_server):
    for spec in ({"endpoint": "checkout.nothing", "status": 500}, {"endpoint": "checkout.read_order"},
                 {"endpoint": "checkout.read_order", "status": 500, "count": 0},
                 {"endpoint": "checkout.read_order", "delay": 31}):
        sandbox_server.control("POST", "/faults", spec, expect=(400,))
    sandbox_server.fail("checkout.read_order", 500, count=3)
    assert len(sandbox_server.control("GET", "/faults")["faults"]) == 3
    sandbox_server.control("DELETE", "/faults")
    assert sandbox_server.control("GET", "/faults")["faults"] == []


def test_reset_forgets_everything(sandbox_server, http):
    create(sandbox_server, http)
    sandbox_server.fail("checkout.read_order", 500)
    sandbox_server.advance(10)
    sandbox_server.control("POST", "/reset")
    assert sandbox_server.control("GET", "/orders")["orders"] == []
    assert sandbox_server.control("GET", "/faults")["faults"] == []
    assert sandbox_server.requests() == []
    assert sandbox_server.control("GET", "/clock")["offset_seconds"] == 0


def test_idempotency_key_on_create_returns_the_first_order(sandbox_server, http):
    first = create(sandbox_server, http, **{"Klarna-Idempotency-Key": "cart-1"})
    again = create(sandbox_server, http, **{"Klarna-Idempotency-Key": "cart-1"})
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert create(sandbox_server, http).json()["order_id"] != first.json()["order_id"]


def test_concurrent_creates_and_updates_stay_consistent(sandbox_server):
    ids, errors = [], []

    def work():
        with requests.Session() as s:
            s.auth = CREDENTIALS
            try:
                for i in range(5):
                    r = s.post(f"{sandbox_server.url}/checkout/v3/orders", json=sample_order(), timeout=10)
                    order_id = r.json()["order_id"]
                    u = s.post(f"{sandbox_server.url}/checkout/v3/orders/{order_id}",
                               json={"merchant_reference1": str(i)}, timeout=10)
                    assert u.status_code == 200 and u.json()["merchant_reference1"] == str(i)
                    ids.append(order_id)
            except Exception as exc:  # surfaced below, with the thread's error
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(ids)) == 40
    assert len(sandbox_server.control("GET", "/orders")["orders"]) == 40


def test_unknown_paths_and_methods_answer_in_klarnas_shape(sandbox_server, http):
    assert_klarna_error(http.get(f"{sandbox_server.url}/checkout/v3/nothing", timeout=5), 404, "NOT_FOUND")
    assert_klarna_error(http.delete(f"{sandbox_server.url}/checkout/v3/orders/x", timeout=5),
                        405, "METHOD_NOT_ALLOWED")


def test_sandbox_wsgi_exposes_the_app():
    import sandbox_wsgi
    assert "checkout.create_order" in sandbox_wsgi.app.view_functions


# --- html_snippet -----------------------------------------------------------------------------

NODE_HARNESS = r"""
const vm = require("vm");
const timers = [];
const element = {style: {}, attrs: {}, setAttribute(k, v) { this.attrs[k] = v; }};
const window = {
  setTimeout(fn, ms) { timers.push({fn, ms}); return timers.length; },
  clearTimeout(id) { if (timers[id - 1]) timers[id - 1].cleared = true; },
  console,
};
const document = {getElementById() { return element; }};
const out = {};
const queued = [];
window._klarnaCheckout = function () { (window._klarnaCheckout.q = window._klarnaCheckout.q || []).push(arguments); };
window._klarnaCheckout(function (api) { out.queuedCalled = typeof api.suspend; });
vm.runInNewContext(process.env.SNIPPET_JS, {window, document});
let api;
window._klarnaCheckout(function (a) { api = a; });
const seen = [];
api.on({load: d => seen.push(["load", d]), change: () => seen.push(["old"])});
api.on({change: d => seen.push(["change", d])});
timers.filter(t => t.ms === 0).forEach(t => t.fn());
window.__klarnaSandbox.emit("change", {postal_code: "12345"});
api.suspend();
out.suspendedOpacity = element.style.opacity;
out.autoResumeMs = timers[timers.length - 1].ms;
out.busy = element.attrs["aria-busy"];
api.resume();
out.resumed = !window.__klarnaSandbox.isSuspended() && element.style.opacity === "";
api.suspend({autoResume: {enabled: false}});
out.timersAfterNoAuto = timers.filter(t => !t.cleared && t.ms === 10000).length;
out.stillSuspended = window.__klarnaSandbox.isSuspended();
out.seen = seen;
out.orderId = window.__klarnaSandbox.orderId;
console.log(JSON.stringify(out));
"""


def _script_of(snippet: str) -> str:
    match = re.search(r"<script[^>]*>/\* <!\[CDATA\[ \*/(.*)/\* \]\]> \*/</script>", snippet, re.S)
    assert match, snippet
    return match.group(1)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_snippet_javascript_api_works(sandbox_server, http):
    order = create(sandbox_server, http).json()
    env = {**os.environ, "SNIPPET_JS": _script_of(order["html_snippet"])}
    result = subprocess.run(["node", "-e", NODE_HARNESS], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["queuedCalled"] == "function"
    assert out["seen"] == [["change", {"postal_code": "12345"}]]  # `load` comes from the iframe
    assert out["suspendedOpacity"] == "0.5" and out["busy"] == "true" and out["autoResumeMs"] == 10000
    assert out["resumed"] is True
    assert out["timersAfterNoAuto"] == 0 and out["stillSuspended"] is True
    assert out["orderId"] == order["order_id"]


def test_snippet_cannot_be_broken_out_of():
    evil = {"order_id": "</script><script>alert(1)</script>", "status": "checkout_incomplete",
            "order_amount": 100, "purchase_currency": "<b>"}
    html = render(evil, "http://127.0.0.1:1")
    assert html.count("<script") == 1 and html.count("</script>") == 1
    assert "&lt;b&gt;" in html
