"""The demo shop in Chromium: the page, kco-sync.js and the sandbox's iframe together."""
from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from tests.browser.shopper import (
    COFFEE,
    MUG,
    TSHIRT,
    add,
    assert_suspended_around,
    enter_address,
    move_to_country,
    open_checkout,
    session_of,
)


def test_products_in_the_cart_show_in_the_checkout_iframe(shop, api):
    add(shop, TSHIRT, 2)
    add(shop, MUG)
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("SEK")
    frame = open_checkout(shop)
    state = api("GET", f"/api/sessions/{session_of(shop)}/state").json()
    amount = str(state["order"]["order_amount"])
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", amount)
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", amount)
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("SEK")
    expect(shop.locator(f'[data-kco-qty="{TSHIRT}"]')).to_have_value("2")


def test_billing_country_finland_in_the_iframe_reprices_the_page_in_euro(shop, api):
    add(shop, TSHIRT)
    add(shop, COFFEE)
    sek = int(shop.locator('[data-kco="order-amount"]').first.get_attribute("data-value"))
    frame = open_checkout(shop)
    enter_address(frame, "FI", postal_code="00100")
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("EUR")
    expect(shop.locator('[data-kco="locale"]').first).to_have_text(re.compile(r"^(sv|fi|en)-FI$"))
    state = api("GET", f"/api/sessions/{session_of(shop)}/state").json()
    eur = state["order"]["order_amount"]
    assert eur != sek and state["market"]["currency"] == "EUR"
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", str(eur))
    # The page moved Klarna's purchase country itself: suspend → PUT market → resume. The state
    # read above may predate the PUT (the page shows EUR from the address_update already); once
    # Klarna's frame shows FI the PUT, which commits before the order is synced, is done.
    expect(frame.locator('[data-sandbox="purchase-country"]')).to_have_attribute("data-value", "FI")
    moved = api("GET", f"/api/sessions/{session_of(shop)}/state").json()
    assert moved["purchase_country"] == "FI" and moved["pending_purchase_country"] is None
    assert_suspended_around(shop, "/market")
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("EUR")


def test_a_quantity_changed_on_the_page_updates_klarnas_order(shop, api, sandbox_url):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    shop.locator(f'[data-kco-qty="{TSHIRT}"]').fill("3")
    shop.locator(f'[data-kco-qty="{TSHIRT}"]').dispatch_event("change")
    state_amount = shop.locator('[data-kco="order-amount"]').first
    expect(state_amount).to_have_attribute("data-value", str(3 * 19900))  # free shipping over 499
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", str(3 * 19900))
    order_id = api("GET", f"/api/sessions/{session_of(shop)}/state").json()["klarna"]["order_id"]
    at_klarna = requests.get(f"{sandbox_url}/_sandbox/orders/{order_id}", timeout=10).json()
    assert at_klarna["order"]["order_amount"] == 3 * 19900
    assert_suspended_around(shop, "/cart")


def test_another_shipping_option_changes_the_totals(shop):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    before = shop.locator('[data-kco="order-amount"]').first.get_attribute("data-value")
    frame.locator('input[name="shipping_option"][value="postnord-home"]').check()
    amount = shop.locator('[data-kco="order-amount"]').first
    expect(amount).to_have_attribute("data-value", str(19900 + 4900))
    assert before == str(19900 + 2900)
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", str(19900 + 4900))


def test_a_us_address_with_a_state_adds_a_sales_tax_line(shop, api):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    se_order = api("GET", f"/api/sessions/{session_of(shop)}/state").json()["klarna"]["order_id"]
    move_to_country(frame, "US", se_order, region="CA", postal_code="94103")  # to the NA account
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("USD")
    tax_row = shop.locator('[data-kco="lines"] tr[data-line-type="sales_tax"]')
    expect(tax_row).to_have_count(1)
    state = api("GET", f"/api/sessions/{session_of(shop)}/state").json()
    tax = next(line for line in state["order"]["order_lines"] if line["type"] == "sales_tax")
    assert tax["total_amount"] > 0 and state["billing_region"] == "CA"
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("USD")


def test_buying_lands_on_the_confirmation_of_the_completed_order(shop, api):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    frame.locator('button[data-sandbox="buy"]').click()
    shop.wait_for_url("**/confirmation?*")
    status = shop.locator('[data-kco="order-status"]')
    expect(status).to_have_attribute("data-value", "checkout_complete")
    expect(status).to_have_attribute("data-acknowledged", "true")  # the feed saw order_acknowledged
    feed = api("GET", f"/api/sessions/{session_of(shop)}/events").json()["events"]
    assert "order_acknowledged" in [e["type"] for e in feed]
    expect(shop.frame_locator("#klarna-checkout-iframe").locator('[data-sandbox="order-id"]')).to_have_text(
        api("GET", f"/api/sessions/{session_of(shop)}/state").json()["klarna"]["order_id"])


def test_a_country_change_to_a_market_on_another_klarna_account_moves_the_iframe_there(shop, api, sandbox_url):
    """The example shop sells to the US through its North America account: the SE order at the
    environment's account cannot follow, so the page gets a new order there and shows its
    iframe, in USD, and the purchase completes at that account."""
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    sid = session_of(shop)
    se_order = api("GET", f"/api/sessions/{sid}/state").json()["klarna"]["order_id"]
    move_to_country(frame, "US", se_order, region="CA", postal_code="94103")
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("USD")
    expect(frame.locator('[data-sandbox="purchase-country"]')).to_have_attribute("data-value", "US")
    state = api("GET", f"/api/sessions/{sid}/state").json()
    us_order = state["klarna"]["order_id"]
    assert us_order != se_order and state["klarna"]["account"] == "north_america"
    expect(frame.locator("body")).to_have_attribute("data-order-id", us_order)  # the new order's iframe
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("USD")
    feed = api("GET", f"/api/sessions/{sid}/events").json()["events"]
    recreated = [e["data"] for e in feed if e["type"] == "order_recreated"]
    assert [(d["reason"], d["old_order_id"], d["order_id"]) for d in recreated] == [
        ("klarna_account", se_order, us_order)]
    at_klarna = requests.get(f"{sandbox_url}/_sandbox/orders/{us_order}", timeout=10).json()
    assert at_klarna["account"] == "sandbox-na" and at_klarna["order"]["purchase_currency"] == "USD"
    left = requests.get(f"{sandbox_url}/_sandbox/orders/{se_order}", timeout=10).json()
    assert left["account"] == "sandbox" and left["status"] == "checkout_incomplete"  # left to expire
    # The new checkout starts with the address typed into the old one (the US order was created
    # with it, docs/design.md §4.1): the shopper buys without typing it again.
    expect(frame.locator('select[name="billing_country"]')).to_have_value("US")
    expect(frame.locator('input[name="region"]')).to_have_value("CA")
    expect(frame.locator('input[name="postal_code"]')).to_have_value("94103")
    expect(shop.locator('[data-kco="lines"] tr[data-line-type="sales_tax"]')).to_have_count(1)
    state = api("GET", f"/api/sessions/{sid}/state").json()
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute(
        "data-value", str(state["order"]["order_amount"]))
    frame.locator('button[data-sandbox="buy"]').click()
    shop.wait_for_url("**/confirmation?*")
    expect(shop.locator('[data-kco="order-status"]')).to_have_attribute("data-acknowledged", "true")
    log = requests.get(f"{sandbox_url}/_sandbox/requests", params={"order_id": us_order}, timeout=10).json()
    assert {r["account"] for r in log["requests"]} == {"sandbox-na"}
