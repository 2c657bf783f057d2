"""Klarna accounts per market, end to end in Chromium with a shop file of the test's own (not
the example): three Klarna accounts — Europe, North America, Oceania — with separate
credentials and markets on each, against a sandbox playing the three (docs/design.md §4.1).

A shopper starts in SE, changes the billing country to US inside Klarna's iframe and buys: the
Klarna order ends at the US account's credentials, in USD, with the address the shopper typed
already filled in; the SE order gets nothing more after the move; nothing reaches the wrong
account (the sandbox's request log names the credentials of every call). On the same shop file:
a Shipping Assistant market (FI, the sandbox's TMS set to a table of this test's own) completes
with Klarna's shipping line and the TMS's reference in `order_completed`, and a business buys in
a B2B market (NO) — both through the Europe account (docs/design.md §4.2, §5.8)."""
from __future__ import annotations

import textwrap

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import pair
from tests.browser.shopper import (
    add,
    checkout_frame,
    choose_market,
    completed,
    enter_address,
    move_to_country,
    open_checkout,
    session_of,
)

# The shop file's own password variables (built, not literal: they are names of this shop
# file, not settings of the service).
EU_VAR, NA_VAR, OC_VAR = ("_".join(("KCO", "BROWSER", r, "PW")) for r in ("EU", "NA", "OC"))
CREDENTIALS = {"eu": ("merchant-eu-4711", "eu-pass-0815"), "na": ("merchant-na-0042", "na-pass-1337"),
               "oc": ("merchant-oc-0099", "oc-pass-2024")}
TEE = "TEE-GREY-L"


def shop_file(sandbox_url: str) -> str:
    return textwrap.dedent(f"""
    [shop]
    name = "Three Regions Outfitters"
    default_country = "SE"

    [klarna_accounts.europe]
    api_url = "{sandbox_url}"
    region = "eu"
    username = "{CREDENTIALS['eu'][0]}"
    password_env = "{EU_VAR}"

    [klarna_accounts.north_america]
    api_url = "{sandbox_url}"
    region = "na"
    username = "{CREDENTIALS['na'][0]}"
    password_env = "{NA_VAR}"

    [klarna_accounts.oceania]
    api_url = "{sandbox_url}"
    region = "oc"
    username = "{CREDENTIALS['oc'][0]}"
    password_env = "{OC_VAR}"

    [markets.SE]
    currency = "SEK"
    locales = ["sv-SE", "en-SE"]
    tax = {{ standard = 2500 }}
    shipping_tax_class = "standard"
    klarna_account = "europe"

    [[markets.SE.shipping]]
    id = "se-post"
    name = "Posten"
    price = {{ SEK = 5900 }}

    [markets.NO]
    currency = "NOK"
    locales = ["nb-NO"]
    tax = {{ standard = 2500 }}
    shipping_tax_class = "standard"
    klarna_account = "europe"

    [markets.NO.options]
    allowed_customer_types = ["person", "organization"]

    [[markets.NO.shipping]]
    id = "no-bring"
    name = "Bring"
    price = {{ NOK = 7900 }}

    [markets.FI]
    currency = "EUR"
    locales = ["fi-FI", "sv-FI"]
    tax = {{ standard = 2550 }}
    shipping_tax_class = "standard"
    klarna_account = "europe"
    shipping_assistant = true

    [[markets.FI.shipping]]
    id = "fi-fallback"
    name = "Posti (fallback)"
    price = {{ EUR = 690 }}

    [markets.US]
    currency = "USD"
    locales = ["en-US"]
    prices_include_tax = false
    sales_tax = {{ default = 0, CA = 725 }}
    tax_shipping = true
    klarna_account = "north_america"

    [[markets.US.shipping]]
    id = "us-ground"
    name = "Ground"
    price = {{ USD = 700 }}

    [markets.AU]
    currency = "AUD"
    locales = ["en-AU"]
    tax = {{ standard = 1000 }}
    shipping_tax_class = "standard"
    klarna_account = "oceania"

    [[markets.AU.shipping]]
    id = "au-post"
    name = "Australia Post"
    price = {{ AUD = 1200 }}

    [products."{TEE}"]
    name = "Grey T-shirt, L"
    tax_class = "standard"
    prices = {{ SEK = 24900, NOK = 25900, EUR = 2490, USD = 2500, AUD = 3900 }}
    shipping_attributes = {{ weight = 240, dimensions = {{ height = 30, width = 200, length = 280 }} }}
    """)

