"""The sandbox's shopper (sandbox/shopper.py, deliveries.py, replies.py): callbacks
sent with Klarna's bodies and timeouts, replies judged as Klarna judges them, pushes and
notifications on Klarna's schedules — against a tiny scripted merchant, and at the end the
whole checkout against a real gunicorn of kco-sync.
"""
from __future__ import annotations

import threading
import time

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from callbacks.klarna import idempotency
from callbacks.klarna.order import CALLBACKS
from sandbox.deliveries import notification_schedule, push_schedule
from sandbox.replies import SOMETHING_WENT_WRONG

from .sandbox_fixtures import _QuietHandler, sample_order, start_sandbox  # noqa: F401 (fixture)
from .waiting import DEADLINE, until

# Klarna's timeouts (10 s for a callback, 3 s or 10 s for validation) scaled down, but not so
# far that a merchant answering at once misses them on a busy 2-core CI machine (a 0.5 s
# callback timeout did once: the address callback timed out and the next step failed); the
# slow merchants below sleep well past them.
FAST = {"SANDBOX_TIME_SCALE": 100_000,  # a Klarna minute is 0.6 ms
        "SANDBOX_CALLBACK_TIMEOUT": 2.0, "SANDBOX_VALIDATION_TIMEOUT": 2.0,
        "SANDBOX_VALIDATION_REQUIRED_TIMEOUT": 6.0, "SANDBOX_PUSH_TIMEOUT": 4.0}
SE_OPTIONS = [
    {"id": "ombud", "name": "PostNord Ombud", "price": 2900, "tax_amount": 580, "tax_rate": 2500,
     "preselected": True},
    {"id": "home", "name": "PostNord Home", "price": 4900, "tax_amount": 980, "tax_rate": 2500},
]
GOODS = sample_order()["order_lines"][0]


def cart(shipping: dict | None, currency: str = "SEK", goods: dict = GOODS, **extra) -> dict:
    """A reply that keeps Klarna's rules: the goods line plus the option's shipping line."""
    lines = [dict(goods)]
    if shipping:
        lines.append({"type": "shipping_fee", "reference": shipping["id"], "name": shipping["name"],
                      "quantity": 1, "unit_price": shipping["price"], "tax_rate": shipping["tax_rate"],
                      "total_amount": shipping["price"], "total_discount_amount": 0,
                      "total_tax_amount": shipping["tax_amount"]})
    return {"order_amount": sum(l["total_amount"] for l in lines),
            "order_tax_amount": sum(l["total_tax_amount"] for l in lines),
            "order_lines": lines, "purchase_currency": currency, **extra}


class Merchant:
    """A scripted merchant: `handlers[callback] = fn(body) -> Flask reply`; records each call."""

    def __init__(self):
        self.calls: list[dict] = []
        self.handlers = {
            "address_update": lambda body: jsonify(cart(SE_OPTIONS[0], shipping_options=SE_OPTIONS)),
            "country_change": lambda body: jsonify(cart(SE_OPTIONS[0], shipping_options=SE_OPTIONS)),
            "shipping_option_update": lambda body: jsonify(cart(body["selected_shipping_option"],
                                                                shipping_options=SE_OPTIONS)),
            "validation": lambda body: ("", 200),
            "push": lambda body: ("", 200),
            "notification": lambda body: ("", 200),
        }
        app = Flask("merchant")

        @app.post("/kco/<callback>")
        def callback(callback):
            body = request.get_json(silent=True)
            self.calls.append({"callback": callback, "args": request.args.to_dict(), "body": body,
                               "raw": request.get_data(), "at": time.monotonic()})
            return self.handlers[callback](body)

        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def urls(self) -> dict:
        urls = dict(sample_order()["merchant_urls"])
        urls.update({c: f"{self.url}/kco/{c}?sid=s-1&order_id={{checkout.order.id}}" for c in CALLBACKS})
        return urls

    def of(self, callback: str) -> list[dict]:
        return [c for c in self.calls if c["callback"] == callback]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def merchant():
    m = Merchant()
    yield m
    m.stop()


@pytest.fixture
def sandbox(start_sandbox):  # noqa: F811
    return start_sandbox(FAST)


def new_order(sandbox, merchant, **overrides) -> str:
    order = sample_order(**{"merchant_urls": merchant.urls(), **overrides})
    return sandbox.client().create_order(order)["order_id"]


def act(sandbox, order_id: str, action: str, body=None, expect=(200,)) -> dict:
    return sandbox.control("POST", f"/orders/{order_id}/{action}", body or {}, expect=expect)


