"""What the shopper sees is what the shopper pays: every open checkout follows every change
(another tab, the back end, a tab shown again, a country chosen inside the iframe), and a paid
session is never sold again. Each purchase is checked at the sandbox: what its iframe showed
when Buy was pressed (`displayed_at_purchase`) is what it charged."""
from __future__ import annotations

import requests
from playwright.sync_api import Page, expect

from tests.browser.shopper import COFFEE, TSHIRT, add, open_checkout, session_of

FRAME = "klarna-checkout-iframe"
BUY = 'button[data-sandbox="buy"]'
WATCH = """() => {
    // Every change of the Buy button or the total, as the shopper could have seen it.
    const buy = document.querySelector('[data-sandbox="buy"]');
    const amount = document.querySelector('[data-sandbox="order-amount"]');
    window.__seen = [];
    const note = () => {
        const now = {enabled: !buy.matches(':disabled'), amount: amount.getAttribute('data-value')};
        const last = window.__seen[window.__seen.length - 1];
        if (!last || last.enabled !== now.enabled || last.amount !== now.amount) window.__seen.push(now);
    };
    new MutationObserver(note).observe(document.body, {attributes: true, subtree: true, childList: true,
                                                       characterData: true});
    note();
}"""


def iframe_amount(page: Page):
    return page.frame_locator(f"#{FRAME}").locator('[data-sandbox="order-amount"]')


def watch(page: Page) -> None:
    page.frame(name=FRAME).evaluate(WATCH)


def seen(page: Page) -> list[dict]:
    return page.frame(name=FRAME).evaluate("() => window.__seen")


def assert_never_buyable_with(page: Page, stale: str) -> None:
    """Once the change reached this tab, Buy was never enabled next to the stale total."""
    history = seen(page)
    began = next((i for i, s in enumerate(history) if not s["enabled"] or s["amount"] != stale), None)
    assert began is not None, f"the iframe never moved: {history}"
    assert not [s for s in history[began:] if s["enabled"] and s["amount"] == stale], history


def set_quantity(page: Page, sku: str, quantity: int) -> None:
    box = page.locator(f'[data-kco-qty="{sku}"]')
    box.fill(str(quantity))
    box.dispatch_event("change")


def order_id_of(api, sid: str) -> str:
    return api("GET", f"/api/sessions/{sid}/state").json()["klarna"]["order_id"]


def buy(page: Page) -> None:
    page.frame_locator(f"#{FRAME}").locator(BUY).click()
    page.wait_for_url("**/confirmation?*")


def assert_charged_as_shown(sandbox_url: str, order_id: str) -> dict:
    at_klarna = requests.get(f"{sandbox_url}/_sandbox/orders/{order_id}", timeout=10).json()
    assert at_klarna["status"] == "checkout_complete"
    charged = {k: at_klarna["order"][k] for k in ("order_amount", "purchase_currency")}
    assert at_klarna["displayed_at_purchase"] == charged
    return charged


def orders_of(sandbox_url: str, sid: str) -> list[dict]:
    """The sandbox's orders whose callbacks name this session."""
    found = []
    for summary in requests.get(f"{sandbox_url}/_sandbox/orders", timeout=10).json()["orders"]:
        order = requests.get(f"{sandbox_url}/_sandbox/orders/{summary['order_id']}", timeout=10).json()
        if sid in str(order["merchant_urls"].get("push", "")):
            found.append(order)
    return found