# The sandbox's TMS for the FI market (its own table, not the example shop's AT one).
TMS_FI = [
    {"id": "posti-home", "name": "Posti kotiinkuljetus", "price": {"EUR": 790}, "tax_rate": 2550,
     "shipping_method": "Home", "carrier": "Posti", "class": "standard", "preselected": True},
    {"id": "matkahuolto-point", "name": "Matkahuolto noutopiste", "price": {"EUR": 490},
     "tax_rate": 2550, "shipping_method": "PickUpPoint", "carrier": "Matkahuolto", "class": "economy",
     "product": {"name": "Lähellä-paketti", "identifier": "MH-LP"},
     "pickup_location": {"id": "MH-00100-7", "name": "R-kioski Kamppi",
                         "address": {"street_address": "Urho Kekkosen katu 1", "postal_code": "00100",
                                     "city": "Helsinki", "country": "FI"}}},
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory, browser_type_launch_args):
    """(service URL, sandbox URL) for this module: the service with the three-account shop
    file, the sandbox with the three accounts (each in its region) and no other. The shop,
    api and sandbox_url fixtures of conftest.py use this pair."""
    accounts = ",".join(f"{u}:{p}:{r}" for r, (u, p) in CREDENTIALS.items())
    passwords = {EU_VAR: CREDENTIALS["eu"][1], NA_VAR: CREDENTIALS["na"][1], OC_VAR: CREDENTIALS["oc"][1]}
    folder = tmp_path_factory.mktemp("three")

    def service(sandbox_url: str) -> dict[str, str]:
        path = folder / "three-regions.toml"
        path.write_text(shop_file(sandbox_url), encoding="utf-8")
        return {**passwords, "KCO_SHOP_FILE": str(path)}
    with pair(tmp_path_factory, {"SANDBOX_ACCOUNTS": accounts}, service) as both:
        yield both


def sandbox_requests(sandbox: str) -> list[dict]:
    return requests.get(f"{sandbox}/_sandbox/requests", timeout=10).json()["requests"]


def at_klarna(sandbox: str, order_id: str) -> dict:
    return requests.get(f"{sandbox}/_sandbox/orders/{order_id}", timeout=10).json()