def log_of(sandbox, order_id: str) -> dict:
    return sandbox.control("GET", f"/orders/{order_id}/log")


def wait_for(predicate, timeout: float = DEADLINE, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


SE_ADDRESS = {"given_name": "Testperson-se", "family_name": "Approved", "email": "a@example.com",
              "street_address": "Stårgatan 1", "postal_code": "12345", "city": "Ankeborg",
              "country": "se"}
FI_ADDRESS = {"given_name": "Testperson-fi", "family_name": "Approved", "email": "a@example.com",
              "street_address": "Kiväärikatu 10", "postal_code": "28100", "city": "Pori",
              "country": "FI"}


# --- shipping-service callbacks --------------------------------------------------------------

def test_address_in_the_same_country_sends_address_update_with_klarnas_body(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    result = act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    assert (result["callback"], result["outcome"], result["shopper_sees"]) == ("address_update", "applied", None)
    [call] = merchant.calls
    assert call["callback"] == "address_update" and call["args"]["order_id"] == order_id
    body = call["body"]
    assert "order_id" not in body and "purchase_country" not in body and "status" not in body
    assert {"order_amount", "order_tax_amount", "order_lines", "billing_address", "shipping_address",
            "purchase_currency", "locale", "merchant_reference2", "merchant_data"} <= set(body)
    assert body["billing_address"]["country"] == "SE" and body["shipping_address"] == body["billing_address"]
    assert body["order_lines"] == sample_order()["order_lines"]
    order = result["order"]["order"]
    assert order["order_lines"] == cart(SE_OPTIONS[0])["order_lines"]
    assert order["order_amount"] == 59800 + 2900 and order["shipping_options"] == SE_OPTIONS
    assert order["selected_shipping_option"]["id"] == "ombud"
    assert order["billing_address"]["street_address"] == "Stårgatan 1"


def test_billing_country_change_sends_country_change_and_keeps_purchase_country(sandbox, merchant):
    eur_goods = {**GOODS, "unit_price": 2990, "total_amount": 5980, "tax_rate": 2550,
                 "total_tax_amount": 1215}
    fi_option = {"id": "posti", "name": "Posti", "price": 590, "tax_amount": 120, "tax_rate": 2550,
                 "preselected": True}
    merchant.handlers["country_change"] = lambda body: jsonify(cart(
        fi_option, "EUR", eur_goods, locale="sv-FI", shipping_options=[fi_option],
        purchase_country="FI"))
    order_id = new_order(sandbox, merchant)
    act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    result = act(sandbox, order_id, "address", {"billing_address": FI_ADDRESS})
    assert (result["callback"], result["outcome"]) == ("country_change", "applied")
    body = merchant.of("country_change")[0]["body"]
    assert body["billing_address"]["country"] == "FI" and body["purchase_currency"] == "SEK"
    order = result["order"]["order"]
    assert (order["purchase_country"], order["purchase_currency"], order["locale"]) == ("SE", "EUR", "sv-FI")
    assert order["order_amount"] == 6570 and order["selected_shipping_option"]["id"] == "posti"
    assert [c["callback"] for c in merchant.calls] == ["address_update", "country_change"]


def test_a_country_the_order_does_not_allow_is_refused_before_any_callback(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    resp = act(sandbox, order_id, "address", {"billing_address": {**SE_ADDRESS, "country": "DE"}},
               expect=(400,))
    assert resp["error_code"] == "BAD_VALUE" and merchant.calls == []


def test_shipping_option_update_sends_the_choice_and_applies_the_reply(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    result = act(sandbox, order_id, "shipping_option", {"id": "home"})
    assert (result["callback"], result["outcome"]) == ("shipping_option_update", "applied")
    body = merchant.of("shipping_option_update")[0]["body"]
    assert body["selected_shipping_option"] == SE_OPTIONS[1]
    assert body["order_lines"][-1]["reference"] == "ombud"  # the cart as it was: Klarna adds nothing
    order = result["order"]["order"]
    assert order["selected_shipping_option"]["id"] == "home" and order["order_amount"] == 59800 + 4900
    assert act(sandbox, order_id, "shipping_option", {"id": "nope"}, expect=(400,))["error_code"] == "BAD_VALUE"


def test_without_a_shipping_option_update_url_klarna_adds_the_cost_itself(sandbox, merchant):
    urls = merchant.urls()
    del urls["shipping_option_update"]
    order_id = new_order(sandbox, merchant, merchant_urls=urls, shipping_options=SE_OPTIONS)
    result = act(sandbox, order_id, "shipping_option", {"id": "home"})
    assert result["outcome"] == "applied" and merchant.calls == []
    order = result["order"]["order"]
    assert [l["reference"] for l in order["order_lines"]] == ["TS-RED-M", "home"]
    assert order["order_amount"] == 59800 + 4900 and order["order_tax_amount"] == 11960 + 980


BROKEN_REPLIES = {
    "amounts break the rules": lambda body: jsonify({**cart(SE_OPTIONS[0]), "order_amount": 1}),
    "tax off by more than one": lambda body: jsonify(cart({**SE_OPTIONS[0], "tax_amount": 100})),
    "no purchase_currency": lambda body: jsonify({k: v for k, v in cart(None).items()
                                                  if k != "purchase_currency"}),
    "not JSON": lambda body: Response("<html>ok</html>", 200, mimetype="text/html"),
    "HTTP 500": lambda body: ("oops", 500),
    "HTTP 201": lambda body: (jsonify(cart(None)), 201),
    "400 without Klarna's error body": lambda body: (jsonify({"message": "no"}), 400),
    "3xx without Location": lambda body: ("", 303),
    "timeout": lambda body: time.sleep(4.0) or jsonify(cart(None)),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_REPLIES))
def test_a_broken_reply_is_something_went_wrong_and_changes_nothing(sandbox, merchant, broken):
    order_id = new_order(sandbox, merchant)
    before = sandbox.inspect(order_id)["order"]
    merchant.handlers["address_update"] = BROKEN_REPLIES[broken]
    result = act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    assert result["outcome"] == "something_went_wrong", result
    assert result["shopper_sees"] == SOMETHING_WENT_WRONG and result["problems"]
    after = result["order"]["order"]
    for key in ("order_lines", "order_amount", "order_tax_amount", "purchase_currency", "locale"):
        assert after[key] == before[key]
    assert "billing_address" not in after
    [entry] = log_of(sandbox, order_id)["entries"]
    assert entry["outcome"] == "something_went_wrong" and entry["request"]["billing_address"]


def test_a_timeout_is_the_configured_one(sandbox, merchant):
    merchant.handlers["address_update"] = lambda body: time.sleep(6.0) or jsonify(cart(None))
    order_id = new_order(sandbox, merchant)
    started = time.monotonic()
    result = act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    assert time.monotonic() - started < 5.5  # it gave up at 2 s, not when the merchant answered
    assert result["log_entry"]["error"] == "no answer within 2 s"
    assert result["log_entry"]["timeout_seconds"] == 2.0


def test_a_400_with_klarnas_error_body_shows_the_text(sandbox, merchant):
    merchant.handlers["address_update"] = lambda body: (jsonify(
        {"error_type": "unsupported_shipping_address", "error_text": "Vi levererar inte dit."}), 400)
    order_id = new_order(sandbox, merchant)
    result = act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    assert (result["outcome"], result["shopper_sees"]) == ("error_shown", "Vi levererar inte dit.")
    assert "billing_address" not in result["order"]["order"]


def test_a_redirect_sends_the_shopper_away(sandbox, merchant):
    merchant.handlers["country_change"] = lambda body: ("", 303, {"Location": "https://shop.example/fi"})
    order_id = new_order(sandbox, merchant)
    result = act(sandbox, order_id, "address", {"billing_address": FI_ADDRESS})
    assert (result["outcome"], result["location"]) == ("redirected", "https://shop.example/fi")
    assert result["order"]["order"]["purchase_currency"] == "SEK"


def test_a_suspended_checkout_takes_no_shopper_action_until_resumed(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    assert act(sandbox, order_id, "suspend", {"auto_resume": False})["suspended"] is True
    assert act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS}, expect=(409,))["error_code"] == "SUSPENDED"
    act(sandbox, order_id, "resume")
    assert act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})["outcome"] == "applied"


