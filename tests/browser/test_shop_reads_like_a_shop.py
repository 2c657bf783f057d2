"""The demo shop as a shopper reads it, not as its developer would: a checkout that cannot load
says so in the shop's language and offers to try again; after a purchase the header shows an empty
cart; the sandbox's iframe names countries instead of printing codes, and asks for a state
only for a US address — in words, never the sandbox's raw problem text."""
from __future__ import annotations

import requests
from playwright.sync_api import expect

from tests.browser.shopper import TSHIRT, add, move_to_country, open_checkout, session_of


def at_klarna(sandbox_url: str, order_id: str) -> dict:
    return requests.get(f"{sandbox_url}/_sandbox/orders/{order_id}", timeout=10).json()


def test_a_checkout_that_cannot_load_says_so_and_try_again_loads_it(shop, sandbox_url):
    add(shop, TSHIRT)
    # Klarna does not answer the create: every attempt of this load gets a 503.
    faults = f"{sandbox_url}/_sandbox/faults"
    requests.post(faults, json={"endpoint": "checkout.create_order", "status": 503, "count": 100},
                  timeout=10).raise_for_status()
    try:
        shop.locator('a[data-kco-go="checkout"]').first.click()
        shop.wait_for_url("**/checkout")
        failed = shop.locator('[data-kco="checkout-failed"]')
        expect(failed).to_have_text("Kassan kunde inte laddas.")  # the SE shop speaks Swedish
        retry = shop.locator('[data-kco="retry-checkout"]')
        expect(retry).to_have_text("Försök igen")
        # One message, in words: no banner repeating it with the service's codes and reasons.
        expect(shop.locator('[data-kco="error"]')).to_be_hidden()
        assert "503" not in shop.locator("main").inner_text()
        assert shop.frame_locator("#klarna-checkout-iframe").locator("body").count() == 0
    finally:
        requests.delete(faults, timeout=10).raise_for_status()
    retry.click()
    expect(failed).to_have_count(0)
    expect(retry).to_have_count(0)  # the message goes with its button
    frame = shop.frame_locator("#klarna-checkout-iframe")
    amount = shop.locator('[data-kco="order-amount"]').first
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute(
        "data-value", amount.get_attribute("data-value") or "")
    expect(frame.locator('button[data-sandbox="buy"]')).to_be_enabled()


def test_after_the_purchase_the_header_shows_an_empty_cart(shop, api, sandbox_url):
    add(shop, TSHIRT, times=2)
    expect(shop.locator('[data-kco="count"]').first).to_have_text("2")
    frame = open_checkout(shop)
    paid = int(shop.locator('[data-kco="order-amount"]').first.get_attribute("data-value") or 0)
    assert paid > 0
    frame.locator('button[data-sandbox="buy"]').click()
    shop.wait_for_url("**/confirmation?*")
    expect(shop.locator('[data-kco="paid"]')).to_be_visible()
    # The confirmation states what was paid; the header's cart is empty: nothing left to pay.
    expect(shop.locator('[data-kco="paid-amount"]')).not_to_be_empty()
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", "0")
    expect(shop.locator('[data-kco="count"]').first).to_have_text("0")
    expect(shop.locator('[data-kco="total"]')).to_have_attribute("data-value", str(paid))  # the lines' total
    order_id = api("GET", f"/api/sessions/{session_of(shop)}/state").json()["klarna"]["order_id"]
    done = at_klarna(sandbox_url, order_id)
    assert done["order"]["order_amount"] == paid
    assert done["displayed_at_purchase"] == {"order_amount": paid, "purchase_currency": "SEK"}
    # Klarna's thank-you frame names the billing country, in the order's language.
    billed = shop.frame_locator("#klarna-checkout-iframe").locator('[data-sandbox="billed-to"]')
    expect(billed).to_have_text("Sverige")
    expect(billed).to_have_attribute("data-value", "SE")


def test_the_iframe_names_countries_in_its_language(shop, api):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    country = frame.locator('[data-sandbox="purchase-country"]')
    expect(country).to_have_text("Sverige")  # sv-SE
    expect(country).to_have_attribute("data-value", "SE")
    se_order = api("GET", f"/api/sessions/{session_of(shop)}/state").json()["klarna"]["order_id"]
    move_to_country(frame, "US", se_order, region="CA", postal_code="94103")
    expect(country).to_have_text("United States")  # the US order speaks en-US
    expect(country).to_have_attribute("data-value", "US")
    expect(frame.locator('select[name="billing_country"] option:checked')).to_have_text("United States")


def test_the_state_is_asked_for_only_in_the_us_and_in_words(shop, api, sandbox_url):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    region = frame.locator('input[name="region"]')
    expect(region).to_be_hidden()  # a Swedish address has no state
    # A value left in the hidden field (an autofill, say) is not sent with a Finnish address.
    region.evaluate("el => { el.value = 'CA'; }")
    frame.locator('select[name="billing_country"]').select_option("FI")
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("EUR")
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("EUR")
    expect(frame.locator("body")).to_have_attribute("data-busy", "false")
    expect(region).to_be_hidden()
    fi_order = api("GET", f"/api/sessions/{session_of(shop)}/state").json()["klarna"]["order_id"]
    sent = at_klarna(sandbox_url, fi_order)["order"]["billing_address"]
    assert sent["country"] == "FI" and "region" not in sent

    # The US: the state field appears, and without a state the iframe says so in its words.
    frame.locator('select[name="billing_country"]').select_option("US")
    expect(region).to_be_visible()
    message = frame.locator('[data-sandbox="message"]')
    expect(message).to_have_attribute("data-problem", "Bad value: billing_address.region")
    expect(frame.locator('[data-sandbox="locale"]')).to_have_text("sv-FI")  # Swedish kept in FI
    expect(message).to_have_text("Ange delstaten.")
    expect(frame.locator('button[data-sandbox="buy"]')).to_be_disabled()
    region.fill("CA")
    frame.locator('input[name="postal_code"]').fill("94103")
    frame.locator('button[data-sandbox="save-address"]').click()
    body = frame.locator("body")
    expect(body).not_to_have_attribute("data-order-id", fi_order)  # the US order, at its account
    expect(body).to_have_attribute("data-busy", "false")
    expect(region).to_be_visible()
    expect(region).to_have_value("CA")
    expect(message).to_be_hidden()
