"""The browser token: what a shopper's page may do without
KCO_API_KEY, for how long, and from which origins."""
from __future__ import annotations

import pytest

from callbacks import create_app
from callbacks.web.tokens import browser_token

TSHIRT = "TSHIRT-BLUE-M"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secret(app):
    return app.config["KCO_CALLBACK_SECRET"]


def test_the_back_end_gets_a_token_with_the_api_key_only(client, api_headers):
    got = client.post("/api/sessions/s-1/browser-token", headers=api_headers)
    assert got.status_code == 200 and got.get_json()["session"] == "s-1"
    assert got.get_json()["expires_at"].endswith("Z")
    token = got.get_json()["browser_token"]
    # It cannot mint tokens itself, for its own session or another.
    for headers in ({}, auth(token), auth("wrong")):
        refused = client.post("/api/sessions/s-2/browser-token", headers=headers)
        assert refused.status_code == 401 and refused.get_json()["code"] == 401
    assert client.post("/api/sessions/bad!id/browser-token", headers=api_headers).status_code == 400


def test_it_writes_its_own_cart_and_market_and_reads_its_state(client, secret):
    token = browser_token(secret, "s-1")
    put = client.put("/api/sessions/s-1/cart", headers=auth(token),
                     json={"items": [{"reference": TSHIRT, "quantity": 2}]})
    assert put.status_code == 200 and put.get_json()["order"]["order_amount"] == 2 * 19900 + 2900
    market = client.put("/api/sessions/s-1/market", headers=auth(token), json={"country": "FI"})
    assert market.status_code == 200 and market.get_json()["market"]["currency"] == "EUR"
    state = client.get(f"/api/sessions/s-1/state?token={token}")  # ?token= works too
    assert state.get_json()["market"]["country"] == "FI"
    assert client.get("/api/sessions/s-1/events", headers=auth(token)).status_code == 200


def test_it_opens_nothing_else(client, secret, api_headers):
    client.put("/api/sessions/s-2/cart", headers=api_headers,
               json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    token = browser_token(secret, "s-1")
    for method, path, body in (("PUT", "/api/sessions/s-2/cart", {"items": []}),
                               ("PUT", "/api/sessions/s-2/market", {"country": "FI"}),
                               ("POST", "/api/sessions/s-2/checkout", None),
                               ("GET", "/api/sessions/s-2/state", None),
                               ("GET", "/api/sessions/s-2/events", None),
                               ("GET", "/api/events", None),
                               ("GET", "/api/markets", None)):
        response = client.open(path, method=method, headers=auth(token), json=body)
        assert response.status_code == 401, (method, path)
    assert client.get("/api/sessions/s-2/state", headers=api_headers).get_json()["version"] == 1


def test_it_expires_after_klarnas_48_hours(client, secret):
    stale = browser_token(secret, "s-1", ttl=-1)
    refused = client.put("/api/sessions/s-1/cart", headers=auth(stale),
                         json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    assert refused.status_code == 401 and "browser token" in refused.get_json()["message"]
    expires, _, _ = browser_token(secret, "s-1", now=1000).partition(".")
    assert int(expires) == 1000 + 48 * 3600
    # A later expiry written into the token breaks its signature.
    _, _, mac = browser_token(secret, "s-1").partition(".")
    forged = f"{int(expires) + 10**9}.{mac}"
    assert client.get("/api/sessions/s-1/state", headers=auth(forged)).status_code == 401


def test_a_browser_cannot_set_a_price(client, secret):
    token = browser_token(secret, "s-1")
    forged = client.put("/api/sessions/s-1/cart", headers=auth(token), json={
        "items": [{"reference": TSHIRT, "quantity": 1, "unit_price": 1}]})
    assert forged.status_code == 422 and "items.0.unit_price" in forged.get_json()["errors"]
    forged = client.put("/api/sessions/s-1/cart", headers=auth(token), json={
        "items": [{"reference": TSHIRT, "quantity": 1}], "order_amount": 1})
    assert forged.status_code == 422


def test_no_cors_by_default(client, secret):
    token = browser_token(secret, "s-1")
    got = client.get("/api/sessions/s-1/state", headers={**auth(token), "Origin": "https://shop.example"})
    assert "Access-Control-Allow-Origin" not in got.headers


def test_cors_for_the_configured_origins_only(sqlite_url):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url,
                      "KCO_CORS_ORIGINS": "https://shop.example, https://www.shop.example"})
    client, secret = app.test_client(), app.config["KCO_CALLBACK_SECRET"]
    token = browser_token(secret, "s-1")
    preflight = client.options("/api/sessions/s-1/cart", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    put = client.put("/api/sessions/s-1/cart", headers={**auth(token), "Origin": "https://shop.example"},
                     json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    assert put.status_code == 200 and put.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "ETag" in put.headers["Access-Control-Expose-Headers"]
    other = client.options("/api/sessions/s-1/cart", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
    assert "Access-Control-Allow-Origin" not in other.headers
    feed = client.get("/api/events", headers={"Origin": "https://shop.example"})
    assert feed.status_code == 401 and "Access-Control-Allow-Origin" not in feed.headers
    app.extensions["kco"].store.dispose()


def test_the_checkout_load_returns_a_fresh_token(client, secret, api_headers, monkeypatch, app):
    from callbacks.klarna.lifecycle import Loaded

    client.put("/api/sessions/s-1/cart", headers=api_headers,
               json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    state = app.extensions["kco"].store.get_state("s-1")
    monkeypatch.setattr(app.extensions["kco"].lifecycle, "load_checkout",
                        lambda sid: Loaded(state, {"order_id": "o-1", "html_snippet": "<div></div>"}, None))
    reply = client.post("/api/sessions/s-1/checkout", headers=auth(browser_token(secret, "s-1"))).get_json()
    assert reply["browser_token"] == reply["poll_token"]
    assert client.get("/api/sessions/s-1/state", headers=auth(reply["browser_token"])).status_code == 200