def test_unknown_orders_are_404(sandbox):
    assert act(sandbox, "nope", "address", {"billing_address": SE_ADDRESS}, expect=(404,))["error_code"] == "NOT_FOUND"
    sandbox.control("GET", "/orders/nope/log", expect=(404,))


# --- validation ------------------------------------------------------------------------------

def test_purchase_sends_the_full_order_and_a_200_completes_it(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
    result = act(sandbox, order_id, "purchase")
    assert (result["callback"], result["outcome"]) == ("validation", "approved")
    body = merchant.of("validation")[0]["body"]
    assert body["order_id"] == order_id and body["status"] == "checkout_incomplete"
    assert body["purchase_country"] == "SE" and body["billing_address"]["city"] == "Ankeborg"
    assert body["selected_shipping_option"]["id"] == "ombud" and "merchant_urls" in body
    assert result["order"]["status"] == "checkout_complete"
    assert result["redirect_to"].endswith(f"klarna_order_id={order_id}")
    assert act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS}, expect=(409,))


@pytest.mark.parametrize("reply, outcome, shown", [
    (lambda body: ("", 303, {"Location": "https://shop.example/checkout?kco_error=cart_changed"}),
     "redirected", "redirected to https://shop.example/checkout?kco_error=cart_changed"),
    (lambda body: (jsonify({"error_type": "approval_failed", "error_text": "Slut i lager."}), 400),
     "error_shown", "Slut i lager."),
])
def test_a_denied_validation_keeps_the_order_incomplete(sandbox, merchant, reply, outcome, shown):
    merchant.handlers["validation"] = reply
    order_id = new_order(sandbox, merchant)
    result = act(sandbox, order_id, "purchase")
    assert (result["outcome"], result["shopper_sees"]) == (outcome, shown)
    assert result["order"]["status"] == "checkout_incomplete"
    time.sleep(0.05)
    assert merchant.of("push") == []


