"""The sandbox's checkout iframe over Flask's test client: the snippet points at it, its page
carries the hooks browser tests use, and its actions run the shopper flow (the merchant's
callbacks, judged as Klarna judges them) with Klarna's error shape for bad input."""
from __future__ import annotations

import json
import re

import pytest

from sandbox import create_sandbox
from sandbox.replies import Reply
from tests.sandbox_fixtures import CREDENTIALS, sample_order

SHIPPING_OPTIONS = [
    {"id": "pickup", "name": "Pick-up point", "price": 0, "tax_amount": 0, "tax_rate": 0,
     "preselected": True},
    {"id": "home", "name": "Home delivery", "price": 4900, "tax_amount": 980, "tax_rate": 2500},
]
HOOKS = ('select name="billing_country"', 'select name="shipping_country"', 'input name="region"',
         'input name="postal_code"', 'data-sandbox="save-address"', 'data-sandbox="buy"',
         'data-suspended="false"', 'data-sandbox="order-amount"', 'data-sandbox="currency"')


@pytest.fixture
def client():
    app = create_sandbox({"SANDBOX_USERNAME": CREDENTIALS[0], "SANDBOX_PASSWORD": CREDENTIALS[1],
                          "SANDBOX_PUBLIC_URL": "http://sandbox.test:8001"})
    return app.test_client()


def create(client, **overrides) -> dict:
    order = sample_order(**overrides)
    resp = client.post("/checkout/v3/orders", json=order, auth=CREDENTIALS)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def frame_url(order_id: str, path: str = "") -> str:
    return f"/sandbox/checkout/{order_id}{path}"


def state_of(page_html: str) -> dict:
    match = re.search(r'<script type="application/json" id="sandbox-order">(.*?)</script>', page_html, re.S)
    assert match, page_html
    return json.loads(match.group(1))


def assert_klarna_error(resp, status: int, code: str, text: str = "") -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error_code"] == code and text in " ".join(body["error_messages"])


def test_snippet_embeds_the_checkout_frame_and_later_the_confirmation(client):
    order = create(client)
    order_id = order["order_id"]
    assert (f'<iframe id="klarna-checkout-iframe" name="klarna-checkout-iframe" '
            f'src="http://sandbox.test:8001/sandbox/checkout/{order_id}/frame"') in order["html_snippet"]
    assert '"origin":"http://sandbox.test:8001"' in order["html_snippet"]
    client.post(f"/_sandbox/orders/{order_id}/complete", json={})
    read = client.get(f"/checkout/v3/orders/{order_id}", auth=CREDENTIALS).get_json()
    assert f"/sandbox/checkout/{order_id}/confirmation" in read["html_snippet"]


def test_frame_page_has_the_hooks_and_the_order_as_the_shopper_sees_it(client):
    order_id = create(client, shipping_options=SHIPPING_OPTIONS, billing_countries=["SE", "FI", "US"])["order_id"]
    resp = client.get(frame_url(order_id, "/frame"))
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert "X-Frame-Options" not in resp.headers  # any merchant page may embed it
    page = resp.get_data(as_text=True)
    for hook in HOOKS:
        assert hook in page, hook
    state = state_of(page)
    assert state["billing_countries"] == [  # named in the order's language (sv-SE)
        {"code": "SE", "alpha3": "swe", "name": "Sverige"}, {"code": "FI", "alpha3": "fin", "name": "Finland"},
        {"code": "US", "alpha3": "usa", "name": "USA"}]
    assert [c["code"] for c in state["shipping_countries"]] == ["SE", "FI"]
    assert {"code": "CA", "name": "California"} in state["regions"]["US"]
    assert state["selected_shipping_option"] == "pickup"
    assert (state["purchase_currency"], state["order_amount"]) == ("SEK", 62700)
    assert "merchant_urls" not in state and "merchant_data" not in state
    assert client.get("/sandbox/static/frame.js").status_code == 200


def test_unknown_order_gets_a_404_page_and_klarna_errors(client):
    resp = client.get(frame_url("no-such-order", "/frame"))
    assert resp.status_code == 404 and "did not find order" in resp.get_data(as_text=True)
    assert_klarna_error(client.get(frame_url("no-such-order", "/order")), 404, "NOT_FOUND")
    assert_klarna_error(client.post(frame_url("no-such-order", "/address"), json={}), 404, "NOT_FOUND")


