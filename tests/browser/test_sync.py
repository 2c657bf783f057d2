"""kco-sync.js against a real network and real tabs: cuts, two tabs, a hidden tab."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.shopper import COFFEE, TSHIRT, add, session_of, version

WITHIN = 60_000  # ms: a deadline for a busy machine, not a speed requirement
# Every feed request the page makes, recorded by the page as it makes it (whether the tab was
# hidden then, whether it was aborted since), so the order is the page's own, not that of the
# events Playwright relays. The counts are mirrored on <html> for `expect` to wait on: the demo
# shop's CSP refuses the string functions of wait_for_function.
FEED_RECORDER = """(() => {
  const real = window.fetch;
  const feed = window.kcoFeed = [];
  const mirror = () => {
    const open = feed.filter(e => !e.done && !e.aborted);
    const root = document.documentElement;
    root.dataset.feedWaiting = String(open.filter(e => e.url.includes("wait=25")).length);
    root.dataset.feedOpen = String(open.length);
    root.dataset.feedWhileHidden = String(feed.filter(e => e.hidden).length);
  };
  window.fetch = function (url, init) {
    const answer = real.apply(this, arguments);
    if (String(url).includes("/events?")) {
      const entry = {url: String(url), hidden: document.hidden, aborted: false, done: false};
      feed.push(entry);
      if (init && init.signal) { init.signal.addEventListener("abort", () => { entry.aborted = true; mirror(); }); }
      answer.then(() => { entry.done = true; mirror(); }, () => { entry.done = true; mirror(); });
      mirror();
    }
    return answer;
  };
})();"""


def page_events(page) -> list[int]:
    return page.evaluate("window.kcoShop.log.filter(e => e.name === 'event').map(e => e.id)")


def feed(page) -> list[dict]:
    return page.evaluate("window.kcoFeed")


def set_hidden(page, hidden: bool) -> None:
    page.evaluate("""(hidden) => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
        document.dispatchEvent(new Event('visibilitychange'));
    }""", hidden)


def test_a_network_cut_through_several_reconnects_loses_no_event(shop, api):
    add(shop, TSHIRT)
    sid = session_of(shop)
    expect(shop.locator("body")).to_have_attribute("data-online", "true")
    seen_before = api("GET", f"/api/sessions/{sid}/events").json()["last_id"]
    shop.route("**/api/sessions/**", lambda route: route.abort("internetdisconnected"))
    shop.evaluate("window.kcoShop.sync._poll && window.kcoShop.sync._poll.abort()")  # cut the poll in flight
    for quantity in (2, 3, 4):  # the back end changes the cart while the page is cut off
        assert api("PUT", f"/api/sessions/{sid}/cart",
                   json={"items": [{"reference": TSHIRT, "quantity": quantity}]}).status_code == 200
    # The cut lasts until the page has failed to reconnect twice more (its backoff keeps trying),
    # however long that takes on a busy machine.
    for _ in range(2):
        shop.wait_for_event("requestfailed", lambda r: "/events?" in r.url, timeout=WITHIN)
    expect(shop.locator("body")).to_have_attribute("data-online", "false", timeout=WITHIN)
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
    shop.add_init_script(FEED_RECORDER)
    shop.reload()
    add(shop, TSHIRT)
    sid = session_of(shop)
    root = shop.locator("html")
    # Waiting in a long-poll (not between two), so hiding the tab has one to drop.
    expect(root).to_have_attribute("data-feed-waiting", "1", timeout=WITHIN)
    set_hidden(shop, True)
    expect(root).to_have_attribute("data-feed-open", "0", timeout=WITHIN)  # the long-poll dropped
    api("PUT", f"/api/sessions/{sid}/cart", json={"items": [{"reference": TSHIRT, "quantity": 5}]})
    assert version(shop) < api("GET", f"/api/sessions/{sid}/state").json()["version"]
    set_hidden(shop, False)
    expect(shop.locator('[data-kco="count"]').first).to_have_text("5", timeout=WITHIN)
    expect(root).to_have_attribute("data-feed-while-hidden", "0")  # nothing asked while hidden
