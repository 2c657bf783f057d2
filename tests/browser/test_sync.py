"""kco-sync.js against a real network and real tabs: cuts, two tabs, a hidden tab."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.shopper import COFFEE, TSHIRT, add, session_of, version


def page_events(page) -> list[int]:
    return page.evaluate("window.kcoShop.log.filter(e => e.name === 'event').map(e => e.id)")


def test_a_five_second_network_cut_loses_no_event(shop, api):
    add(shop, TSHIRT)
    sid = session_of(shop)
    expect(shop.locator("body")).to_have_attribute("data-online", "true")
    seen_before = api("GET", f"/api/sessions/{sid}/events").json()["last_id"]
    shop.route("**/api/sessions/**", lambda route: route.abort("internetdisconnected"))
    shop.evaluate("window.kcoShop.sync._poll && window.kcoShop.sync._poll.abort()")  # cut the poll in flight
    for quantity in (2, 3, 4):  # the back end changes the cart while the page is cut off
        assert api("PUT", f"/api/sessions/{sid}/cart",
                   json={"items": [{"reference": TSHIRT, "quantity": quantity}]}).status_code == 200
    shop.wait_for_timeout(5000)
    expect(shop.locator("body")).to_have_attribute("data-online", "false")
    shop.unroute("**/api/sessions/**")
    server = api("GET", f"/api/sessions/{sid}/state").json()
    expect(shop.locator('[data-kco="version"]').first).to_have_text(str(server["version"]))
    expect(shop.locator('[data-kco="order-amount"]').first).to_have_attribute(
        "data-value", str(server["order"]["order_amount"]))
    expect(shop.locator("body")).to_have_attribute("data-online", "true")
    missed = [e["id"] for e in api("GET", f"/api/sessions/{sid}/events?after={seen_before}").json()["events"]]
    assert len(missed) == 3
    assert [i for i in page_events(shop) if i > seen_before] == missed


def test_two_tabs_on_one_session_converge(shop, service):
    second = shop.context.new_page()
    second.goto(service + "/")
    assert session_of(second) == session_of(shop)  # the same shopper: one cookie
    add(shop, TSHIRT)
    expect(second.locator('[data-kco="version"]').first).to_have_text(str(version(shop)))
    second.locator('[data-kco="market"]').select_option("FI")
    expect(shop.locator('[data-kco="currency"]').first).to_have_text("EUR")
    add(second, COFFEE)
    for tab in (shop, second):
        expect(tab.locator('[data-kco="count"]').first).to_have_text("2")
        expect(tab.locator('[data-kco="version"]').first).to_have_text(str(version(second)))
    first_names = shop.locator('[data-kco="products"] h2').all_inner_texts()
    assert "Sininen t-paita, M" in first_names or "Blå t-shirt, M" in first_names


def test_a_hidden_tab_stops_polling_and_catches_up_when_shown(shop, api):
    add(shop, TSHIRT)
    sid = session_of(shop)
    shop.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    polls = []
    shop.on("request", lambda r: polls.append(r.url) if "/events?" in r.url else None)
    api("PUT", f"/api/sessions/{sid}/cart", json={"items": [{"reference": TSHIRT, "quantity": 5}]})
    shop.wait_for_timeout(1500)
    assert polls == []  # nothing asked while hidden
    assert version(shop) < api("GET", f"/api/sessions/{sid}/state").json()["version"]
    shop.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(shop.locator('[data-kco="count"]').first).to_have_text("5")
