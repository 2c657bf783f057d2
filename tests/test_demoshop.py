"""The demo shop pages (issue 11 item 3): on outside production, off in production unless
enabled, and a confirmation only for the browser whose session it is."""
from __future__ import annotations

import secrets

from callbacks import create_app
from config import ProductionConfig

TSHIRT = "TSHIRT-BLUE-M"


def test_pages_answer_in_development(client):
    for path in ("/", "/cart", "/checkout", "/terms", "/static/kco-sync.js", "/static/kco-sync.mjs"):
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get("/").get_data(as_text=True)
    assert "KCO_API_KEY" not in page and "test-api-key" not in page
    assert '"browser_token"' in page and 'data-kco-go="checkout"' in page


def test_off_in_production_unless_enabled(monkeypatch, sqlite_url):
    for name in ("KCO_CALLBACK_SECRET", "KCO_API_KEY", "KLARNA_PASSWORD"):  # production's rule
        monkeypatch.setenv(name, secrets.token_urlsafe(32))
    monkeypatch.setenv("KLARNA_API_URL", "https://api.klarna.com")
    monkeypatch.setenv("KCO_PUBLIC_URL", "https://shop.example")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("KCO_AUTO_MIGRATE", "0")
    assert ProductionConfig().KCO_SHOP_PAGES is False
    app = create_app(ProductionConfig())
    assert app.test_client().get("/").status_code == 404
    assert app.test_client().get("/static/kco-sync.js").status_code == 200  # for merchant pages
    monkeypatch.setenv("KCO_SHOP_PAGES", "1")
    assert ProductionConfig().KCO_SHOP_PAGES is True


def test_the_confirmation_is_only_for_its_own_browser(client, app, api_headers):
    first = client.get("/")
    sid = first.headers["Set-Cookie"].split("=", 1)[1].split(";", 1)[0]
    client.put(f"/api/sessions/{sid}/cart", headers=api_headers,
               json={"items": [{"reference": TSHIRT, "quantity": 1}]})
    stranger = app.test_client()
    leaked = stranger.get(f"/confirmation?session={sid}&order_id=o-1")
    assert leaked.status_code == 403
    assert client.get(f"/confirmation?session={sid}&order_id=o-1").status_code == 404  # no such order
