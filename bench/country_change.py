"""Time from the shopper's billing-country change inside the checkout iframe to the merchant
page showing EUR, in Chromium: the sandbox's country_change callback, our reply, the
feed or the iframe's event waking kco-sync.js, the state fetch, the page re-render.

    .venv/bin/python bench/country_change.py [runs=20]

Both ends are stamped in the browser on one clock (performance.timeOrigin + now()): the click
on "Save address" inside the iframe, and the mutation that puts "EUR" in [data-kco="currency"].
Starts its own service and sandbox (SQLite) on free ports; prints every run and the median.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from browser_run import launch, running  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

WATCH_PAGE = """() => { window.__eur = new Promise(resolve => {
  const el = document.querySelector('[data-kco="currency"]');
  new MutationObserver(() => {
    if (el.textContent === 'EUR') resolve(performance.timeOrigin + performance.now());
  }).observe(el, {childList: true, characterData: true, subtree: true});
}); }"""
STAMP_CLICK = """() => { document.querySelector('button[data-sandbox="save-address"]')
  .addEventListener('click', () => { window.__clicked = performance.timeOrigin + performance.now(); },
                    {capture: true, once: true}); }"""


def one(browser, service: str) -> float:
    context = browser.new_context()
    page = context.new_page()
    page.goto(service + "/")
    page.locator('[data-kco-add="TSHIRT-BLUE-M"]').click()
    expect(page.locator('[data-kco="count"]').first).to_have_text("1")
    page.locator('a[data-kco-go="checkout"]').first.click()
    frame_locator = page.frame_locator("#klarna-checkout-iframe")
    expect(frame_locator.locator('[data-sandbox="currency"]')).to_have_text("SEK")
    frame = next(f for f in page.frames if "/sandbox/checkout/" in f.url)
    frame.evaluate(STAMP_CLICK)
    page.evaluate(WATCH_PAGE)  # window.__eur: a promise, resolved by the mutation
    frame_locator.locator('select[name="billing_country"]').select_option("FI")
    frame_locator.locator('button[data-sandbox="save-address"]').click()
    shown = page.evaluate("window.__eur")
    clicked = frame.evaluate("window.__clicked")
    context.close()
    return shown - clicked


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with running() as (service, _), sync_playwright() as p:
        browser = launch(p)
        one(browser, service)  # warm-up: imports, first connections
        times = []
        for i in range(runs):
            times.append(one(browser, service))
            print(f"run {i + 1:2d}: {times[-1]:7.1f} ms", flush=True)
        browser.close()
    print(f"median of {runs}: {statistics.median(times):.1f} ms "
          f"(min {min(times):.1f}, max {max(times):.1f})")


if __name__ == "__main__":
    main()
