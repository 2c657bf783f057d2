"""Time from a cart change in one tab to the other tab's Klarna iframe showing the new total, in
Chromium: tab A's `PUT …/cart` (suspend → write → resume around it), the service's sync of the
open Klarna order, the feed waking tab B's kco-sync.js, B's suspend, B waiting for
`klarna.synced_version`, B's resume and the iframe reloading the order.

    .venv/bin/python bench/two_tabs.py [runs=20]

Two pages of one browser context share the shop's cookie, so both show one session's checkout.
Each run sets the quantity of the T-shirt in tab A (1 → 2 → 3 → 4 → 2 …, so every run changes
the total) and stamps, on one clock (performance.timeOrigin + now()), the `change` event in A
and every change of `[data-sandbox="order-amount"]`'s `data-value` inside B's iframe; a run is
the time until B's iframe first shows A's new total ("shown"), and until B's Buy is enabled
next to it ("buyable"). Each run waits for B to be settled before the next. Starts its own
service and sandbox (SQLite) on free ports; prints every run, the median and the worst.
`bench/run.sh --tabs 20` runs the same as an optional cell.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from browser_run import launch, running  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

SKU = "TSHIRT-BLUE-M"
FRAME = "#klarna-checkout-iframe"
WATCH_FRAME = """() => {
  // Every total and Buy state the shopper could have seen in this iframe, stamped.
  if (window.__amounts) return;
  const amount = document.querySelector('[data-sandbox="order-amount"]');
  const buy = document.querySelector('[data-sandbox="buy"]');
  window.__amounts = [];
  const note = () => {
    const now = {t: performance.timeOrigin + performance.now(), value: amount.getAttribute('data-value'),
                 enabled: !buy.disabled};
    const last = window.__amounts[window.__amounts.length - 1];
    if (!last || last.value !== now.value || last.enabled !== now.enabled) window.__amounts.push(now);
  };
  new MutationObserver(note).observe(document.body, {attributes: true, subtree: true, childList: true,
                                                     characterData: true});
  note();
}"""
CHANGE = """([sku, quantity]) => {
  const box = document.querySelector(`[data-kco-qty="${sku}"]`);
  box.value = String(quantity);
  const at = performance.timeOrigin + performance.now();
  box.dispatchEvent(new Event('change', {bubbles: true}));
  return at;
}"""


def checkout_frame(page: Page):
    return next(f for f in page.frames if "/sandbox/checkout/" in f.url)


def settled(page: Page, value: str) -> None:
    """The page and its iframe show `value`, Buy is enabled and kco-sync.js holds nothing."""
    frame = page.frame_locator(FRAME)
    expect(page.locator('[data-kco="order-amount"]').first).to_have_attribute("data-value", value)
    expect(frame.locator('[data-sandbox="order-amount"]')).to_have_attribute("data-value", value)
    expect(frame.locator('[data-sandbox="buy"]')).to_be_enabled()
    expect(page.locator('[data-kco="updating"]')).to_have_count(0)


def open_tabs(browser, service: str) -> tuple[Page, Page]:
    context = browser.new_context()
    a = context.new_page()
    a.set_default_timeout(30_000)
    a.goto(service + "/")
    a.locator(f'[data-kco-add="{SKU}"]').click()
    expect(a.locator('[data-kco="count"]').first).to_have_text("1")
    a.locator('a[data-kco-go="checkout"]').first.click()
    a.wait_for_url("**/checkout")
    total = a.locator('[data-kco="order-amount"]').first
    expect(total).not_to_have_attribute("data-value", "0")
    b = context.new_page()
    b.set_default_timeout(30_000)
    b.goto(service + "/checkout")
    value = total.get_attribute("data-value") or ""
    settled(a, value)
    settled(b, value)
    return a, b


def one(a: Page, b: Page, quantity: int) -> tuple[float, float]:
    """(ms until B's iframe shows A's new total, ms until B's Buy is enabled next to it)."""
    frame = checkout_frame(b)
    frame.evaluate(WATCH_FRAME)
    frame.evaluate("() => { window.__amounts = window.__amounts.slice(-1); }")
    before = a.locator('[data-kco="order-amount"]').first.get_attribute("data-value")
    changed = a.evaluate(CHANGE, [SKU, quantity])
    total = a.locator('[data-kco="order-amount"]').first
    expect(total).not_to_have_attribute("data-value", before or "")
    value = total.get_attribute("data-value") or ""
    settled(b, value)
    history = frame.evaluate("() => window.__amounts")
    shown = next(h["t"] for h in history if h["value"] == value)
    buyable = next(h["t"] for h in history if h["value"] == value and h["enabled"])
    settled(a, value)
    return shown - changed, buyable - changed


def measure(runs: int, log=print) -> dict:
    """Starts the servers and Chromium, runs the two tabs `runs` times (after one warm-up)."""
    with running() as (service, _), sync_playwright() as p:
        browser = launch(p)
        a, b = open_tabs(browser, service)
        quantities = [2 + i % 3 for i in range(runs + 1)]  # 2, 3, 4, 2, …: each run a new total
        one(a, b, quantities[0])  # warm-up: imports, first connections
        shown, buyable = [], []
        for i, quantity in enumerate(quantities[1:]):
            s, u = one(a, b, quantity)
            shown.append(s)
            buyable.append(u)
            log(f"run {i + 1:2d}: shown {s:7.1f} ms, buyable {u:7.1f} ms")
        browser.close()
    return {"runs": runs, "shown_ms": shown, "buyable_ms": buyable,
            "shown_median_ms": statistics.median(shown), "shown_worst_ms": max(shown),
            "buyable_median_ms": statistics.median(buyable), "buyable_worst_ms": max(buyable)}


def summary(result: dict) -> str:
    return (f"Two tabs, {result['runs']} cart changes in tab A: tab B's iframe shows the new total "
            f"after median {result['shown_median_ms']:.0f} ms, worst {result['shown_worst_ms']:.0f} ms; "
            f"B's Buy enabled next to it after median {result['buyable_median_ms']:.0f} ms, "
            f"worst {result['buyable_worst_ms']:.0f} ms")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    result = measure(runs, log=lambda line: print(line, flush=True))
    print(summary(result))


if __name__ == "__main__":
    main()
