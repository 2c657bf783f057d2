"""The sandbox's checkout iframe in Chromium, embedded in a minimal merchant page on another
origin: Klarna's client-side events reach the page with their payloads, suspend locks the
iframe and auto-resumes, resume shows the order as the merchant changed it, a purchase sends
the whole page to the confirmation URL.

Chromium is Debian's (/usr/bin/chromium, or KCO_CHROMIUM), launched by path. Without it the
module skips with the reason, unless KCO_REQUIRE_BROWSER=1 (.ci/run), where it fails.
"""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
import requests
from flask import Flask, request
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.sandbox_fixtures import CREDENTIALS, HOST, SandboxServer, _QuietHandler, sample_order
from tests.waiting import DEADLINE

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("KCO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FRAME = "#klarna-checkout-iframe"
SHIPPING_OPTIONS = [
    {"id": "pickup", "name": "Pick-up point", "price": 0, "tax_amount": 0, "tax_rate": 0,
     "preselected": True},
    {"id": "home", "name": "Home delivery", "price": 4900, "tax_amount": 980, "tax_rate": 2500},
]
EVENTS = ["load", "customer", "change", "billing_address_change", "shipping_address_change",
          "shipping_option_change", "order_total_change", "can_not_complete_order",
          "redirect_initiated", "user_interacted", "checkbox_change", "network_error",
          "load_confirmation"]
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Merchant</title></head><body>
<script>
  window.events = [];
  %(auto)s
  // Klarna's queue: calls made before the snippet ran are replayed by it.
  window._klarnaCheckout = window._klarnaCheckout || function (c) {
    (window._klarnaCheckout.q = window._klarnaCheckout.q || []).push(arguments); };
  window._klarnaCheckout(function (api) {
    window.kco = api;
    var handlers = {};
    %(events)s.forEach(function (name) {
      handlers[name] = function (data) {
        window.events.push({name: name, data: data});
        sessionStorage.setItem("events", JSON.stringify(window.events));   // survives the redirect
      };
    });
    api.on(handlers);
  });
</script>
<div id="checkout">%(snippet)s</div>
</body></html>"""


class Merchant:
    """The merchant's page and its validation / confirmation URLs, on its own origin."""

    def __init__(self, sandbox_url: str):
        self.sandbox_url = sandbox_url
        self.validation = (200, {})
        app = Flask("merchant")
        app.add_url_rule("/page/<order_id>", view_func=self.page)
        app.add_url_rule("/kco/validation", view_func=self.validate, methods=["POST"])
        app.add_url_rule("/confirmation", view_func=lambda: (
            f"<h1 id='confirmed'>{request.args.get('klarna_order_id', '')}</h1>"))
        self._server = make_server(HOST, 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def page(self, order_id: str):
        order = requests.get(f"{self.sandbox_url}/checkout/v3/orders/{order_id}", auth=CREDENTIALS,
                             timeout=5).json()
        auto = request.args.get("auto_resume_ms")
        return PAGE % {"snippet": order["html_snippet"], "events": EVENTS.__repr__(),
                       "auto": f"window._klarnaCheckoutAutoResumeMs = {int(auto)};" if auto else ""}

    def validate(self):
        status, body = self.validation
        return body, status

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def chromium(playwright):
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set KCO_CHROMIUM)"
        if os.environ.get("KCO_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " — KCO_REQUIRE_BROWSER=1")
        pytest.skip(message)
    browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def servers():
    sandbox = SandboxServer().start()
    merchant = Merchant(sandbox.url)
    yield sandbox, merchant
    merchant.stop()
    sandbox.stop()


@pytest.fixture
def tab(chromium):
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def create(servers, **overrides) -> str:
    sandbox, merchant = servers
    urls = {"terms": f"{merchant.url}/terms", "checkout": f"{merchant.url}/checkout",
            "confirmation": f"{merchant.url}/confirmation?klarna_order_id={{checkout.order.id}}",
            "push": f"{merchant.url}/kco/push?order_id={{checkout.order.id}}",
            "validation": f"{merchant.url}/kco/validation"}
    order = sample_order(merchant_urls=urls, **overrides)
    resp = requests.post(f"{sandbox.url}/checkout/v3/orders", json=order, auth=CREDENTIALS, timeout=5)
    assert resp.status_code == 201, resp.text
    return resp.json()["order_id"]


def open_checkout(tab, servers, order_id: str, **query):
    merchant = servers[1]
    suffix = "".join(f"&{k}={v}" for k, v in query.items()).replace("&", "?", 1)
    tab.goto(f"{merchant.url}/page/{order_id}{suffix}")
    wait_event(tab, "load")
    return tab.frame_locator(FRAME)


def wait_event(tab, name: str, count: int = 1) -> dict:
    """The `count`-th event of that name the merchant page received (waits for it)."""
    tab.wait_for_function("([n, c]) => window.events.filter(e => e.name === n).length >= c", arg=[name, count])
    return tab.evaluate("([n, c]) => window.events.filter(e => e.name === n)[c - 1].data", [name, count])


def names(tab) -> list[str]:
    return tab.evaluate("() => window.events.map(e => e.name)")


def test_events_reach_the_page_with_klarnas_payloads(tab, servers):
    order_id = create(servers, shipping_options=SHIPPING_OPTIONS)
    frame = open_checkout(tab, servers, order_id)
    assert wait_event(tab, "load") == {"customer": {"type": "person"},
                                       "shipping_address": {"country": "swe", "postal_code": "12345"}}
    assert wait_event(tab, "customer") == {"type": "person"}
    assert wait_event(tab, "change") == {"email": "customer@example.com", "postal_code": "12345", "country": "swe"}

    frame.locator('select[name="billing_country"]').select_option("FI")
    assert wait_event(tab, "change", 2)["country"] == "fin"
    billing = wait_event(tab, "billing_address_change")   # a country is sent as it is chosen
    assert (billing["country"], billing["postal_code"]) == ("fin", "12345")
    assert wait_event(tab, "shipping_address_change")["country"] == "fin"
    frame.locator('input[name="postal_code"]').fill("00100")
    frame.locator('button[data-sandbox="save-address"]').click()
    assert wait_event(tab, "user_interacted") == {"type": "mousedown"}
    billing = wait_event(tab, "billing_address_change", 2)
    assert (billing["country"], billing["postal_code"], billing["given_name"]) == ("fin", "00100", "Testperson-se")

    frame.locator('input[name="shipping_option"][value="home"]').check()
    assert wait_event(tab, "shipping_option_change") == SHIPPING_OPTIONS[1]
    assert wait_event(tab, "order_total_change") == {"order_total": 59800 + 4900}
    assert frame.locator('[data-sandbox="order-amount"]').get_attribute("data-value") == str(59800 + 4900)
    assert frame.locator('[data-sandbox="order-line"][data-reference="home"]').count() == 1

    # one listener per event: a second on() replaces the first
    tab.evaluate("() => window.kco.on({change: d => { window.replaced = d; }})")
    before = names(tab).count("change")
    frame.locator('select[name="billing_country"]').select_option("SE")
    tab.wait_for_function("() => window.replaced && window.replaced.country === 'swe'")
    assert names(tab).count("change") == before


def test_suspend_locks_the_frame_and_resumes_by_itself_after_ten_seconds(tab, servers):
    order_id = create(servers)
    tab.clock.install()
    frame = open_checkout(tab, servers, order_id)
    body = frame.locator("body")
    tab.clock.pause_at(tab.evaluate("() => Date.now()") + 1_000)   # only run_for moves time now
    tab.evaluate("() => window.kco.suspend()")
    frame.locator('body[data-suspended="true"]').wait_for()
    assert frame.locator('[data-sandbox="overlay"]').is_visible()
    assert frame.locator('button[data-sandbox="buy"]').is_disabled()
    assert frame.locator('select[name="billing_country"]').is_disabled()
    tab.clock.run_for(9_000)
    assert body.get_attribute("data-suspended") == "true"
    tab.clock.run_for(1_500)
    frame.locator('body[data-suspended="false"]').wait_for()
    assert frame.locator('button[data-sandbox="buy"]').is_enabled()

    tab.evaluate("() => window.kco.suspend({autoResume: {enabled: false}})")
    frame.locator('body[data-suspended="true"]').wait_for()
    tab.clock.run_for(60_000)
    assert body.get_attribute("data-suspended") == "true"
    tab.evaluate("() => window.kco.resume()")
    frame.locator('body[data-suspended="false"]').wait_for()
    log = tab.evaluate("() => window._klarnaCheckoutLog.filter(e => e.kind !== 'event')")
    assert [(e["kind"], e["data"]) for e in log] == [
        ("suspend", {"autoResume": True}), ("resume", {"auto": True}),
        ("suspend", {"autoResume": False}), ("resume", {"auto": False})]


def test_auto_resume_delay_can_be_shortened_for_tests(tab, servers):
    frame = open_checkout(tab, servers, create(servers), auto_resume_ms=200)
    tab.evaluate("() => window.kco.suspend()")
    frame.locator('body[data-suspended="false"]').wait_for()   # well before 10 s
    assert tab.evaluate("() => window._klarnaCheckoutLog.filter(e => e.kind === 'resume')[0].data") == {"auto": True}


def test_resume_shows_the_order_as_the_merchant_changed_it(tab, servers):
    sandbox = servers[0]
    order_id = create(servers)
    frame = open_checkout(tab, servers, order_id)
    assert frame.locator('[data-sandbox="currency"]').text_content() == "SEK"
    tab.evaluate("() => window.kco.suspend({autoResume: {enabled: false}})")
    frame.locator('body[data-suspended="true"]').wait_for()
    eur = {"purchase_country": "FI", "purchase_currency": "EUR", "locale": "fi-FI",
           "order_amount": 6400, "order_tax_amount": 1239,
           "order_lines": [{"type": "physical", "reference": "TS-RED-M", "name": "Punainen T-paita",
                            "quantity": 2, "unit_price": 3200, "tax_rate": 2400, "total_amount": 6400,
                            "total_discount_amount": 0, "total_tax_amount": 1239}]}
    resp = requests.post(f"{sandbox.url}/checkout/v3/orders/{order_id}", json=eur, auth=CREDENTIALS, timeout=5)
    assert resp.status_code == 200, resp.text
    assert frame.locator('[data-sandbox="currency"]').text_content() == "SEK"   # not before resume
    tab.evaluate("() => window.kco.resume()")
    frame.locator('body[data-suspended="false"]').wait_for()
    expect(frame.locator('[data-sandbox="currency"]')).to_have_text("EUR")  # the frame re-reads the order
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", "6400")
    lines = frame.locator('[data-sandbox="order-line"]').all_text_contents()
    assert [line.replace("\xa0", " ") for line in lines] == ["2 ×Punainen T-paita64,00 €"]  # fi-FI format
    assert wait_event(tab, "order_total_change") == {"order_total": 6400}


def test_refused_validation_is_can_not_complete_order(tab, servers):
    merchant = servers[1]
    merchant.validation = (400, {"error_type": "approval_failed", "error_text": "Out of stock"})
    try:
        frame = open_checkout(tab, servers, create(servers))
        frame.locator('button[data-sandbox="buy"]').click()
        assert wait_event(tab, "can_not_complete_order") == {"reason": "error_shown", "message": "Out of stock"}
        expect(frame.locator('[data-sandbox="message"]')).to_have_text("Out of stock")
        assert "redirect_initiated" not in names(tab)
    finally:
        merchant.validation = (200, {})


def test_buy_sends_the_page_to_the_confirmation_which_shows_the_thank_you_frame(tab, servers):
    sandbox, merchant = servers
    order_id = create(servers, billing_countries=["SE", "US"], shipping_countries=["SE", "US"])
    frame = open_checkout(tab, servers, order_id)
    frame.locator('select[name="billing_country"]').select_option("US")   # sent at once
    # a US address needs its state: the frame says so in the order's words (the sandbox's own
    # problem text kept aside), shows the state field, and Buy waits for the address
    message = frame.locator('[data-sandbox="message"]')
    expect(message).to_have_text("Ange delstaten.")   # the order is sv-SE
    expect(message).to_have_attribute("data-problem", "Bad value: billing_address.region")
    expect(frame.locator('input[name="region"]')).to_be_visible()
    expect(frame.locator('button[data-sandbox="buy"]')).to_be_disabled()
    frame.locator('input[name="postal_code"]').fill("94105")
    frame.locator('input[name="region"]').fill("CA")
    expect(frame.locator('button[data-sandbox="buy"]')).to_be_disabled()   # edits not sent yet
    frame.locator('button[data-sandbox="save-address"]').click()
    frame.locator('button[data-sandbox="buy"]').click()   # enabled once the address is in
    tab.wait_for_url(f"{merchant.url}/confirmation?klarna_order_id={order_id}")
    assert tab.locator("#confirmed").text_content() == order_id
    before = [e["name"] for e in tab.evaluate("() => JSON.parse(sessionStorage.getItem('events'))")]
    assert before[-1] == "redirect_initiated" and "can_not_complete_order" not in before
    assert sandbox.inspect(order_id)["order"]["shipping_address"]["region"] == "CA"
    assert sandbox.inspect(order_id)["status"] == "checkout_complete"

    tab.goto(f"{merchant.url}/page/{order_id}")
    wait_event(tab, "load_confirmation")
    thanks = tab.frame_locator(FRAME)
    assert thanks.locator("h1").text_content() == "Tack för ditt köp"  # the order is sv-SE
    assert thanks.locator('[data-sandbox="order-amount"]').get_attribute("data-value") == "62700"


def test_client_validation_lets_the_page_stop_or_allow_the_purchase(tab, servers):
    sandbox, merchant = servers
    order_id = create(servers, options={"require_client_validation": True})
    frame = open_checkout(tab, servers, order_id)
    tab.evaluate("""() => window.kco.on({validation_callback: (data, callback) =>
        callback({should_proceed: false, message: "Accept the newsletter terms first"})})""")
    frame.locator('button[data-sandbox="buy"]').click()
    expect_text = frame.locator('[data-sandbox="message"]')
    expect_text.filter(has_text="Accept the newsletter terms first").wait_for()
    assert sandbox.inspect(order_id)["status"] == "checkout_incomplete"
    tab.evaluate("() => window.kco.on({validation_callback: (data, callback) => callback({should_proceed: true})})")
    frame.locator('button[data-sandbox="buy"]').click()
    tab.wait_for_url(f"{merchant.url}/confirmation?klarna_order_id={order_id}")


def test_a_country_is_sent_as_it_is_chosen_and_buy_waits_for_it(tab, servers):
    """Klarna's checkout sends a country the moment it is chosen; a purchase in between would
    charge what the shopper has not seen. No Save address is pressed here."""
    sandbox = servers[0]
    order_id = create(servers, billing_countries=["SE", "FI"], shipping_countries=["SE", "FI"])
    frame = open_checkout(tab, servers, order_id)
    buy = frame.locator('button[data-sandbox="buy"]')
    # Hold the address request so "a callback it sent is unanswered" can be seen.
    release = []
    tab.route("**/sandbox/checkout/*/address", lambda route: release.append(route))
    frame.locator('select[name="billing_country"]').select_option("FI")
    frame.locator('body[data-busy="true"]').wait_for()
    expect(buy).to_be_disabled()
    # The route's handler runs when Playwright next dispatches events: wait for it (the sync
    # API dispatches while it waits), up to a deadline, rather than expecting it already ran.
    deadline = time.monotonic() + DEADLINE
    while not release and time.monotonic() < deadline:
        tab.wait_for_timeout(20)
    assert release, "the country went nowhere"
    release[0].continue_()
    wait_event(tab, "billing_address_change")
    expect(buy).to_be_enabled()
    assert sandbox.inspect(order_id)["order"]["billing_address"]["country"] == "FI"


def test_buy_is_disabled_while_suspended_and_while_edits_are_unsent(tab, servers):
    frame = open_checkout(tab, servers, create(servers))
    buy = frame.locator('button[data-sandbox="buy"]')
    expect(buy).to_be_enabled()
    frame.locator('input[name="postal_code"]').fill("11122")
    expect(buy).to_be_disabled()
    expect(frame.locator('[data-sandbox="unsaved"]')).to_be_visible()
    frame.locator('button[data-sandbox="save-address"]').click()
    expect(buy).to_be_enabled()
    tab.evaluate("() => window.kco.suspend({autoResume: {enabled: false}})")
    expect(buy).to_be_disabled()
    tab.evaluate("() => window.kco.resume()")
    expect(buy).to_be_enabled()


def test_the_purchase_records_what_the_frame_showed(tab, servers):
    sandbox, merchant = servers
    order_id = create(servers)
    frame = open_checkout(tab, servers, order_id)
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", "62700")
    # Klarna's order changes behind the frame's back (no suspend → resume): the frame still
    # shows the old total, and the purchase records both.
    resp = requests.post(f"{sandbox.url}/checkout/v3/orders/{order_id}", auth=CREDENTIALS, timeout=5,
                         json={"purchase_currency": "EUR"})
    assert resp.status_code == 200, resp.text
    frame.locator('button[data-sandbox="buy"]').click()
    tab.wait_for_url(f"{merchant.url}/confirmation?klarna_order_id={order_id}")
    seen = sandbox.inspect(order_id)
    assert seen["displayed_at_purchase"] == {"order_amount": 62700, "purchase_currency": "SEK"}
    assert seen["order"]["purchase_currency"] == "EUR"
