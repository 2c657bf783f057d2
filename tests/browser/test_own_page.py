"""The README's "Your own page" checklist, followed from another origin: docs/own-page/ served by
a plain static server on its own port, kco-sync (gunicorn) with KCO_CORS_ORIGINS and the three
merchant URLs pointing there, the browser token from the API key — the checkout shows, buying
lands on the page's own confirmation, which shows Klarna's confirmation of the paid order."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import API_KEY, ARTIFACTS
from tests.servers import ROOT, free_port, gunicorn

PAGES = ROOT / "docs" / "own-page"
WITHIN = 60_000  # ms: a deadline for a busy machine, not a speed requirement


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def own_page(tmp_path_factory, browser_type_launch_args):
    """(the page's origin, kco-sync's URL): `python -m http.server` in a thread, and the service
    and sandbox configured as the checklist says."""
    handler = functools.partial(_Quiet, directory=str(PAGES))
    pages = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=pages.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{pages.server_port}"
    sandbox_port, service_port = free_port(), free_port()
    sandbox_url, service_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{service_port}"
    db = tmp_path_factory.mktemp("own-page") / "kco.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{db}", "KCO_PUBLIC_URL": service_url, "KLARNA_API_URL": sandbox_url,
           "KCO_API_KEY": API_KEY, "KCO_CALLBACK_SECRET": "own-page-test-callback-secret-0123456789",
           "KCO_ENV": "development",
           # The checklist:
           "KCO_CORS_ORIGINS": origin,
           "KCO_CHECKOUT_URL": f"{origin}/checkout.html",
           "KCO_CONFIRMATION_URL": f"{origin}/confirmation.html",
           "KCO_TERMS_URL": f"{origin}/terms.html"}
    try:
        with gunicorn({"SANDBOX_PUBLIC_URL": sandbox_url}, app="sandbox_wsgi:app", workers=1,
                      threads=16, port=sandbox_port):
            with gunicorn(env, workers=1, threads=16, port=service_port):
                yield origin, service_url
    finally:
        pages.shutdown()
        pages.server_close()


def test_the_checklist_followed_from_another_origin_checks_out_and_confirms(own_page, page):
    origin, kco = own_page
    sid = "own-page-1"
    token = requests.post(f"{kco}/api/sessions/{sid}/browser-token",
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30).json()["browser_token"]
    console: list[str] = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    page.set_default_timeout(WITHIN)
    try:
        page.goto(f"{origin}/checkout.html#kco={kco}&session={sid}&token={token}")
        frame = page.frame_locator("#klarna-checkout-iframe")
        expect(frame.locator('[data-sandbox="currency"]')).to_have_text("SEK", timeout=WITHIN)
        expect(page.locator("#currency")).to_have_text("SEK", timeout=WITHIN)
        amount = frame.locator('[data-sandbox="order-amount"]').get_attribute("data-value")
        assert page.locator("#total").inner_text() == f"{int(amount or 0) / 100:.2f}"

        frame.locator('button[data-sandbox="buy"]').click()
        page.wait_for_url(f"{origin}/confirmation.html?**")
        assert f"session={sid}" in page.url
        confirmation = page.frame_locator("#confirmation iframe")
        expect(confirmation.locator('body[data-page="confirmation"]')).to_have_attribute(
            "data-status", "checkout_complete", timeout=WITHIN)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "own-page-failed.png"), full_page=True)
        (ARTIFACTS / "own-page-failed.console.log").write_text("\n".join(console) + "\n", encoding="utf-8")
        raise
