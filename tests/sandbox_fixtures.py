"""The sandbox (a local fake Klarna) as a real HTTP server on 127.0.0.1, for any test module:

    from tests.sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 (fixtures)

    def test_something(sandbox_server):
        client = sandbox_server.client()               # a KlarnaClient pointed at it
        order = client.create_order(sample_order())
        sandbox_server.complete(order["order_id"])     # /_sandbox controls, over HTTP
        assert sandbox_server.attempts("checkout.read_order") == 1

`sandbox_server` is a fresh server per test (port 0, werkzeug's threaded server in a daemon
thread). `start_sandbox(config=None, public_path=None, mounts=())` starts more, e.g. one whose
Location headers point under a prefix it is also mounted at.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping

import pytest
import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server

from callbacks.klarna.client import KlarnaClient
from sandbox import create_sandbox

HOST = "127.0.0.1"
CREDENTIALS = ("sandbox", "sandbox")

SAMPLE_ORDER = {
    "purchase_country": "SE",
    "purchase_currency": "SEK",
    "locale": "sv-SE",
    "order_amount": 62700,
    "order_tax_amount": 12540,
    "order_lines": [
        {"type": "physical", "reference": "TS-RED-M", "name": "Red T-Shirt (M)", "quantity": 2,
         "quantity_unit": "pcs", "unit_price": 29900, "tax_rate": 2500, "total_amount": 59800,
         "total_discount_amount": 0, "total_tax_amount": 11960},
        {"type": "shipping_fee", "reference": "postnord_ombud", "name": "PostNord Ombud",
         "quantity": 1, "unit_price": 2900, "tax_rate": 2500, "total_amount": 2900,
         "total_discount_amount": 0, "total_tax_amount": 580},
    ],
    "merchant_urls": {
        "terms": "http://127.0.0.1:8000/terms",
        "checkout": "http://127.0.0.1:8000/checkout?klarna_order_id={checkout.order.id}",
        "confirmation": "http://127.0.0.1:8000/confirmation?klarna_order_id={checkout.order.id}",
        "push": "http://127.0.0.1:8000/kco/push?session=s-1&order_id={checkout.order.id}&token=t",
        "validation": "http://127.0.0.1:8000/kco/validation?session=s-1&order_id={checkout.order.id}&token=t",
    },
    "merchant_reference2": "s-1",
    "merchant_data": "{\"session\":\"s-1\"}",
    "shipping_countries": ["SE", "FI"],
    "billing_countries": ["SE", "FI"],
    "options": {"require_validate_callback_success": True},
}


def sample_order(**overrides) -> dict:
    """A valid SE/SEK order (docs/klarna.md §11.4 amounts) with top-level overrides."""
    order = copy.deepcopy(SAMPLE_ORDER)
    order.update(copy.deepcopy(overrides))
    return order


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args, **kwargs):  # keep werkzeug's access log out of the test output
        pass


class SandboxServer:
    def __init__(self, config: Mapping | None = None, *, public_path: str | None = None,
                 mounts: Iterable[str] = ()):
        self.app = create_sandbox({"SANDBOX_USERNAME": CREDENTIALS[0],
                                   "SANDBOX_PASSWORD": CREDENTIALS[1], **(config or {})})
        mounts = tuple(mounts)
        wsgi = DispatcherMiddleware(self.app, dict.fromkeys(mounts, self.app)) if mounts else self.app
        self._server = make_server(HOST, 0, wsgi, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.url = f"http://{HOST}:{self.port}"
        if public_path is not None:
            self.app.config["SANDBOX_PUBLIC_URL"] = self.url + public_path
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._http = requests.Session()
        self._http.trust_env = False

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # the merchant's side

    def client(self, **kw) -> KlarnaClient:
        kw.setdefault("backoff", 0.01)
        username, password = kw.pop("credentials", CREDENTIALS)
        return KlarnaClient(self.url, username, password, **kw)

    # /_sandbox controls

    def control(self, method: str, path: str, json=None, params=None, expect=(200, 201, 204)):
        resp = self._http.request(method, f"{self.url}/_sandbox{path}", json=json, params=params,
                                  timeout=10)
        assert resp.status_code in expect, (resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def complete(self, order_id: str, fraud_status: str = "ACCEPTED", **details) -> dict:
        return self.control("POST", f"/orders/{order_id}/complete",
                            {"fraud_status": fraud_status, **details})

    def set_fraud_status(self, order_id: str, fraud_status: str) -> dict:
        return self.control("POST", f"/orders/{order_id}/fraud_status", {"fraud_status": fraud_status})

    def touch(self, order_id: str) -> dict:
        return self.control("POST", f"/orders/{order_id}/touch")

    def inspect(self, order_id: str) -> dict:
        return self.control("GET", f"/orders/{order_id}")

    def fail(self, endpoint: str, status: int | None = None, *, count: int = 1,
             delay: float = 0, **extra) -> None:
        spec = {"endpoint": endpoint, "count": count, "delay": delay, **extra}
        if status is not None:
            spec["status"] = status
        self.control("POST", "/faults", spec)

    def advance(self, seconds: float) -> dict:
        return self.control("POST", "/clock", {"advance": seconds})

    def requests(self, endpoint: str | None = None, order_id: str | None = None) -> list[dict]:
        params = {k: v for k, v in (("endpoint", endpoint), ("order_id", order_id)) if v}
        return self.control("GET", "/requests", params=params)["requests"]

    def attempts(self, endpoint: str, order_id: str | None = None) -> int:
        return len(self.requests(endpoint, order_id))


@pytest.fixture
def start_sandbox():
    started: list[SandboxServer] = []

    def start(config: Mapping | None = None, **kw) -> SandboxServer:
        server = SandboxServer(config, **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sandbox_server(start_sandbox) -> SandboxServer:
    return start_sandbox()
