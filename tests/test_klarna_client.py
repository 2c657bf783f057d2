"""callbacks.klarna.client against the sandbox running as a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from callbacks.klarna.client import DEFAULT_TIMEOUT, KlarnaClient, KlarnaError
from tests.sandbox_fixtures import sample_order, sandbox_server, start_sandbox  # noqa: F401
from tests.waiting import DEADLINE

HOUR = 3600


@pytest.fixture
def client(sandbox_server):
    with sandbox_server.client() as c:
        yield c


def wait_for_log(server, endpoint, n, timeout=DEADLINE):
    """The sandbox logs a request when it answers; a timed-out one answers after the client left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = server.requests(endpoint)
        if len(entries) >= n:
            return entries
        time.sleep(0.02)
    return server.requests(endpoint)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the happy path ---------------------------------------------------------------------------

def test_create_read_update_round_trip(client, sandbox_server):
    created = client.create_order(sample_order())
    order_id = created["order_id"]
    assert created["status"] == "checkout_incomplete" and "_klarnaCheckout" in created["html_snippet"]
    assert client.read_order(order_id) == created
    updated = client.update_order(order_id, {"merchant_reference1": "A-1"})
    assert updated["merchant_reference1"] == "A-1"
    assert updated["order_lines"] == created["order_lines"]
    assert client.read_order(order_id)["merchant_reference1"] == "A-1"
    assert [e["endpoint"] for e in sandbox_server.requests()] == [
        "checkout.create_order", "checkout.read_order", "checkout.read_order",
        "checkout.update_order", "checkout.read_order"]


def test_create_reads_the_order_back_from_the_location_header(start_sandbox):
    # The sandbox advertises its orders under /mirror (where it is also mounted): a client that
    # built the URL from the id would read /checkout/v3/orders/{id} instead.
    server = start_sandbox(public_path="/mirror", mounts=["/mirror"])
    with server.client() as client:
        order = client.create_order(sample_order())
    reads = server.requests("checkout.read_order")
    assert [r["path"] for r in reads] == [f"/mirror/checkout/v3/orders/{order['order_id']}"]


def test_a_location_on_another_origin_is_not_followed(start_sandbox):
    server = start_sandbox({"SANDBOX_PUBLIC_URL": "http://127.0.0.2:9"})
    with server.client() as client, pytest.raises(KlarnaError) as caught:
        client.create_order(sample_order())
    assert caught.value.status == 201 and caught.value.error_code == "BAD_RESPONSE"
    assert "127.0.0.2" in str(caught.value)
    assert server.requests("checkout.read_order") == []


def test_a_failed_read_back_returns_the_created_order(client, sandbox_server):
    sandbox_server.fail("checkout.read_order", 500)
    order = client.create_order(sample_order())
    assert order["order_id"] and order["status"] == "checkout_incomplete"
    assert sandbox_server.attempts("checkout.create_order") == 1


