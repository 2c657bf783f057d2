"""Issue 21's "done means", clicked through in Chromium with a shop file of the test's own (not
the example): three Klarna accounts — Europe, North America, Oceania — with separate
credentials and markets on each, against a sandbox playing the three (docs/design.md §4.1).

A shopper starts in SE, changes the billing country to US inside Klarna's iframe and buys: the
Klarna order ends at the US account's credentials, in USD, with the address the shopper typed
already filled in; the SE order gets nothing more after the move; nothing reaches the wrong
account (the sandbox's request log names the credentials of every call)."""
from __future__ import annotations

import textwrap

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import pair
from tests.browser.shopper import add, open_checkout, session_of

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
    prices = {{ SEK = 24900, NOK = 25900, USD = 2500, AUD = 3900 }}
    """)


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

    # Inside Klarna's iframe: billing country US, and a US address.
    frame.locator('select[name="billing_country"]').select_option("US")
    frame.locator('input[name="street_address"]').fill("500 Howard St")
    frame.locator('input[name="city"]').fill("San Francisco")
    frame.locator('input[name="region"]').fill("CA")
    frame.locator('input[name="postal_code"]').fill("94105")
    frame.locator('button[data-sandbox="save-address"]').click()

    # The page is in USD, and the iframe is a new order, at the North America account.
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("USD")
    expect(frame.locator('[data-sandbox="purchase-country"]')).to_have_text("US")
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