def test_address_without_callback_urls_holds_and_the_order_shows_it(client):
    order_id = create(client)["order_id"]
    billing = {"given_name": "Matti", "family_name": "Meikäläinen", "postal_code": "00100", "country": "fi"}
    resp = client.post(frame_url(order_id, "/address"), json={"billing_address": billing})
    body = resp.get_json()
    assert resp.status_code == 200 and body["outcome"] == "applied"
    assert body["order"]["billing_address"]["country"] == "FI"
    assert body["order"]["shipping_address"]["postal_code"] == "00100"
    log = client.get(f"/_sandbox/orders/{order_id}/log").get_json()
    assert [(e["callback"], e["outcome"]) for e in log["entries"]] == [("country_change", "no_url")]


def test_merchant_refusal_is_what_the_shopper_sees_and_changes_nothing(client, monkeypatch):
    urls = {**sample_order()["merchant_urls"], "country_change": "http://127.0.0.1:9/kco/country_change"}
    order_id = create(client, merchant_urls=urls)["order_id"]
    refusal = {"error_type": "unsupported_shipping_address", "error_text": "We do not ship to Finland"}
    sent = []
    monkeypatch.setattr("sandbox.shopper.post", lambda url, body, timeout: sent.append(url) or
                        Reply(400, refusal, json.dumps(refusal)))
    resp = client.post(frame_url(order_id, "/address"), json={"billing_address": {"country": "FI"}})
    body = resp.get_json()
    assert sent == ["http://127.0.0.1:9/kco/country_change"]
    assert (body["outcome"], body["shopper_sees"]) == ("error_shown", "We do not ship to Finland")
    assert body["order"]["prefilled"] is False and body["order"]["billing_address"]["country"] == "SE"


def test_us_address_needs_a_state_and_countries_must_be_allowed(client):
    order_id = create(client, billing_countries=["SE", "US"], shipping_countries=["SE", "US"])["order_id"]
    us = {"country": "US", "postal_code": "94105", "city": "San Francisco"}
    assert_klarna_error(client.post(frame_url(order_id, "/address"), json={"billing_address": us}),
                        400, "BAD_VALUE", "Bad value: billing_address.region")
    resp = client.post(frame_url(order_id, "/address"), json={"billing_address": {**us, "region": "CA"}})
    assert resp.get_json()["order"]["shipping_address"]["region"] == "CA"
    assert_klarna_error(client.post(frame_url(order_id, "/address"), json={"billing_address": {"country": "DE"}}),
                        400, "BAD_VALUE", "billing_address.country")


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "null"])
def test_bad_bodies_get_klarnas_error_not_a_500(client, body):
    order_id = create(client)["order_id"]
    for action in ("/address", "/shipping_option", "/suspend"):
        resp = client.post(frame_url(order_id, action), data=body, content_type="application/json")
        assert resp.status_code in (200, 400), (action, resp.status_code)
        assert resp.is_json


def test_shipping_option_without_an_update_url_puts_its_cost_in_the_cart(client):
    order_id = create(client, shipping_options=SHIPPING_OPTIONS)["order_id"]
    assert_klarna_error(client.post(frame_url(order_id, "/shipping_option"), json={"id": "drone"}),
                        400, "BAD_VALUE", "shipping_option.id")
    body = client.post(frame_url(order_id, "/shipping_option"), json={"id": "home"}).get_json()
    order = body["order"]
    assert order["selected_shipping_option"] == "home"
    assert order["order_amount"] == 59800 + 4900
    assert [line["reference"] for line in order["order_lines"] if line["type"] == "shipping_fee"] == ["home"]


def test_purchase_completes_and_names_the_confirmation_page(client, monkeypatch):
    monkeypatch.setattr("sandbox.shopper.post", lambda url, body, timeout: Reply(200, {}, "{}"))
    order_id = create(client)["order_id"]
    body = client.post(frame_url(order_id, "/purchase"), json={}).get_json()
    assert body["outcome"] == "approved" and body["order"]["status"] == "checkout_complete"
    assert body["redirect_to"] == f"http://127.0.0.1:8000/confirmation?klarna_order_id={order_id}"
    assert_klarna_error(client.post(frame_url(order_id, "/purchase"), json={}), 409, "CONFLICT")
    page = client.get(frame_url(order_id, "/confirmation")).get_data(as_text=True)
    assert "Tack för ditt köp" in page and f'data-value="{62700}"' in page  # the order's sv-SE


