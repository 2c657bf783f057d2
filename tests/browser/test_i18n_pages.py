"""The demo shop's language in Chromium: the server renders the page in the
market's language, and shop.js's own texts follow a market switch without a reload."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.shopper import TSHIRT, add, choose_market, open_checkout, session_of
from tests.browser.test_what_you_see import BUY, assert_charged_as_shown, order_id_of


def test_the_script_texts_follow_the_market_and_the_next_page_is_in_its_language(shop, service):
    expect(shop.locator("h1")).to_have_text("Produkter")  # the example's default market: SE, sv-SE
    expect(shop.locator(f'[data-kco-add="{TSHIRT}"]')).to_have_text("Lägg i varukorgen")
    add(shop, TSHIRT)
    choose_market(shop, "DE", "EUR")
    # sv is not spoken in DE: the market's own locale (de-DE) is picked, and the buttons follow.
    expect(shop.locator(f'[data-kco-add="{TSHIRT}"]')).to_have_text("In den Warenkorb")
    shop.goto(service + "/cart")
    expect(shop.locator("h1")).to_have_text("Warenkorb")
    expect(shop.locator("html")).to_have_attribute("lang", "de")


def test_klarnas_iframe_and_the_shipping_speak_the_shoppers_german(shop, api, sandbox_url):
    """A German-locale order: the sandbox's iframe has German labels, and the shop file's
    shipping names and descriptions in German (docs/design.md §4); a purchase charges what it
    showed."""
    add(shop, TSHIRT)
    choose_market(shop, "DE", "EUR")
    frame = open_checkout(shop)
    expect(frame.locator("html")).to_have_attribute("lang", "de")
    expect(frame.locator('[data-sandbox="locale"]')).to_have_text("de-DE")
    expect(frame.locator(BUY)).to_have_text("Kaufen")
    expect(frame.locator('button[data-sandbox="save-address"]')).to_have_text("Adresse speichern")
    expect(frame.locator('[data-sandbox="billing"] h2')).to_have_text("Rechnungsadresse")
    expect(frame.locator('select[name="billing_country"] option:checked')).to_have_text("Deutschland")
    home = frame.locator('label.option', has=frame.locator('input[name="shipping_option"][value="dhl-paket"]'))
    expect(home).to_contain_text("DHL Paket — Lieferung nach Hause, 1–2 Werktage.")
    frame.locator(BUY).click()
    shop.wait_for_url("**/confirmation?*")
    charged = assert_charged_as_shown(sandbox_url, order_id_of(api, session_of(shop)))
    assert charged["purchase_currency"] == "EUR"


def test_the_iframe_changes_language_with_the_order_it_resumes_with(shop, api):
    """The back end moves an open Swedish checkout to Germany: the iframe resumes with the
    order's new locale, and its own words follow (no reload of the iframe)."""
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    expect(frame.locator(BUY)).to_have_text("Köp")
    expect(frame.locator('[data-sandbox="shipping-address"] h2')).to_have_text("Leveransadress")
    loaded = shop.frame(name="klarna-checkout-iframe").evaluate("() => performance.timeOrigin")
    reply = api("PUT", f"/api/sessions/{session_of(shop)}/market", json={"country": "DE"})
    assert reply.status_code == 200, reply.text
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("EUR")
    expect(frame.locator('[data-sandbox="locale"]')).to_have_text("de-DE")
    expect(frame.locator(BUY)).to_have_text("Kaufen")
    expect(frame.locator('[data-sandbox="shipping-address"] h2')).to_have_text("Lieferadresse")
    expect(frame.locator("html")).to_have_attribute("lang", "de")
    assert shop.frame(name="klarna-checkout-iframe").evaluate("() => performance.timeOrigin") == loaded