def slow(seconds: float):
    return lambda body: time.sleep(seconds) or ("", 200)


@pytest.mark.parametrize("require, reply, outcome, status", [
    (False, slow(3.5), "approved_on_silence", "checkout_complete"),   # 3 s (here 2) of silence approves
    (True, slow(3.5), "approved", "checkout_complete"),               # with the option Klarna waits 10 s (here 6)
    (True, slow(9.0), "failed", "checkout_incomplete"),               # … and no answer by then fails
    (False, lambda body: ("boom", 500), "approved_on_silence", "checkout_complete"),
    (True, lambda body: ("boom", 500), "failed", "checkout_incomplete"),
])
def test_validation_timeouts_follow_require_validate_callback_success(sandbox, merchant, require,
                                                                      reply, outcome, status):
    merchant.handlers["validation"] = reply
    order_id = new_order(sandbox, merchant, options={"require_validate_callback_success": require})
    result = act(sandbox, order_id, "purchase")
    assert result["outcome"] == outcome and result["order"]["status"] == status
    assert result["log_entry"]["timeout_seconds"] == (6.0 if require else 2.0)
    assert result["log_entry"]["require_validate_callback_success"] is require
    if outcome == "failed":
        assert result["shopper_sees"] == SOMETHING_WENT_WRONG


# --- push and notification -------------------------------------------------------------------

def test_the_schedules_are_klarnas():
    schedule = push_schedule()
    assert schedule[:6] == [2, 7, 17, 32, 62, 302]
    assert all(b - a == 240 for a, b in zip(schedule[4:], schedule[5:]))
    assert schedule[-1] - 2 <= 48 * 60 < schedule[-1] - 2 + 240 and len(schedule) == 16
    notifications = notification_schedule()
    assert notifications[:3] == [0, 10, 20] and notifications[-1] == 24 * 60 and len(notifications) == 145


def test_push_is_retried_until_the_order_is_acknowledged(sandbox, merchant):
    client = sandbox.client()

    def push(body):
        if len(merchant.of("push")) >= 2:   # the first push is only answered, not acknowledged
            client.acknowledge_order(merchant.calls[-1]["args"]["order_id"])
        return "", 200
    merchant.handlers["push"] = push
    order_id = new_order(sandbox, merchant)
    bought = time.monotonic()
    act(sandbox, order_id, "purchase")
    wait_for(lambda: log_of(sandbox, order_id)["push"]["state"] == "acknowledged")
    time.sleep(0.3)  # well past the next attempts (17 and 32 Klarna minutes)
    pushes = merchant.of("push")
    assert len(pushes) == 2 and all(p["raw"] == b"" and p["args"]["order_id"] == order_id for p in pushes)
    log = log_of(sandbox, order_id)
    assert [e["schedule_minute"] for e in log["entries"] if e["callback"] == "push"] == [2, 7]
    assert log["acknowledged"] == 1 and log["push"]["next_minute"] is None
    minute = 60 / FAST["SANDBOX_TIME_SCALE"]   # real seconds: due times count from the purchase
    assert pushes[0]["at"] - bought >= 2 * minute and pushes[1]["at"] - bought >= 7 * minute


