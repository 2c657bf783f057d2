"""Take the README's screenshots (docs/img/*.png) in Chromium: the shop, the checkout in SE/SEK,
the checkout after the billing country became Finland, and the confirmation.

    .venv/bin/python scripts/screenshots.py

Starts its own service and sandbox on free ports (nothing else needs to run).
"""
from __future__ import annotations

from pathlib import Path

from browser_run import launch, running
from playwright.sync_api import expect, sync_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with running() as (service, _), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(service + "/")
        for sku in ("TSHIRT-BLUE-M", "COFFEE-DARK-500"):
            version = page.locator('[data-kco="version"]').first.inner_text()
            page.locator(f'[data-kco-add="{sku}"]').click()
            expect(page.locator('[data-kco="version"]').first).not_to_have_text(version)
        page.screenshot(path=str(OUT / "shop.png"))
        page.locator('a[data-kco-go="checkout"]').first.click()
        frame = page.frame_locator("#klarna-checkout-iframe")
        expect(frame.locator('[data-sandbox="currency"]')).to_have_text("SEK")
        page.screenshot(path=str(OUT / "checkout-se.png"), full_page=True)
        frame.locator('select[name="billing_country"]').select_option("FI")
        expect(page.locator('[data-kco="currency"]').first).to_have_text("EUR")  # sent as chosen
        frame.locator('input[name="postal_code"]').fill("00100")
        frame.locator('button[data-sandbox="save-address"]').click()
        expect(frame.locator('[data-sandbox="purchase-country"]')).to_have_attribute("data-value", "FI")
        expect(frame.locator('button[data-sandbox="buy"]')).to_be_enabled()
        expect(page.locator('[data-kco="updating"]')).to_have_count(0)
        page.screenshot(path=str(OUT / "checkout-fi.png"), full_page=True)
        frame.locator('button[data-sandbox="buy"]').click()
        page.wait_for_url("**/confirmation?*")
        expect(page.locator('[data-kco="order-status"]')).to_have_attribute("data-acknowledged", "true")
        expect(page.locator('[data-kco="paid"]')).to_be_visible()
        page.screenshot(path=str(OUT / "confirmation.png"), full_page=True)
        browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
