"""`flask --app wsgi kco demo`: one full scripted checkout through the sandbox, step by step.

A storefront and a shopper, played over HTTP: the storefront uses our API (docs/design.md §7), the
shopper the sandbox's controls (docs/sandbox.md). The cart starts in Sweden (SEK); the shopper
enters a Swedish address, picks another shipping option, then moves the billing country to
Finland, which switches the session to FI/EUR; the storefront runs suspend → PUT market →
resume so Klarna's purchase country follows; the shopper buys; the push is acknowledged.
Every step is checked, so the demo doubles as a smoke test: it exits 1 on the first surprise.

By default it talks to the running service and sandbox: `--url` and `--sandbox-url`, else
KCO_PUBLIC_URL and KLARNA_API_URL, which outside production come from `PORT` / `SANDBOX_PORT`
or the running ./scripts/run.sh's run file when unset (callbacks/cli/where.py);
`standalone()` starts both in this process on free ports instead, with a throwaway database.
"""
from __future__ import annotations

import json
import logging
import secrets
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import requests

CART = [{"reference": "TSHIRT-BLUE-M", "quantity": 2}, {"reference": "COFFEE-DARK-500", "quantity": 1}]
SE_ADDRESS = {"given_name": "Testperson-se", "family_name": "Approved", "email": "customer@example.com",
              "street_address": "Stårgatan 1", "postal_code": "12345", "city": "Ankeborg",
              "phone": "+46765260000", "country": "SE"}
FI_ADDRESS = {"given_name": "Testperson-fi", "family_name": "Approved", "email": "customer@example.com",
              "street_address": "Kiväärikatu 10", "postal_code": "28100", "city": "Pori",
              "phone": "+358401234567", "country": "FI"}
SECOND_OPTION = "postnord-home"
ACK_TIMEOUT = 60.0   # seconds to wait for order_acknowledged (the push comes after 2 Klarna minutes)


class DemoError(Exception):
    """A step did not do what the demo expects; the message says which and what came back."""


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency}"


def market_text(market: Mapping) -> str:
    return f"{market['country']}/{market['currency']} {market['locale']}"


def event_text(event: Mapping) -> str:
    """One line per event; the market change spelled out."""
    data = event.get("data") or {}
    head = f"#{event['id']:<4} v{event['version']:<3} {event['type']:<26}"
    if event["type"] == "market_changed":
        old, new = data["market"]["old"], data["market"]["new"]
        text = f"market {market_text(old)} → {market_text(new)}"
        if "purchase_country" in data:
            text += f", purchase_country {data['purchase_country']['old']} → {data['purchase_country']['new']}"
        if data.get("pending_purchase_country"):
            text += f", pending_purchase_country {data['pending_purchase_country']}"
        return head + text
    brief = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return head + (brief if len(brief) <= 110 else brief[:107] + "...")


