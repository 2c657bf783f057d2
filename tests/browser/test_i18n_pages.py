"""The demo shop's language in Chromium: the server renders the page in the
market's language, and shop.js's own texts follow a market switch without a reload."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.shopper import TSHIRT, add


def test_the_script_texts_follow_the_market_and_the_next_page_is_in_its_language(shop, service):
    expect(shop.locator("h1")).to_have_text("Produkter")  # the example's default market: SE, sv-SE
    expect(shop.locator(f'[data-kco-add="{TSHIRT}"]')).to_have_text("Lägg i varukorgen")
    add(shop, TSHIRT)
    shop.locator('[data-kco="market"]').select_option("DE")
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("EUR")
    # sv is not spoken in DE: the market's own locale (de-DE) is picked, and the buttons follow.
    expect(shop.locator(f'[data-kco-add="{TSHIRT}"]')).to_have_text("In den Warenkorb")
    shop.goto(service + "/cart")
    expect(shop.locator("h1")).to_have_text("Warenkorb")
    expect(shop.locator("html")).to_have_attribute("lang", "de")