@pytest.mark.parametrize("locale, lang, buy, save, heading, country", [
    ("de-DE", "de", "Kaufen", "Adresse speichern", "Rechnungsadresse", "Schweden"),
    ("de-AT", "de", "Kaufen", "Adresse speichern", "Rechnungsadresse", "Schweden"),
    ("sv-FI", "sv", "Köp", "Spara adress", "Faktureringsadress", "Sverige"),
    ("fi-FI", "fi", "Osta", "Tallenna osoite", "Laskutusosoite", "Ruotsi"),
    ("nb-NO", "nb", "Kjøp", "Lagre adresse", "Fakturaadresse", "Sverige"),
    ("no-NO", "nb", "Kjøp", "Lagre adresse", "Fakturaadresse", "Sverige"),
    ("da-DK", "da", "Køb", "Gem adresse", "Faktureringsadresse", "Sverige"),
    ("nl-NL", "nl", "Kopen", "Adres opslaan", "Factuuradres", "Zweden"),
    ("fr-FR", "fr", "Acheter", "Enregistrer l'adresse", "Adresse de facturation", "Suède"),
    ("en-GB", "en", "Buy", "Save address", "Billing address", "Sweden"),
    ("it-CH", "en", "Buy", "Save address", "Billing address", "Sweden"),  # no table: English
])
def test_the_frame_speaks_the_orders_language(client, locale, lang, buy, save, heading, country):
    from markupsafe import escape
    order_id = create(client, locale=locale)["order_id"]
    page = client.get(frame_url(order_id, "/frame")).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert f'data-sandbox="buy" data-t="buy">{buy}</button>' in page
    assert f'data-t="save_address">{escape(save)}</button>' in page
    assert f'<h2 data-t="billing_address">{heading}</h2>' in page
    state = client.get(frame_url(order_id, "/order")).get_json()
    assert (state["language"], state["texts"]["buy"]) == (lang, buy)  # what a resume re-labels with
    assert state["billing_countries"][0] == {"code": "SE", "alpha3": "swe", "name": country}


def test_every_language_of_the_frame_has_every_text():
    from sandbox.texts import EN, TEXTS
    assert {lang: sorted(set(EN) - set(words)) for lang, words in TEXTS.items() if set(EN) - set(words)} == {}
    assert {lang: sorted(set(words) - set(EN)) for lang, words in TEXTS.items() if set(words) - set(EN)} == {}


def test_suspended_checkout_refuses_the_shopper_until_resumed(client):
    order_id = create(client)["order_id"]
    assert client.post(frame_url(order_id, "/suspend"), json={"auto_resume": False}).get_json()["suspended"]
    assert client.get(frame_url(order_id, "/order")).get_json()["suspended"] is True
    assert_klarna_error(client.post(frame_url(order_id, "/address"), json={"billing_address": {"country": "FI"}}),
                        409, "SUSPENDED")
    client.post(f"/checkout/v3/orders/{order_id}", auth=CREDENTIALS, json={"purchase_currency": "EUR"})
    resumed = client.post(frame_url(order_id, "/resume")).get_json()
    assert (resumed["suspended"], resumed["purchase_currency"]) == (False, "EUR")
    assert client.post(frame_url(order_id, "/address"),
                       json={"billing_address": {"country": "FI"}}).get_json()["outcome"] == "applied"


def test_a_purchase_records_what_the_frame_displayed(client, monkeypatch):
    monkeypatch.setattr("sandbox.shopper.post", lambda url, body, timeout: Reply(200, {}, "{}"))
    order_id = create(client)["order_id"]
    shown = {"order_amount": 62700, "purchase_currency": "SEK"}
    assert client.post(frame_url(order_id, "/purchase"), json={"displayed": shown}).status_code == 200
    assert client.get(f"/_sandbox/orders/{order_id}").get_json()["displayed_at_purchase"] == shown
    other = create(client)["order_id"]  # completed through the controls: nothing was shown
    assert client.post(f"/_sandbox/orders/{other}/purchase", json={}).status_code == 200
    assert client.get(f"/_sandbox/orders/{other}").get_json()["displayed_at_purchase"] is None