def test_an_unacknowledged_push_stops_after_48_hours(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    act(sandbox, order_id, "purchase")
    wait_for(lambda: log_of(sandbox, order_id)["push"]["state"] == "gave_up")
    assert len(merchant.of("push")) == len(push_schedule())


def test_notification_is_retried_until_a_200(sandbox, merchant):
    answers = iter([("", 500), ("", 503), ("", 200)])
    merchant.handlers["notification"] = lambda body: next(answers)
    order_id = new_order(sandbox, merchant)
    act(sandbox, order_id, "purchase", {"fraud_status": "PENDING"})
    result = act(sandbox, order_id, "fraud", {"decision": "REJECTED"})
    assert (result["event_type"], result["fraud_status"]) == ("FRAUD_RISK_REJECTED", "REJECTED")
    wait_for(lambda: log_of(sandbox, order_id)["notifications"][0]["state"] == "delivered")
    calls = merchant.of("notification")
    assert [c["body"] for c in calls] == [{"order_id": order_id, "event_type": "FRAUD_RISK_REJECTED"}] * 3
    entries = [e for e in log_of(sandbox, order_id)["entries"] if e["callback"] == "notification"]
    assert [(e["schedule_minute"], e["status"], e["outcome"]) for e in entries] == [
        (0, 500, "not_200"), (10, 503, "not_200"), (20, 200, "delivered")]
    assert sandbox.client().read_merchant_order(order_id)["fraud_status"] == "REJECTED"


def test_only_a_pending_order_gets_a_fraud_decision(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    assert act(sandbox, order_id, "fraud", {"decision": "ACCEPTED"}, expect=(409,))["error_code"] == "CONFLICT"
    act(sandbox, order_id, "purchase")
    assert act(sandbox, order_id, "fraud", {"decision": "ACCEPTED"}, expect=(409,))
    assert act(sandbox, order_id, "fraud", {"decision": "MAYBE"}, expect=(400,))["error_code"] == "BAD_VALUE"


def test_reset_stops_the_schedules_and_forgets_the_log(sandbox, merchant):
    order_id = new_order(sandbox, merchant)
    act(sandbox, order_id, "purchase")
    sandbox.control("POST", "/reset")
    # An attempt that had already started finishes (the sandbox runs in this process: each
    # attempt is a thread of its own); only then is the count final.
    until(lambda: not any(t.name == "sandbox-delivery" and t.is_alive() for t in threading.enumerate()),
          "the deliveries in flight at the reset to finish")
    sent = len(merchant.of("push"))
    time.sleep(0.3)   # ≈ 500 Klarna minutes: several more pushes were due; none may come
    assert len(merchant.of("push")) == sent < len(push_schedule())
    sandbox.control("GET", f"/orders/{order_id}/log", expect=(404,))


# --- the whole checkout: storefront API + sandbox shopper + a real gunicorn of kco-sync --------

class Shop:
    """The storefront's side: our API on the gunicorn, with the bearer key."""

    def __init__(self, base: str, sid: str):
        import requests

        self.base, self.sid = base, sid
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {E2E_KEY}"

    def __call__(self, method: str, path: str, expect: int = 200, **kw) -> dict:
        kw.setdefault("timeout", 15)
        resp = self.http.request(method, f"{self.base}/api/sessions/{self.sid}{path}", **kw)
        assert resp.status_code == expect, (method, path, resp.status_code, resp.text)
        return resp.json()

    def events(self) -> list[dict]:
        return self("GET", "/events?after=0")["events"]

    def wait_for_event(self, event_type: str) -> dict:
        after, deadline = 0, time.monotonic() + 30
        while time.monotonic() < deadline:
            feed = self("GET", f"/events?after={after}&wait=5", timeout=20)
            after = feed["last_id"]
            found = [e for e in feed["events"] if e["type"] == event_type]
            if found:
                return found[0]
        raise AssertionError(f"no {event_type} event")


E2E_KEY, E2E_SECRET = "e2e-shopper-key", "e2e-shopper-secret"


def test_full_checkout_through_the_sandbox_against_gunicorn(database_url, start_sandbox):  # noqa: F811
    from .servers import free_port, gunicorn

    sandbox = start_sandbox({"SANDBOX_TIME_SCALE": 10_000})
    port = free_port()
    env = {"DATABASE_URL": database_url, "KCO_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "KLARNA_API_URL": sandbox.url, "KLARNA_RETRIES": "0",
           "KCO_CALLBACK_SECRET": E2E_SECRET, "KCO_API_KEY": E2E_KEY}
    with gunicorn(env, port=port) as base:
        shop = Shop(base, "e2e-shopper-1")
        state = shop("PUT", "/cart", json={"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 2},
                                                     {"reference": "COFFEE-DARK-500", "quantity": 1}]})
        assert (state["market"]["country"], state["market"]["currency"]) == ("SE", "SEK")

        loaded = shop("POST", "/checkout")
        order_id = loaded["order_id"]
        klarna = sandbox.inspect(order_id)
        assert klarna["order"]["purchase_currency"] == "SEK"
        assert all("{checkout.order.id}" in url for key, url in klarna["merchant_urls"].items() if key != "terms")

        result = act(sandbox, order_id, "address", {"billing_address": SE_ADDRESS})
        assert (result["callback"], result["outcome"]) == ("address_update", "applied")
        assert result["log_entry"]["url"].startswith(f"{base}/kco/address_update?session=e2e-shopper-1&order_id={order_id}&token=")

        result = act(sandbox, order_id, "shipping_option", {"id": "postnord-home"})
        assert result["outcome"] == "applied"
        state = shop("GET", "/state")
        assert state["selected_shipping_option"] == "postnord-home"
        assert result["order"]["order"]["order_amount"] == state["order"]["order_amount"] == 52700 + 4900
        assert result["order"]["order"]["selected_shipping_option"]["id"] == "postnord-home"

        result = act(sandbox, order_id, "address", {"billing_address": FI_ADDRESS})
        assert (result["callback"], result["outcome"]) == ("country_change", "applied")
        state = shop("GET", "/state")
        assert state["market"] == {"country": "FI", "currency": "EUR", "locale": "sv-FI"}
        assert (state["purchase_country"], state["pending_purchase_country"]) == ("SE", "FI")
        order = result["order"]["order"]
        assert (order["purchase_country"], order["purchase_currency"], order["locale"]) == ("SE", "EUR", "sv-FI")
        assert order["order_amount"] == state["order"]["order_amount"]

        act(sandbox, order_id, "suspend")
        state = shop("PUT", "/market", json={"country": "FI"})
        assert (state["purchase_country"], state["pending_purchase_country"]) == ("FI", None)
        order = sandbox.inspect(order_id)["order"]
        assert (order["purchase_country"], order["purchase_currency"], order["locale"]) == ("FI", "EUR", "sv-FI")
        act(sandbox, order_id, "resume")

        sandbox.fail("ordermanagement.acknowledge_order", 503)  # the first push cannot acknowledge
        result = act(sandbox, order_id, "purchase", {"fraud_status": "PENDING"})
        assert (result["outcome"], result["order"]["status"]) == ("approved", "checkout_complete")
        shop.wait_for_event("order_acknowledged")
        wait_for(lambda: log_of(sandbox, order_id)["push"]["state"] == "acknowledged")
        log = log_of(sandbox, order_id)
        pushes = [e for e in log["entries"] if e["callback"] == "push"]
        assert len(pushes) >= 2 and pushes[0]["schedule_minute"] == 2 and pushes[1]["schedule_minute"] == 7
        # One acknowledgement at Klarna: a push racing the retry may call again, but only ever
        # with the order's one idempotency key, which Klarna treats as one request.
        keys = sandbox.inspect(order_id)["acknowledge_keys"]
        assert keys and set(keys) == {idempotency.acknowledge_order(order_id)}

        act(sandbox, order_id, "fraud", {"decision": "ACCEPTED"})
        event = shop.wait_for_event("fraud_status_changed")
        assert event["data"]["fraud_status"] == "ACCEPTED" and event["data"]["verified"] is True
        wait_for(lambda: log_of(sandbox, order_id)["notifications"][0]["state"] == "delivered")

        types = [e["type"] for e in shop.events()]
        assert types == ["cart_updated", "order_created", "address_updated", "shipping_option_selected",
                         "market_changed", "market_changed", "order_updated", "validation_passed",
                         "order_completed", "order_acknowledged", "fraud_status_changed"]
        callbacks = [(e["callback"], e["outcome"]) for e in log_of(sandbox, order_id)["entries"]
                     if e["callback"] not in ("push",)]
        assert callbacks == [("address_update", "applied"), ("shipping_option_update", "applied"),
                             ("country_change", "applied"), ("validation", "approved"),
                             ("notification", "delivered")]
