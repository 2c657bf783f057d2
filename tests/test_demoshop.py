"""The demo shop pages: on outside production, off in production unless
enabled, and a confirmation only for the browser whose session it is."""
from __future__ import annotations

import json
import re
import secrets

from callbacks import create_app
from callbacks.demoshop.views import COOKIE
from callbacks.klarna.client import KlarnaError
from callbacks.klarna.lifecycle import Lifecycle
from callbacks.rules.checkout import Decision, new_state
from callbacks.rules.pricing import CartItem
from callbacks.rules.state import EventType
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
    for name in ("KCO_CALLBACK_SECRET", "KCO_API_KEY", "KLARNA_PASSWORD",  # production's rule
                 "KLARNA_NA_PASSWORD"):  # the example shop's North America account
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


def _session_of(page: str) -> str:
    config = json.loads(re.search(r'<script type="application/json" id="kco-config">(.*?)</script>',
                                  page, re.S).group(1))
    return config["session"]


def _with_order(app, sid: str, order_id: str) -> None:
    """The session as a checkout load leaves it: a cart and its Klarna order."""
    kco = app.extensions["kco"]
    kco.store.apply(sid, lambda tx: Decision(
        {**new_state(kco.shop, sid, items=[CartItem(TSHIRT, 1)]),
         "klarna": {"order_id": order_id, "status": "checkout_incomplete"}},
        EventType.ORDER_CREATED, {"order_id": order_id}))


def test_the_confirmation_is_only_for_its_own_browser(client, app, monkeypatch):
    first = client.get("/")
    sid = _session_of(first.get_data(as_text=True))
    _with_order(app, sid, "o-1")
    monkeypatch.setattr(Lifecycle, "client", property(lambda self: Unreachable()))
    stranger = app.test_client()
    assert stranger.get(f"/confirmation?session={sid}&order_id=o-1").status_code == 403
    # The session id is in Klarna's URLs; a cookie made of it opens nothing.
    stranger.set_cookie(COOKIE, sid)
    leaked = stranger.get(f"/confirmation?session={sid}&order_id=o-1")
    assert leaked.status_code == 403
    assert "browser_token" not in leaked.get_data(as_text=True)
    mine = client.get(f"/confirmation?session={sid}&order_id=o-1")
    assert mine.status_code == 200 and _session_of(mine.get_data(as_text=True)) == sid
    assert client.get("/confirmation?order_id=o-1").status_code == 200  # the cookie says whose
    assert client.get(f"/confirmation?session={sid}&order_id=o-2").status_code == 404


def test_the_shop_cookie_is_signed_http_only_and_same_site(client, app_factory, sqlite_url):
    response = client.get("/")
    sid = _session_of(response.get_data(as_text=True))
    cookie = response.headers["Set-Cookie"]
    value = cookie.split("=", 1)[1].split(";", 1)[0]
    assert value != sid and sid not in value
    attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "httponly" in attributes and "samesite=lax" in attributes and "secure" not in attributes
    forged = app_factory(DATABASE_URL=sqlite_url).test_client()
    forged.set_cookie(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert _session_of(forged.get("/").get_data(as_text=True)) != sid
    https = app_factory(DATABASE_URL=sqlite_url, KCO_PUBLIC_URL="https://shop.example").test_client()
    assert "secure" in [a.strip().lower() for a in https.get("/").headers["Set-Cookie"].split(";")]


def test_shop_again_starts_a_new_session(client):
    sid = _session_of(client.get("/").get_data(as_text=True))
    again = client.post("/shop-again")
    assert again.status_code == 303 and again.headers["Location"].endswith("/")
    assert _session_of(client.get("/").get_data(as_text=True)) != sid


def test_a_first_visit_asks_for_nothing_that_is_missing(client):
    """The page carries its state (null for a new shopper), so its script need not ask for a
    session that does not exist yet (a 404 in the console and, once, an error banner)."""
    page = client.get("/").get_data(as_text=True)
    config = json.loads(re.search(r'id="kco-config">(.*?)</script>', page, re.S).group(1))
    assert config["state"] is None


def test_pages_carry_no_inline_script_and_a_nonce(client):
    response = client.get("/checkout")
    page = response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert 'type="application/json"' in tag or (f'nonce="{nonce}"' in tag and "src=" in tag), tag
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers


class Unreachable:
    def read_order(self, order_id):
        raise KlarnaError(503, "SERVICE_UNAVAILABLE", ["sandbox not running"])
