"""The support console in Chromium, as support staff use it: sign in, find the shopper's
session, read one timeline of its checkout — with JavaScript off, since the console needs none."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import SUPPORT_PASSWORD
from tests.browser.shopper import TSHIRT, add, enter_address, open_checkout, session_of


def test_support_finds_a_shoppers_session_and_reads_its_timeline(shop, service, browser):
    add(shop, TSHIRT, 2)
    frame = open_checkout(shop)
    enter_address(frame, "FI", postal_code="00100")
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("EUR")
    sid = session_of(shop)

    context = browser.new_context(java_script_enabled=False,
                                  http_credentials={"username": "support", "password": SUPPORT_PASSWORD})
    try:
        console = context.new_page()
        console.goto(service + "/support/")
        console.fill("input[name=q]", sid)
        console.keyboard.press("Enter")           # a plain GET form: no script needed
        console.get_by_role("link", name=sid).click()
        timeline = console.locator("table").last
        # Every step of the checkout, in one place: what the page wrote, what we asked Klarna,
        # what Klarna called back with, and the events the storefront saw.
        for step in ("PUT cart", "create_order", "country_change", "cart_updated", "market_changed"):
            expect(timeline).to_contain_text(step)
        expect(console.locator("body")).not_to_contain_text("customer@example.com")  # scrubbed
    finally:
        context.close()


def test_the_console_refuses_a_wrong_password(service, browser):
    context = browser.new_context(http_credentials={"username": "support", "password": "wrong-password"})
    try:
        response = context.new_page().goto(service + "/support/")
        assert response.status == 401
    finally:
        context.close()
