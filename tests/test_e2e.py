"""The service under gunicorn, as the Procfile runs it, called over real HTTP."""
from __future__ import annotations

import requests

from callbacks.rules import amounts as rules
from callbacks.rules.shop import load_shop
from callbacks.web.tokens import callback_token

from .payloads import goods_line, shipping_service_body, validation_body
from .servers import gunicorn

SECRET = "e2e-secret"


def test_callbacks_over_http_under_gunicorn(database_url):
    shop = load_shop()
    env = {"DATABASE_URL": database_url, "KCO_CALLBACK_SECRET": SECRET, "KCO_API_KEY": "e2e-key"}
    token = callback_token(SECRET, "e2e-1")
    with gunicorn(env) as base:
        url = f"{base}/kco/%s?session=e2e-1&order_id=ord-1&token={token}"
        lines = [goods_line(shop, "TSHIRT-BLUE-M", 2, "SEK", 2500), goods_line(shop, "BOOK-TRAIL-GUIDE", 1, "SEK", 600)]
        r = requests.post(url % "address_update", json=shipping_service_body(lines), timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        assert rules.shipping_service_reply_errors(r.json()) == []

        r = requests.post(url % "country_change", json=shipping_service_body(lines, country="FI"), timeout=10)
        fi = r.json()
        assert r.status_code == 200 and fi["purchase_currency"] == "EUR" and fi["locale"] == "sv-FI"

        body = validation_body(fi["order_lines"], currency="EUR", country="FI", locale="sv-FI",
                               order_amount=fi["order_amount"], order_tax_amount=fi["order_tax_amount"],
                               order_id="ord-1")  # the URL's: a body naming another order is refused
        assert requests.post(url % "validation", json=body, timeout=10).status_code == 200

        bad = requests.post((url % "address_update").replace(token, "nope"), json={}, timeout=10)
        assert bad.status_code == 401 and bad.json()["code"] == 401
        big = requests.post(url % "address_update", data=b"x" * (1024 * 1024 + 1),
                            headers={"Content-Type": "application/json"}, timeout=10)
        assert big.status_code == 413