def test_order_management_read_and_acknowledge(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    with pytest.raises(KlarnaError) as caught:
        client.read_merchant_order(order_id)
    assert (caught.value.status, caught.value.error_code) == (404, "NO_SUCH_ORDER")
    sandbox_server.complete(order_id, "PENDING")
    merchant_order = client.read_merchant_order(order_id)
    assert merchant_order["status"] == "AUTHORIZED" and merchant_order["fraud_status"] == "PENDING"
    assert merchant_order["order_amount"] == 62700 and merchant_order["klarna_reference"]
    assert client.acknowledge_order(order_id) is None


def test_acknowledge_is_idempotent_and_keyed(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    sandbox_server.complete(order_id)
    client.acknowledge_order(order_id)
    client.acknowledge_order(order_id, idempotency_key="ack-2")
    state = sandbox_server.inspect(order_id)
    assert state["acknowledged"] == 2 and state["last_idempotency_key"] == "ack-2"
    uuid.UUID(state["acknowledge_keys"][0])  # a fresh key when the caller gives none


def test_acknowledge_unknown_order_is_404(client):
    with pytest.raises(KlarnaError) as caught:
        client.acknowledge_order("nope")
    assert (caught.value.status, caught.value.error_code) == (404, "NO_SUCH_ORDER")


# --- Klarna's errors --------------------------------------------------------------------------

def test_unknown_order_is_klarna_error_404(client):
    with pytest.raises(KlarnaError) as caught:
        client.read_order("no-such-order")
    err = caught.value
    assert (err.status, err.error_code) == (404, "NOT_FOUND")
    assert "create a new order" in err.error_messages[0]
    uuid.UUID(err.correlation_id)
    assert not err.is_network_error
    assert str(err).startswith("Klarna read_order failed: 404 NOT_FOUND: We did not find")
    assert err.correlation_id in str(err)


def test_order_ids_cannot_walk_the_path(client, sandbox_server):
    with pytest.raises(KlarnaError) as caught:
        client.read_order("../orders")
    assert caught.value.status == 404
    with pytest.raises(ValueError):
        client.read_order("")


def test_update_after_completion_is_read_only(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    sandbox_server.complete(order_id)
    with pytest.raises(KlarnaError) as caught:
        client.update_order(order_id, {"merchant_reference1": "late"})
    assert (caught.value.status, caught.value.error_code) == (403, "READ_ONLY_ORDER")


def test_bad_value_is_surfaced_with_klarnas_messages(client, sandbox_server):
    order = sample_order()
    order["order_lines"][1]["total_tax_amount"] = 999
    with pytest.raises(KlarnaError) as caught:
        client.create_order(order)
    err = caught.value
    assert (err.status, err.error_code) == (400, "BAD_VALUE")
    assert "Bad value: order_lines[1].total_tax_amount" in err.error_messages
    assert "order_lines[1].total_tax_amount" in str(err)
    assert sandbox_server.attempts("checkout.create_order") == 1


def test_wrong_credentials_are_401(sandbox_server):
    with sandbox_server.client(credentials=("sandbox", "wrong")) as client:
        with pytest.raises(KlarnaError) as caught:
            client.read_order("x")
    assert (caught.value.status, caught.value.error_code) == (401, "UNAUTHORIZED")


def test_a_401_without_error_code_is_tolerated(client, sandbox_server):
    sandbox_server.fail("checkout.read_order", 401,
                        body={"http_status_code": 401, "http_status_message": "Unauthorized"})
    with pytest.raises(KlarnaError) as caught:
        client.read_order("x")
    err = caught.value
    assert (err.status, err.error_code, err.error_messages, err.correlation_id) == (
        401, "UNAUTHORIZED", ["Unauthorized"], None)


def test_a_non_json_error_page_is_tolerated(client, sandbox_server):
    sandbox_server.fail("checkout.create_order", 502, body="<html><h1>502 Bad Gateway</h1></html>")
    with pytest.raises(KlarnaError) as caught:
        client.create_order(sample_order())
    err = caught.value
    assert (err.status, err.error_code) == (502, "BAD_GATEWAY")
    assert "502 Bad Gateway" in err.error_messages[0]


# --- retries: only where safe -----------------------------------------------------------------

def test_get_is_retried_on_503_and_succeeds(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    sandbox_server.control("DELETE", "/requests")
    sandbox_server.fail("checkout.read_order", 503, count=2)
    assert client.read_order(order_id)["order_id"] == order_id
    assert [e["status"] for e in sandbox_server.requests("checkout.read_order")] == [503, 503, 200]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_gives_up_after_the_retries_with_the_last_error(sandbox_server, status):
    sandbox_server.fail("ordermanagement.read_order", status, count=10, error_code="TEMPORARY")
    with sandbox_server.client(retries=2) as client, pytest.raises(KlarnaError) as caught:
        client.read_merchant_order("x")
    assert (caught.value.status, caught.value.error_code) == (status, "TEMPORARY")
    assert sandbox_server.attempts("ordermanagement.read_order") == 3


def test_a_500_is_not_retried(client, sandbox_server):
    sandbox_server.fail("checkout.read_order", 500)
    with pytest.raises(KlarnaError) as caught:
        client.read_order("x")
    assert (caught.value.status, caught.value.error_code) == (500, "INTERNAL_SERVER_ERROR")
    assert sandbox_server.attempts("checkout.read_order") == 1


def test_create_without_idempotency_key_is_never_retried(client, sandbox_server):
    sandbox_server.fail("checkout.create_order", 503, count=3)
    with pytest.raises(KlarnaError) as caught:
        client.create_order(sample_order())
    assert caught.value.status == 503
    assert sandbox_server.attempts("checkout.create_order") == 1
    assert sandbox_server.control("GET", "/orders")["orders"] == []


def test_create_with_idempotency_key_is_retried_with_the_same_key(client, sandbox_server):
    sandbox_server.fail("checkout.create_order", 503, count=2)
    order = client.create_order(sample_order(), idempotency_key="cart-7-v1")
    attempts = sandbox_server.requests("checkout.create_order")
    assert [(a["status"], a["idempotency_key"]) for a in attempts] == [
        (503, "cart-7-v1"), (503, "cart-7-v1"), (201, "cart-7-v1")]
    assert len(sandbox_server.control("GET", "/orders")["orders"]) == 1
    assert client.read_order(order["order_id"])["order_id"] == order["order_id"]


def test_update_is_retried_only_with_an_idempotency_key(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    sandbox_server.fail("checkout.update_order", 503)
    with pytest.raises(KlarnaError):
        client.update_order(order_id, {"merchant_reference1": "a"})
    assert sandbox_server.attempts("checkout.update_order") == 1
    sandbox_server.fail("checkout.update_order", 504)
    assert client.update_order(order_id, {"merchant_reference1": "b"},
                               idempotency_key="u-1")["merchant_reference1"] == "b"
    assert [a["status"] for a in sandbox_server.requests("checkout.update_order")] == [503, 504, 200]


def test_acknowledge_is_retried_with_one_key(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    sandbox_server.complete(order_id)
    sandbox_server.fail("ordermanagement.acknowledge_order", 503)
    client.acknowledge_order(order_id)
    attempts = sandbox_server.requests("ordermanagement.acknowledge_order")
    assert [a["status"] for a in attempts] == [503, 204]
    assert attempts[0]["idempotency_key"] == attempts[1]["idempotency_key"]
    assert sandbox_server.inspect(order_id)["acknowledged"] == 1


# --- no answer at all -------------------------------------------------------------------------

def sends(client: KlarnaClient) -> list[str]:
    """Every HTTP request the client sends, counted on its side: whether it retried is then
    known when the call returns, not after waiting to see whether another reaches the server."""
    sent: list[str] = []
    real = client.session.request

    def request(method, url, *args, **kw):
        sent.append(f"{method} {url}")
        return real(method, url, *args, **kw)

    client.session.request = request  # type: ignore[method-assign]
    return sent


def test_a_read_timeout_is_klarna_error_timeout_and_not_retried(sandbox_server):
    sandbox_server.fail("checkout.read_order", delay=0.6)
    with sandbox_server.client(timeout=(2, 0.2)) as client:
        sent = sends(client)
        with pytest.raises(KlarnaError) as caught:
            client.read_order("x")
    err = caught.value
    assert (err.status, err.error_code) == (None, "TIMEOUT") and err.is_network_error
    assert "no response" in str(err)
    assert len(sent) == 1, sent
    assert len(wait_for_log(sandbox_server, "checkout.read_order", 1)) == 1
    assert sandbox_server.attempts("checkout.read_order") == 1


def test_a_create_that_times_out_is_not_repeated(sandbox_server):
    sandbox_server.fail("checkout.create_order", delay=0.6)
    with sandbox_server.client(timeout=(2, 0.2)) as client:
        sent = sends(client)
        with pytest.raises(KlarnaError) as caught:
            client.create_order(sample_order())
    assert caught.value.error_code == "TIMEOUT"
    assert len(sent) == 1, sent
    wait_for_log(sandbox_server, "checkout.create_order", 1)
    assert sandbox_server.attempts("checkout.create_order") == 1


def test_nobody_listening_is_klarna_error_network_error():
    calls = []
    client = KlarnaClient(f"http://127.0.0.1:{closed_port()}", "u", "p", retries=1, backoff=0.01,
                          on_call=lambda *a: calls.append(a))
    with client, pytest.raises(KlarnaError) as caught:
        client.read_order("x")
    assert (caught.value.status, caught.value.error_code) == (None, "NETWORK_ERROR")
    assert calls and calls[0][:2] == ("read_order", None)


# --- expiry -----------------------------------------------------------------------------------

def test_an_order_untouched_for_48_hours_is_gone(client, sandbox_server):
    order_id = client.create_order(sample_order())["order_id"]
    sandbox_server.advance(48 * HOUR - 60)
    client.read_order(order_id)
    sandbox_server.advance(60)
    with pytest.raises(KlarnaError) as caught:
        client.read_order(order_id)
    assert (caught.value.status, caught.value.error_code) == (404, "NOT_FOUND")
    with pytest.raises(KlarnaError) as caught:
        client.update_order(order_id, {"merchant_reference1": "x"})
    assert caught.value.status == 404


# --- plumbing ---------------------------------------------------------------------------------

def test_on_call_reports_each_call_and_a_broken_hook_breaks_nothing(sandbox_server):
    calls = []
    with sandbox_server.client(on_call=lambda *a: calls.append(a)) as client:
        order_id = client.create_order(sample_order())["order_id"]
        with pytest.raises(KlarnaError):
            client.read_order("missing")
    assert [(op, status) for op, status, _ in calls] == [
        ("create_order", 201), ("read_order", 200), ("read_order", 404)]
    assert all(isinstance(s, float) and s >= 0 for *_, s in calls)

    def broken(*args):
        raise RuntimeError("metrics down")
    with sandbox_server.client(on_call=broken) as client:
        assert client.read_order(order_id)["order_id"] == order_id


def test_requests_identify_kco_sync(client, sandbox_server):
    client.create_order(sample_order())
    assert all(r["user_agent"].startswith("kco-sync/") for r in sandbox_server.requests())


def test_one_client_serves_many_threads(client, sandbox_server):
    sandbox_server.fail("checkout.read_order", 503, count=3)  # fewer than one call's attempts
    errors, ids = [], []

    def work():
        try:
            for _ in range(3):
                order_id = client.create_order(sample_order())["order_id"]
                ids.append(client.read_order(order_id)["order_id"])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 18
    assert sandbox_server.attempts("checkout.create_order") == 18


def test_from_config_reads_the_klarna_settings(sandbox_server):
    config = {"KLARNA_API_URL": sandbox_server.url + "/", "KLARNA_USERNAME": "sandbox",
              "KLARNA_PASSWORD": "sandbox", "KLARNA_TIMEOUT": "1.5, 4", "KLARNA_RETRIES": "1"}
    with KlarnaClient.from_config(config) as client:
        assert client.timeout == (1.5, 4.0) and client.base_url == sandbox_server.url
        assert client.create_order(sample_order())["status"] == "checkout_incomplete"
    from config import TestConfig
    with KlarnaClient.from_config(TestConfig()) as client:
        assert client.timeout == DEFAULT_TIMEOUT


def test_a_base_url_without_a_scheme_is_refused():
    with pytest.raises(ValueError):
        KlarnaClient("api.klarna.com", "u", "p")


def test_klarna_error_repr_and_str_without_details():
    err = KlarnaError(None, "NETWORK_ERROR")
    assert str(err) == "Klarna call failed: no response NETWORK_ERROR"
    assert repr(err) == "KlarnaError(None, 'NETWORK_ERROR', [], None)"