class Demo:
    def __init__(self, service_url: str, sandbox_url: str, api_key: str,
                 echo: Callable[[str], None] = print, sid: str | None = None,
                 found: tuple[str, str] | None = None):
        self.service, self.sandbox = service_url.rstrip("/"), sandbox_url.rstrip("/")
        self.found = found  # how each address was found (where.Place.source), for the messages
        self.echo = echo
        self.sid = sid or f"demo-{secrets.token_hex(4)}"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {api_key}"
        self.order_id: str | None = None
        self.step_no = 0

    # plumbing

    def call(self, method: str, url: str, expect=(200,), **kw) -> dict:
        try:
            resp = self.http.request(method, url, timeout=kw.pop("timeout", 15), **kw)
        except requests.ConnectionError as exc:
            raise DemoError(f"nothing answers at {url.split('/api')[0].split('/_sandbox')[0]}: "
                            "start them with ./scripts/run.sh (or run the demo with --standalone)") from exc
        if resp.status_code not in expect:
            raise DemoError(f"{method} {url} answered {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def api(self, method: str, path: str, **kw) -> dict:
        return self.call(method, f"{self.service}/api/sessions/{self.sid}{path}", **kw)

    def shopper(self, action: str, body: Mapping | None = None) -> dict:
        return self.call("POST", f"{self.sandbox}/_sandbox/orders/{self.order_id}/{action}",
                         json=dict(body or {}))

    def klarna_order(self) -> dict:
        return self.call("GET", f"{self.sandbox}/_sandbox/orders/{self.order_id}")["order"]

    def step(self, text: str) -> None:
        self.step_no += 1
        self.echo(f"{self.step_no:>2}. {text}")

    def detail(self, text: str) -> None:
        self.echo(f"      {text}")

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            raise DemoError(problem)

    def callback(self, result: Mapping, callback: str) -> None:
        self.expect(result["callback"] == callback and result["outcome"] == "applied",
                    f"expected {callback} applied, got {result['callback']} {result['outcome']}: "
                    f"{result.get('problems')}")
        entry = result["log_entry"]
        reply = entry.get("reply") or {}
        self.detail(f"sandbox → {callback}: HTTP {entry['status']} in {entry['duration_ms']} ms, "
                    f"{result['outcome']} ({money(reply['order_amount'], reply['purchase_currency'])}"
                    f"{', locale ' + reply['locale'] if reply.get('locale') else ''})")

    def show_klarna(self) -> dict:
        order = self.klarna_order()
        self.detail(f"Klarna order: purchase_country {order['purchase_country']}, currency "
                    f"{order['purchase_currency']}, locale {order['locale']}, "
                    f"{money(order['order_amount'], order['purchase_currency'])}, "
                    f"status {order['status']}")
        return order

    def show_state(self, state: Mapping) -> None:
        self.detail(f"our state v{state['version']}: market {market_text(state['market'])}, "
                    f"purchase_country {state['purchase_country']}, pending_purchase_country "
                    f"{state['pending_purchase_country']}, shipping {state['selected_shipping_option']}, "
                    f"{money(state['order']['order_amount'], state['market']['currency'])}")

    # the script

    def check_running(self) -> None:
        for url in (f"{self.service}/healthz", f"{self.sandbox}/_sandbox/orders"):
            try:
                self.http.get(url, timeout=5).raise_for_status()
            except requests.RequestException as exc:
                service, sandbox = (f" ({self.found[0]})", f" ({self.found[1]})") if self.found else ("", "")
                raise DemoError(f"{url} does not answer ({type(exc).__name__}): kco-sync on "
                                f"{self.service}{service} and the sandbox on {self.sandbox}{sandbox} must "
                                "be running; start them with ./scripts/run.sh (the demo then finds both), "
                                "point --url and --sandbox-url at them, or run the demo with --standalone") from exc

    def run(self) -> float:
        self.check_running()
        self.echo(f"kco-sync demo: service {self.service}, sandbox {self.sandbox}, session {self.sid}")
        if self.found:
            self.detail(f"(service from {self.found[0]}, sandbox from {self.found[1]})")
        started = time.monotonic()

        self.step("storefront: PUT cart " + ", ".join(f"{i['quantity']} × {i['reference']}" for i in CART))
        state = self.api("PUT", "/cart", json={"items": CART})
        self.expect(state["market"]["country"] == "SE" and state["market"]["currency"] == "SEK",
                    f"the cart should start in SE/SEK, is in {state['market']}")
        self.show_state(state)

        self.step("storefront: POST checkout (the Klarna order is created in the sandbox)")
        loaded = self.api("POST", "/checkout")
        self.order_id = loaded["order_id"]
        self.expect("_klarnaCheckout" in (loaded.get("html_snippet") or ""), "no html_snippet")
        self.detail(f"order {self.order_id}; html_snippet with window._klarnaCheckout; poll_token given")
        self.show_klarna()

        self.step("shopper: enters a Swedish address")
        self.callback(self.shopper("address", {"billing_address": SE_ADDRESS}), "address_update")

        self.step(f"shopper: picks the shipping option {SECOND_OPTION}")
        self.callback(self.shopper("shipping_option", {"id": SECOND_OPTION}), "shipping_option_update")
        self.show_state(self.api("GET", "/state"))

        self.step("shopper: changes the billing country to Finland")
        self.callback(self.shopper("address", {"billing_address": FI_ADDRESS}), "country_change")
        state = self.api("GET", "/state")
        self.show_state(state)
        self.expect((state["market"]["country"], state["market"]["currency"], state["market"]["locale"],
                     state["pending_purchase_country"]) == ("FI", "EUR", "sv-FI", "FI"),
                    f"country_change should give FI/EUR sv-FI pending FI, gave {state['market']}, "
                    f"pending {state['pending_purchase_country']}")
        order = self.show_klarna()
        self.expect(order["purchase_country"] == "SE" and order["purchase_currency"] == "EUR",
                    "a callback changes the currency, never Klarna's purchase_country")

        self.step("storefront: sees pending_purchase_country FI → window._klarnaCheckout suspend()")
        self.shopper("suspend", {"auto_resume": False})
        self.step("storefront: PUT market FI (Klarna's purchase country, currency and locale)")
        state = self.api("PUT", "/market", json={"country": "FI"})
        self.show_state(state)
        self.expect(state["purchase_country"] == "FI" and state["pending_purchase_country"] is None,
                    f"PUT market should settle the purchase country, state says {state['purchase_country']}"
                    f" pending {state['pending_purchase_country']}")
        order = self.show_klarna()
        self.expect((order["purchase_country"].upper(), order["purchase_currency"].upper(), order["locale"])
                    == ("FI", "EUR", "sv-FI"), "Klarna's order should now be FI/EUR sv-FI")
        self.step("storefront: window._klarnaCheckout resume()")
        self.shopper("resume")

        self.step("shopper: clicks buy")
        result = self.shopper("purchase")
        self.expect(result["outcome"] == "approved" and result["order"]["status"] == "checkout_complete",
                    f"validation should approve, got {result['outcome']}: {result.get('shopper_sees')} "
                    f"{result.get('problems')}")
        self.detail(f"sandbox → validation: HTTP {result['log_entry']['status']} in "
                    f"{result['log_entry']['duration_ms']} ms → checkout_complete; shopper redirected "
                    f"to {result['redirect_to']}; push due in 2 Klarna minutes")

        self.step("storefront: follows the event feed until order_acknowledged")
        self.wait_for_acknowledged()
        seconds = time.monotonic() - started

        self.report()
        self.echo(f"\nOne full scripted checkout took {seconds:.2f} s "
                  f"(session {self.sid}, Klarna order {self.order_id}).")
        return seconds

    def wait_for_acknowledged(self) -> None:
        after, deadline = 0, time.monotonic() + ACK_TIMEOUT
        while time.monotonic() < deadline:
            feed = self.api("GET", f"/events?after={after}&wait=5", timeout=20)
            after = feed["last_id"]
            if any(e["type"] == "order_acknowledged" for e in feed["events"]):
                log = self.call("GET", f"{self.sandbox}/_sandbox/orders/{self.order_id}/log")
                pushes = [e for e in log["entries"] if e["callback"] == "push"]
                self.detail(f"order_acknowledged after {len(pushes)} push(es); Klarna stops pushing")
                return
        raise DemoError(f"no order_acknowledged within {ACK_TIMEOUT:g} s")

    def report(self) -> None:
        log = self.call("GET", f"{self.sandbox}/_sandbox/orders/{self.order_id}/log")
        self.echo("\nCallbacks the sandbox sent (GET /_sandbox/orders/{id}/log):")
        for entry in log["entries"]:
            minute = f" at Klarna minute {entry['schedule_minute']}" if entry.get("schedule_minute") is not None else ""
            self.echo(f"  {entry['callback']:<23} HTTP {entry.get('status')!s:<4} {entry['outcome']:<20} "
                      f"{entry.get('duration_ms')} ms{minute}")
        self.echo(f"  push schedule: {log['push']['state'] if log['push'] else 'none'}")

        state = self.api("GET", "/state")
        order = state["order"]
        self.echo("\nFinal state (GET /api/sessions/{sid}/state):")
        summary = {k: state[k] for k in ("session", "version", "market", "purchase_country",
                                         "pending_purchase_country", "shipping_country",
                                         "selected_shipping_option", "klarna")}
        currency = state["market"]["currency"]
        summary["order"] = {"order_amount": order["order_amount"], "order_tax_amount": order["order_tax_amount"],
                            "order_lines": [f"{l['quantity']} × {l['reference']} = {money(l['total_amount'], currency)}"
                                            for l in order["order_lines"]]}
        self.echo("  " + json.dumps(summary, indent=2, ensure_ascii=False).replace("\n", "\n  "))

        events = self.api("GET", "/events?after=0")["events"]
        self.echo(f"\nEvent feed (GET /api/sessions/{{sid}}/events): {len(events)} events")
        for event in events:
            self.echo("  " + event_text(event))
        changes = [e for e in events if e["type"] == "market_changed"]
        if changes:
            first, last = changes[0]["data"]["market"]["old"], changes[-1]["data"]["market"]["new"]
            self.echo(f"\nCountry change: {market_text(first)} → {market_text(last)} (events "
                      f"{', '.join('#' + str(e['id']) for e in changes)}); purchase_country now "
                      f"{state['purchase_country']}, here and at Klarna.")


# --- --standalone: both servers in this process ------------------------------------------------

class _Server:
    """A werkzeug threaded server on a free loopback port; `app` may be set after the bind."""

    def __init__(self, app=None):
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log(self, *args, **kwargs):
                pass

        self.app = app
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def _wsgi(self, environ, start_response):
        return self.app(environ, start_response)

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def standalone() -> Iterator[tuple[str, str, str]]:
    """kco-sync (on a throwaway SQLite database) and the sandbox, in this process; yields
    (service URL, sandbox URL, API key)."""
    from callbacks import create_app
    from sandbox import create_sandbox

    for name in ("", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="kco-demo-") as tmp:
        sandbox = _Server(create_sandbox({"SANDBOX_USERNAME": "sandbox", "SANDBOX_PASSWORD": "sandbox"})).start()
        service = _Server()
        public = service.url
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the development keys are what a demo wants
            app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/demo.sqlite3", "KCO_PUBLIC_URL": public,
                              "KCO_TERMS_URL": f"{public}/terms", "KCO_CHECKOUT_URL": f"{public}/checkout",
                              "KCO_CONFIRMATION_URL": f"{public}/confirmation",
                              "KLARNA_API_URL": sandbox.url, "KLARNA_USERNAME": "sandbox",
                              "KLARNA_PASSWORD": "sandbox", "KCO_AUTO_MIGRATE": True})
        for name in ("", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        service.app = app
        service.start()
        try:
            yield service.url, sandbox.url, app.config["KCO_API_KEY"]
        finally:
            service.stop()
            sandbox.stop()
            notifier = app.extensions.get("kco_notify")
            if notifier is not None:
                notifier.stop()
            app.extensions["kco"].store.dispose()


def main(config: Mapping, *, standalone_mode: bool = False, service_url: str | None = None,
         sandbox_url: str | None = None, echo: Callable[[str], None] = print) -> int:
    """Run the demo; 0 when every step went as expected, 1 otherwise (the reason printed)."""
    try:
        if standalone_mode:
            with standalone() as (service, sandbox, key):
                echo("--standalone: kco-sync and the sandbox started in this process on free ports")
                Demo(service, sandbox, key, echo).run()
        else:
            from callbacks.cli import where

            ours = where.locate(config, "KCO_PUBLIC_URL", "--url", service_url)
            klarna = where.locate(config, "KLARNA_API_URL", "--sandbox-url", sandbox_url)
            Demo(ours.url, klarna.url, config["KCO_API_KEY"], echo, found=(ours.source, klarna.source)).run()
    except DemoError as exc:
        echo(f"demo failed: {exc}")
        return 1
    return 0
