"""The headers of a production web service (callbacks/web/headers.py, the sandbox's, gunicorn's
own error pages): CSP without 'unsafe-inline' for scripts, no framing of our pages, nosniff,
Referrer-Policy, Vary: Origin on CORS replies, no-store on whatever carries a token."""
from __future__ import annotations

import re
import socket

import pytest
from flask import render_template_string

from callbacks.klarna.lifecycle import Loaded
from callbacks.web.tokens import browser_token
from sandbox import create_sandbox
from tests.sandbox_fixtures import CREDENTIALS, sample_order

from .servers import gunicorn

TSHIRT = "TSHIRT-BLUE-M"


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def assert_page_headers(response):
    policy = directives(response.headers["Content-Security-Policy"])
    assert "'unsafe-inline'" not in policy.get("script-src", policy.get("default-src"))
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin")


@pytest.mark.parametrize("path", ["/", "/cart", "/checkout", "/terms"])
def test_demo_shop_pages(client, path):
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert_page_headers(page)
    assert page.headers["Cache-Control"] == "no-store"  # each page holds its session's token
    policy = directives(page.headers["Content-Security-Policy"])
    assert "https://x.klarnacdn.net" in policy["script-src"]  # Klarna's snippet loads from there
    assert any(src.startswith("http://127.0.0.1:8001") for src in policy["frame-src"])  # the sandbox


def test_the_nonce_reaches_templates_and_the_policy(app):
    """`csp_nonce` in a template (as a value or a call) is the nonce the policy allows."""
    template = '<script nonce="{{ csp_nonce }}">1</script><script nonce="{{ csp_nonce() }}">2</script>'

    @app.get("/_nonce")
    def nonce_page():
        return render_template_string(template)
    page = app.test_client().get("/_nonce")
    nonces = re.findall(r'nonce="([^"]+)"', page.get_data(as_text=True))
    assert len(nonces) == 2 and nonces[0] == nonces[1] and len(nonces[0]) >= 16
    assert f"'nonce-{nonces[0]}'" in directives(page.headers["Content-Security-Policy"])["script-src"]
    other = app.test_client().get("/_nonce").get_data(as_text=True)
    assert nonces[0] not in other  # a new one per request


def test_support_console_pages(make_support_app):
    app = make_support_app()
    page = app.test_client().get("/support/", headers={"Authorization": "Basic c3VwcG9ydDp4"})
    assert page.status_code in (200, 401)
    ok = app.test_client().get("/support/", auth=("support", app.config["KCO_SUPPORT_PASSWORD"]))
    assert ok.status_code == 200
    assert_page_headers(ok)


@pytest.fixture
def make_support_app(app_factory, sqlite_url):
    return lambda: app_factory(DATABASE_URL=sqlite_url, KCO_SUPPORT_PASSWORD="p" * 40)


def test_json_replies_are_nosniff_and_carry_no_policy_they_do_not_need(client, api_headers):
    reply = client.get("/api/markets", headers=api_headers)
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "same-origin"
    error = client.get("/api/nowhere")
    assert error.status_code == 404 and error.headers["X-Content-Type-Options"] == "nosniff"


def test_replies_carrying_a_token_are_not_stored(client, app, api_headers, monkeypatch):
    client.put("/api/sessions/s-1/cart", headers=api_headers,
               json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    state = app.extensions["kco"].store.get_state("s-1")
    monkeypatch.setattr(app.extensions["kco"].lifecycle, "load_checkout",
                        lambda sid, **_: Loaded(state, {"order_id": "o-1", "html_snippet": "<div></div>"}, None))
    token = browser_token(app.config["KCO_CALLBACK_SECRET"], "s-1")
    for headers in (api_headers, {"Authorization": f"Bearer {token}"}):
        load = client.post("/api/sessions/s-1/checkout", headers=headers)
        assert load.status_code == 200 and "browser_token" in load.get_json()
        assert load.headers["Cache-Control"] == "no-store"
    minted = client.post("/api/sessions/s-1/browser-token", headers=api_headers)
    assert minted.headers["Cache-Control"] == "no-store"


def test_every_cors_reply_varies_on_origin(app_factory, sqlite_url):
    app = app_factory(DATABASE_URL=sqlite_url, KCO_CORS_ORIGINS="https://shop.example")
    client = app.test_client()
    token = browser_token(app.config["KCO_CALLBACK_SECRET"], "s-1")
    cart = {"items": [{"reference": TSHIRT, "quantity": 1}]}
    for origin in ("https://shop.example", "https://evil.example", None):
        headers = {"Authorization": f"Bearer {token}", **({"Origin": origin} if origin else {})}
        put = client.put("/api/sessions/s-1/cart", headers=headers, json=cart)
        assert put.status_code == 200 and "Origin" in put.vary, origin
        refused = client.get("/api/sessions/s-1/state", headers={"Origin": origin or "x"})
        assert refused.status_code == 401 and "Origin" in refused.vary
    preflight = client.options("/api/sessions/s-1/cart", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "PUT"})
    assert "Origin" in preflight.vary


# -- the sandbox's iframe ----------------------------------------------------------------------
def test_the_sandbox_frame_may_be_framed_by_the_orders_shop_only():
    app = create_sandbox({"SANDBOX_USERNAME": CREDENTIALS[0], "SANDBOX_PASSWORD": CREDENTIALS[1]})
    client = app.test_client()
    order = sample_order()
    order["merchant_urls"]["checkout"] = "https://shop.example/checkout?sid=1"
    order_id = client.post("/checkout/v3/orders", json=order, auth=CREDENTIALS).get_json()["order_id"]
    page = client.get(f"/sandbox/checkout/{order_id}/frame")
    assert page.status_code == 200
    policy = directives(page.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["https://shop.example"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    missing = client.get("/sandbox/checkout/nope/frame")
    assert directives(missing.headers["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


# -- gunicorn's own error pages ----------------------------------------------------------------
def raw_request(base: str, data: bytes) -> tuple[int, dict, bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_gunicorns_own_4xx_are_our_json_error_body(sqlite_url):
    import json

    with gunicorn({"DATABASE_URL": sqlite_url}, workers=1, threads=2) as base:
        cases = {
            414: b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            431: b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(200)) + b"\r\n",
            400: b"NOT A REQUEST LINE\r\n\r\n",
        }
        for status, request in cases.items():
            code, headers, body = raw_request(base, request)
            assert code == status, (status, body[:200])
            assert headers["Content-Type"] == "application/json"
            reply = json.loads(body)
            assert reply["code"] == status and reply["message"] and isinstance(reply["errors"], dict)