def test_a_shopper_who_moves_from_se_to_us_in_the_iframe_buys_at_the_us_account(shop, api, sandbox_url):
    sandbox = sandbox_url
    add(shop, TEE, times=2)
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("SEK")
    frame = open_checkout(shop)
    sid = session_of(shop)
    se_order = api("GET", f"/api/sessions/{sid}/state").json()["klarna"]["order_id"]
    assert at_klarna(sandbox, se_order)["account"] == CREDENTIALS["eu"][0]
    before_move = max(r["id"] for r in sandbox_requests(sandbox))

    # Inside Klarna's iframe: a US address, then billing country US (sent at once, with it).
    move_to_country(frame, "US", se_order, street_address="500 Howard St", city="San Francisco",
                    region="CA", postal_code="94105")
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", "6113")
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", "6113")

    # The page is in USD, and the iframe is a new order, at the North America account.
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("USD")
    expect(frame.locator('[data-sandbox="purchase-country"]')).to_have_attribute("data-value", "US")
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("USD")
    state = api("GET", f"/api/sessions/{sid}/state").json()
    us_order = state["klarna"]["order_id"]
    assert us_order != se_order and state["klarna"]["account"] == "north_america"
    assert state["market"]["currency"] == "USD"
    expect(frame.locator("body")).to_have_attribute("data-order-id", us_order)
    us = at_klarna(sandbox, us_order)
    assert us["account"] == CREDENTIALS["na"][0]
    assert (us["order"]["purchase_country"], us["order"]["purchase_currency"]) == ("US", "USD")
    # 2 × 25.00 + 7.00 ground, 7.25 % CA sales tax on both: the region the shopper typed
    assert us["order"]["order_amount"] == 5700 + 413 == state["order"]["order_amount"]
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", "6113")

    # The new checkout starts with the address the shopper typed into the old one.
    expect(frame.locator('select[name="billing_country"]')).to_have_value("US")
    expect(frame.locator('input[name="street_address"]')).to_have_value("500 Howard St")
    expect(frame.locator('input[name="region"]')).to_have_value("CA")
    expect(frame.locator('input[name="postal_code"]')).to_have_value("94105")
    feed = api("GET", f"/api/sessions/{sid}/events").json()["events"]
    moved = [e["data"] for e in feed if e["type"] == "order_recreated"]
    assert [(d["reason"], d["old_order_id"], d["order_id"], d["klarna_account"], d["old_klarna_account"])
            for d in moved] == [("klarna_account", se_order, us_order, "north_america", "europe")]
    assert moved[0]["prefilled"] == ["billing_address", "shipping_address"]
    assert "500 Howard St" not in str(feed)  # carried to Klarna, kept by nobody here

    # Buy straight away: nothing to type again.
    frame.locator('button[data-sandbox="buy"]').click()
    shop.wait_for_url("**/confirmation?*")
    expect(shop.locator('[data-kco="order-status"]')).to_have_attribute("data-acknowledged", "true")
    done = at_klarna(sandbox, us_order)
    assert done["status"] == "checkout_complete" and done["account"] == CREDENTIALS["na"][0]
    assert done["order"]["billing_address"]["street_address"] == "500 Howard St"
    feed = api("GET", f"/api/sessions/{sid}/events").json()["events"]
    completed = [e["data"] for e in feed if e["type"] == "order_completed"]
    assert [(c["order_id"], c["purchase_currency"], c["order_amount"]) for c in completed] == [
        (us_order, "USD", 6113)]

    # Nothing was sent to the wrong account, and the SE order got nothing after the move.
    log = sandbox_requests(sandbox)
    mine = [r for r in log if r["order_id"] in (se_order, us_order)
            or (r["endpoint"] == "checkout.create_order" and r["id"] > before_move - 50)]
    assert {r["account"] for r in log if r["order_id"] == se_order} == {CREDENTIALS["eu"][0]}
    assert {r["account"] for r in log if r["order_id"] == us_order} == {CREDENTIALS["na"][0]}
    assert all(r["status"] < 400 for r in mine), [r for r in mine if r["status"] >= 400]
    creates = [r for r in log if r["endpoint"] == "checkout.create_order" and r["id"] > before_move]
    assert [(c["account"], c["body"]["purchase_currency"]) for c in creates] == [(CREDENTIALS["na"][0], "USD")]
    after = [r for r in log if r["order_id"] == se_order and r["id"] > before_move]
    assert all(r["method"] == "GET" for r in after), after  # read (paid meanwhile?), never written
    left = at_klarna(sandbox, se_order)
    assert (left["status"], left["order"]["purchase_currency"]) == ("checkout_incomplete", "SEK")
    assert CREDENTIALS["oc"][0] not in {r["account"] for r in log}
    assert all(r["account"] in {u for u, _ in CREDENTIALS.values()} for r in log if r["account"])


