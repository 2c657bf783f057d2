"""What a shopper does on the demo shop, through the stable hooks of docs/browser.md only."""
from __future__ import annotations

from playwright.sync_api import FrameLocator, Page, expect

TSHIRT, MUG, COFFEE = "TSHIRT-BLUE-M", "MUG-ENAMEL", "COFFEE-DARK-500"


def session_of(page: Page) -> str:
    return page.evaluate("window.kcoShop.config.session")


def version(page: Page) -> int:
    return int(page.locator('[data-kco="version"]').first.inner_text())


def add(page: Page, sku: str, times: int = 1) -> None:
    for _ in range(times):
        before = version(page)
        page.locator(f'[data-kco-add="{sku}"]').click()
        expect(page.locator('[data-kco="version"]').first).not_to_have_text(str(before))


def choose_market(page: Page, country: str, currency: str) -> None:
    """Pick `country` in the shop's market selector and wait until the page prices in `currency`."""
    page.locator('[data-kco="market"]').select_option(country)
    expect(page.locator('[data-kco="currency"]').first).to_have_text(currency)


def open_checkout(page: Page) -> FrameLocator:
    page.locator('a[data-kco-go="checkout"]').first.click()
    page.wait_for_url("**/checkout")
    frame = page.frame_locator("#klarna-checkout-iframe")
    amount = page.locator('[data-kco="order-amount"]').first
    # The page is served with a placeholder total ("0") that kco-sync.js fills from the state; the
    # cart is never empty here, so wait for the real total before comparing Klarna's with it.
    expect(amount).not_to_have_attribute("data-value", "0")
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute(
        "data-value", amount.get_attribute("data-value") or "")
    return frame


def enter_address(frame: FrameLocator, billing_country: str, **fields: str) -> None:
    """What a shopper does in Klarna's iframe: pick the billing country (sent at once), type the
    other address fields by their input names, and press Save address."""
    frame.locator('select[name="billing_country"]').select_option(billing_country)
    for name, value in fields.items():
        frame.locator(f'input[name="{name}"]').fill(value)
    frame.locator('button[data-sandbox="save-address"]').click()


def move_to_country(frame: FrameLocator, billing_country: str, leaving_order: str, region: str | None = None,
                    **typed: str) -> None:
    """A country sold through another Klarna account: the shopper types `typed` (fields the old
    iframe shows), picks the billing country (sent at once, with what was typed, as in Klarna's
    iframe), and waits, as a shopper watching the page would, until the new order's iframe has
    replaced the one of `leaving_order` and is live; only then does the shopper type on.

    A US address needs its state, and the iframe asks for it only once the US is chosen: with
    `region`, the shopper picks the country, sees the state field and the iframe's "Enter the
    state" (the sandbox refuses a US country change without one), types the state and presses
    Save address — which sends the country change."""
    for name, value in typed.items():
        frame.locator(f'input[name="{name}"]').fill(value)
    frame.locator('select[name="billing_country"]').select_option(billing_country)
    if region is not None:
        # The refusal is answered before the form is live again (fill waits for that), and
        # data-problem names the missing field: the state, nothing else, is asked for.
        expect(frame.locator('[data-sandbox="message"]')).to_have_attribute(
            "data-problem", "Bad value: billing_address.region")
        frame.locator('input[name="region"]').fill(region)
        frame.locator('button[data-sandbox="save-address"]').click()
    body = frame.locator("body")
    expect(body).not_to_have_attribute("data-order-id", leaving_order)
    expect(body).to_have_attribute("data-suspended", "false")
    expect(body).to_have_attribute("data-busy", "false")


def klarna_log(page: Page) -> list[dict]:
    return page.evaluate("window._klarnaCheckoutLog || []")


def resource(page: Page, path_end: str) -> list[dict]:
    """Resource timings (performance.now() clock, like the Klarna log) of requests to …path_end."""
    return page.evaluate("""(end) => performance.getEntriesByType('resource')
        .filter(e => new URL(e.name).pathname.endsWith(end))
        .map(e => ({start: e.startTime, end: e.responseEnd}))""", path_end)


def assert_suspended_around(page: Page, path_end: str) -> None:
    """Klarna's suspend came before the write to …path_end, and resume after its answer."""
    writes = resource(page, path_end)
    assert writes, f"no request to {path_end}"
    write = writes[-1]
    log = klarna_log(page)
    suspends = [e["t"] for e in log if e["kind"] == "suspend" and e["t"] <= write["start"]]
    resumes = [e["t"] for e in log if e["kind"] == "resume" and e["t"] >= write["end"]
               and not (e.get("data") or {}).get("auto")]  # ours, not the 10 s safeguard
    assert suspends, f"no suspend before the write: {log}"
    assert resumes, f"no resume after the write: {log}"


def checkout_frame(page: Page) -> FrameLocator:
    """The checkout page's iframe once Klarna's Buy button is live — without comparing totals,
    for an order whose total at Klarna is not ours (the Shipping Assistant adds its line)."""
    page.locator('a[data-kco-go="checkout"]').first.click()
    page.wait_for_url("**/checkout")
    frame = page.frame_locator("#klarna-checkout-iframe")
    expect(frame.locator('button[data-sandbox="buy"]')).to_be_enabled()
    return frame


def completed(api, sid: str) -> dict:
    """The session's order_completed event, once the push that recorded it has also checked
    what was paid and acknowledged (waited for on the feed: the push comes after the purchase,
    on the sandbox's compressed clock)."""
    after, found = 0, {}
    for _ in range(20):
        reply = api("GET", f"/api/sessions/{sid}/events?after={after}&wait=2").json()
        found.update({e["type"]: e for e in reply["events"]})
        if "order_acknowledged" in found:
            return found["order_completed"]
        after = reply["last_id"]
    raise AssertionError(f"no acknowledged order for {sid}: {sorted(found)}")