def test_a_cart_changed_in_one_tab_reaches_the_other_tabs_iframe_before_its_buy(shop, api, sandbox_url):
    add(shop, TSHIRT)
    open_checkout(shop)
    second = shop.context.new_page()
    second.goto(shop.url)
    open_checkout(second)
    old = iframe_amount(second).get_attribute("data-value")
    watch(second)
    set_quantity(shop, TSHIRT, 3)
    new = str(3 * 19900)
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", new)
    expect(iframe_amount(second)).to_have_attribute("data-value", new)
    expect(second.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", new)
    expect(second.frame_locator(f"#{FRAME}").locator(BUY)).to_be_enabled()
    expect(second.locator('[data-kco="updating"]')).to_have_count(0)
    assert_never_buyable_with(second, old)
    buy(second)
    charged = assert_charged_as_shown(sandbox_url, order_id_of(api, session_of(second)))
    assert charged == {"order_amount": 3 * 19900, "purchase_currency": "SEK"}


def test_the_back_ends_cart_change_reaches_the_open_checkout(shop, api, sandbox_url):
    add(shop, TSHIRT)
    open_checkout(shop)
    sid = session_of(shop)
    old = iframe_amount(shop).get_attribute("data-value")
    watch(shop)
    reply = api("PUT", f"/api/sessions/{sid}/cart",
                json={"items": [{"reference": TSHIRT, "quantity": 1}, {"reference": COFFEE, "quantity": 2}]})
    assert reply.status_code == 200, reply.text
    new = str(reply.json()["order"]["order_amount"])
    assert new != old
    expect(iframe_amount(shop)).to_have_attribute("data-value", new)
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", new)
    expect(shop.locator('[data-kco="updating"]')).to_have_count(0)
    assert_never_buyable_with(shop, old)
    buy(shop)
    assert assert_charged_as_shown(sandbox_url, order_id_of(api, sid))["order_amount"] == int(new)


def test_a_hidden_tab_shown_again_updates_its_iframe_before_the_shopper_can_buy(shop, api, sandbox_url):
    add(shop, TSHIRT)
    open_checkout(shop)
    sid = session_of(shop)
    shop.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    old = iframe_amount(shop).get_attribute("data-value")
    reply = api("PUT", f"/api/sessions/{sid}/cart", json={"items": [{"reference": TSHIRT, "quantity": 4}]})
    new = str(reply.json()["order"]["order_amount"])
    watch(shop)
    shop.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(iframe_amount(shop)).to_have_attribute("data-value", new)
    expect(shop.frame_locator(f"#{FRAME}").locator(BUY)).to_be_enabled()
    assert_never_buyable_with(shop, old)
    buy(shop)
    assert assert_charged_as_shown(sandbox_url, order_id_of(api, sid))["order_amount"] == int(new)


def test_a_country_chosen_then_buy_at_once_charges_what_the_iframe_shows(shop, api, sandbox_url):
    add(shop, TSHIRT)
    frame = open_checkout(shop)
    frame.locator('select[name="billing_country"]').select_option("FI")
    frame.locator(BUY).click()  # no Save address: the country went as it was chosen
    shop.wait_for_url("**/confirmation?*")
    charged = assert_charged_as_shown(sandbox_url, order_id_of(api, session_of(shop)))
    assert charged["purchase_currency"] == "EUR"


def test_reloading_after_the_purchase_shows_the_confirmation_and_sells_nothing_again(shop, api, sandbox_url):
    add(shop, TSHIRT)
    open_checkout(shop)
    sid = session_of(shop)
    buy(shop)
    order_id = order_id_of(api, sid)
    expect(shop.locator('[data-kco="order-status"]')).to_have_attribute("data-value", "checkout_complete")
    expect(shop.locator('[data-kco="paid"]')).to_be_visible()
    expect(shop.locator('[data-kco="count"]').first).to_have_text("0")  # the cart is emptied
    shop.reload()
    expect(shop.locator('[data-kco="order-status"]')).to_have_attribute("data-value", "checkout_complete")
    shop.goto(shop.url.split("/confirmation")[0] + "/checkout")
    shop.wait_for_url("**/confirmation?*")
    load = api("POST", f"/api/sessions/{sid}/checkout")  # the back end asks again
    assert load.status_code == 200, load.text
    assert (load.json()["status"], load.json()["order_id"]) == ("checkout_complete", order_id)
    assert [o["order_id"] for o in orders_of(sandbox_url, sid)] == [order_id]
    assert_charged_as_shown(sandbox_url, order_id)


def test_shop_again_after_a_purchase_is_a_new_session_and_a_new_order(shop, api, sandbox_url):
    add(shop, TSHIRT)
    open_checkout(shop)
    first = session_of(shop)
    buy(shop)
    first_order = order_id_of(api, first)
    shop.locator('[data-kco="shop-again"]').click()
    shop.wait_for_url("**/")
    second = session_of(shop)
    assert second != first
    expect(shop.locator('[data-kco="count"]').first).to_have_text("0")
    add(shop, COFFEE)
    open_checkout(shop)
    buy(shop)
    second_order = order_id_of(api, second)
    assert second_order != first_order
    assert_charged_as_shown(sandbox_url, first_order)
    assert_charged_as_shown(sandbox_url, second_order)
    assert [o["order_id"] for o in orders_of(sandbox_url, first)] == [first_order]


def test_reloading_between_purchase_and_push_shows_the_confirmation(page, slow_push_servers):
    """Klarna's push comes minutes after the purchase here; the reload meanwhile finds the order
    read-only at Klarna and answers with the confirmation, never a new order to pay."""
    service, sandbox_url = slow_push_servers
    page.set_default_timeout(15_000)
    page.goto(service + "/")
    add(page, TSHIRT)
    open_checkout(page)
    sid = session_of(page)
    state = requests.get(f"{service}/api/sessions/{sid}/state",
                         headers={"Authorization": "Bearer browser-test-api-key"}, timeout=10).json()
    order_id = state["klarna"]["order_id"]
    buy(page)
    assert requests.get(f"{sandbox_url}/_sandbox/orders/{order_id}/log", timeout=10).json()["push"]["attempts"] == 0
    page.goto(service + "/checkout")  # no push yet: our state still reads checkout_incomplete
    page.wait_for_url("**/confirmation?*")
    expect(page.locator('[data-kco="order-status"]')).to_have_attribute("data-value", "checkout_complete")
    assert [o["order_id"] for o in orders_of(sandbox_url, sid)] == [order_id]
    assert_charged_as_shown(sandbox_url, order_id)