def test_a_shipping_assistant_market_on_a_named_account_completes_with_klarnas_line_and_the_tms_reference(
        shop, api, sandbox_url):
    """FI sells through the Europe account with Klarna's Shipping Assistant: Klarna's TMS prices
    the shipping, its line is on the order at Klarna, and order_completed names the TMS's
    reference and the pickup point (its id and name, not its address)."""
    sandbox = sandbox_url
    assert requests.put(f"{sandbox}/_sandbox/tms", json={"countries": {"FI": TMS_FI}},
                        timeout=10).status_code == 200
    try:
        add(shop, TEE)
        choose_market(shop, "FI", "EUR")
        sid = session_of(shop)
        frame = checkout_frame(shop)
        expect(frame.locator('[data-sandbox="shipping"]')).to_have_attribute("data-shipping-assistant", "tms")
        fee = frame.locator('[data-sandbox="order-line"][data-type="shipping_fee"]')
        expect(fee).to_have_attribute("data-reference", "posti-home")
        state = api("GET", f"/api/sessions/{sid}/state").json()
        assert state["order"]["order_amount"] == 2490  # ours: the goods only
        order_id = state["klarna"]["order_id"]
        sent = at_klarna(sandbox, order_id)
        assert sent["account"] == CREDENTIALS["eu"][0]
        assert "shipping_option_update" not in sent["merchant_urls"]
        assert [o["id"] for o in sent["order"]["shipping_options"]] == ["fi-fallback"]  # KSA's fallback
        assert sent["order"]["order_lines"][0]["shipping_attributes"]["weight"] == 240
        frame.locator('input[name="shipping_option"][value="matkahuolto-point"]').check()
        expect(fee).to_have_attribute("data-reference", "matkahuolto-point")
        expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", str(2490 + 490))
        frame.locator('button[data-sandbox="buy"]').click()
        shop.wait_for_url("**/confirmation?*")
        event = completed(api, sid)
    finally:
        requests.delete(f"{sandbox}/_sandbox/tms", timeout=10)
    done = at_klarna(sandbox, order_id)
    assert done["status"] == "checkout_complete" and done["account"] == CREDENTIALS["eu"][0]
    assert [(ln["type"], ln["reference"]) for ln in done["order"]["order_lines"]] == [
        ("physical", TEE), ("shipping_fee", "matkahuolto-point")]
    assert event["data"]["order_id"] == order_id and event["data"]["order_amount"] == 2490 + 490
    tms = done["order"]["selected_shipping_option"]["tms_reference"]
    assert tms and event["data"]["selected_shipping_option"] == {
        "id": "matkahuolto-point", "name": "Matkahuolto noutopiste", "price": 490, "tms_reference": tms,
        "delivery_details": {"carrier": "Matkahuolto", "class": "economy",
                             "product": {"name": "Lähellä-paketti", "identifier": "MH-LP"},
                             "pickup_location": {"id": "MH-00100-7", "name": "R-kioski Kamppi"}}}
    types = [e["type"] for e in api("GET", f"/api/sessions/{sid}/events").json()["events"]]
    assert "validation_passed" in types and "validation_failed" not in types and "order_mismatch" not in types
    calls = [r for r in sandbox_requests(sandbox) if r["order_id"] == order_id]
    assert {r["account"] for r in calls} == {CREDENTIALS["eu"][0]} and all(r["status"] < 400 for r in calls)


def test_a_business_buys_in_a_b2b_market_on_a_named_account(shop, api, sandbox_url):
    """NO takes business customers (allowed_customer_types): a company buys through the Europe
    account, and order_completed says it was an organisation and nothing else of it."""
    sandbox = sandbox_url
    add(shop, TEE)
    choose_market(shop, "NO", "NOK")
    sid = session_of(shop)
    frame = open_checkout(shop)
    expect(frame.locator('[data-sandbox="customer-type"]')).to_be_visible()
    frame.locator('select[name="customer_type"]').select_option("organization")
    frame.locator('input[name="organization_name"]').fill("Fjordvik Testselskap AS")
    frame.locator('button[data-sandbox="buy"]').click()
    shop.wait_for_url("**/confirmation?*")
    event = completed(api, sid)
    assert event["data"]["customer"] == {"type": "organization"}
    assert event["data"]["purchase_currency"] == "NOK"
    assert "Fjordvik" not in str(api("GET", f"/api/sessions/{sid}/events").json())
    done = at_klarna(sandbox, event["data"]["order_id"])
    assert done["account"] == CREDENTIALS["eu"][0]
    assert done["order"]["customer"]["type"] == "organization"
    assert done["order"]["billing_address"]["organization_name"] == "Fjordvik Testselskap AS"
