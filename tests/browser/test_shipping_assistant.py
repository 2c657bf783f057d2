"""A purchase in the example shop's Shipping Assistant market (AT) and a business purchase in its
B2B market (SE), clicked through the demo shop and the sandbox's iframe: Klarna prices AT's
shipping and its line and the TMS's reference reach `order_completed`; a business buys in SE and
`order_completed` says so, and nothing else of the business (docs/design.md §5.8, §4.2)."""
from __future__ import annotations

import requests
from playwright.sync_api import Page, expect

from tests.browser.shopper import TSHIRT, add, checkout_frame, choose_market, completed, session_of

BUY = 'button[data-sandbox="buy"]'


def test_a_shipping_assistant_purchase_completes_with_klarnas_line_and_the_tms_reference(shop, api, sandbox_url):
    add(shop, TSHIRT, times=2)
    choose_market(shop, "AT", "EUR")
    sid = session_of(shop)
    frame = checkout_frame(shop)
    expect(frame.locator('[data-sandbox="shipping"]')).to_have_attribute("data-shipping-assistant", "tms")
    fee = frame.locator('[data-sandbox="order-line"][data-type="shipping_fee"]')
    expect(fee).to_have_attribute("data-reference", "tms-post-at-home")  # Klarna's, preselected
    goods = api("GET", f"/api/sessions/{sid}/state").json()["order"]["order_amount"]
    assert goods == 2 * 1990  # ours: goods only
    frame.locator('input[name="shipping_option"][value="tms-dhl-at-shop"]').check()
    expect(fee).to_have_attribute("data-reference", "tms-dhl-at-shop")
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", str(goods + 390))
    frame.locator(BUY).click()
    shop.wait_for_url("**/confirmation?*")

    event = completed(api, sid)
    order_id = event["data"]["order_id"]
    at_klarna = requests.get(f"{sandbox_url}/_sandbox/orders/{order_id}", timeout=10).json()
    assert at_klarna["status"] == "checkout_complete"
    assert "shipping_option_update" not in at_klarna["merchant_urls"]
    lines = at_klarna["order"]["order_lines"]
    assert [(ln["type"], ln["reference"]) for ln in lines] == [("physical", TSHIRT),
                                                                ("shipping_fee", "tms-dhl-at-shop")]
    assert event["data"]["order_amount"] == goods + 390 == at_klarna["order"]["order_amount"]
    option = event["data"]["selected_shipping_option"]
    tms = at_klarna["order"]["selected_shipping_option"]["tms_reference"]
    assert option == {"id": "tms-dhl-at-shop", "name": "DHL Paket – PaketShop", "price": 390,
                      "tms_reference": tms,
                      "delivery_details": {"carrier": "DHL", "class": "economy",
                                           "product": {"name": "DHL Paket", "identifier": "DHL-PS"},
                                           "pickup_location": {"id": "AT-1010-117",
                                                               "name": "DHL Paketshop Wien Graben"}}}
    log = requests.get(f"{sandbox_url}/_sandbox/orders/{order_id}/log", timeout=10).json()
    assert "shipping_option_update" not in [e["callback"] for e in log["entries"]]
    types = [e["type"] for e in api("GET", f"/api/sessions/{sid}/events").json()["events"]]
    assert "validation_passed" in types and "validation_failed" not in types
    assert "order_mismatch" not in types  # the paid check expects Klarna's line too


def test_a_business_buys_in_the_b2b_market(shop, api, sandbox_url):
    add(shop, TSHIRT)
    sid = session_of(shop)
    frame = checkout_frame(shop)
    expect(frame.locator('[data-sandbox="customer-type"]')).to_be_visible()
    frame.locator('select[name="customer_type"]').select_option("organization")
    frame.locator('input[name="organization_name"]').fill("Fjällvik Testbolaget AB")
    frame.locator(BUY).click()
    shop.wait_for_url("**/confirmation?*")
    event = completed(api, sid)
    assert event["data"]["customer"] == {"type": "organization"}
    assert "Fjällvik Testbolaget" not in str(event) and "556036" not in str(event)
    at_klarna = requests.get(f"{sandbox_url}/_sandbox/orders/{event['data']['order_id']}", timeout=10).json()
    assert at_klarna["order"]["customer"]["type"] == "organization"
    assert at_klarna["order"]["billing_address"]["organization_name"] == "Fjällvik Testbolaget AB"
