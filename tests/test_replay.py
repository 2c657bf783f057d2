"""`flask kco replay` and the samples it replays (samples/README.md, docs/design.md §9)."""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from callbacks import create_app
from callbacks.cli import replay
from callbacks.cli.replay import Reply
from callbacks.rules import amounts as rules
from callbacks.store.database import callback_log

from .sandbox_fixtures import sample_order, start_sandbox  # noqa: F401 (fixture)
from .servers import ROOT, free_port, gunicorn

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))
FRAUD_SESSION = "web-fraud-review-1"
SECRET = "replay-test-secret"


def make_app(database_url: str, **config):
    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "KCO_CALLBACK_SECRET": SECRET, **config})


@pytest.fixture
def quiet_app(sqlite_url):
    """An app on a fresh SQLite database whose Klarna is nowhere (for samples that never ask it)."""
    app = make_app(sqlite_url, KLARNA_API_URL=f"http://127.0.0.1:{free_port()}", KLARNA_RETRIES=0)
    yield app
    app.extensions["kco"].store.dispose()


def prepared_orders(sandbox) -> dict[str, dict]:
    """The orders replay made at the sandbox for the samples that need one, by fraud_status."""
    orders = sandbox.control("GET", "/orders")["orders"]
    return {o["fraud_status"]: sandbox.inspect(o["order_id"]) for o in orders}


def invoke(app, *args):
    result = app.test_cli_runner().invoke(args=["kco", "replay", *map(str, args)])
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.output
    return result


def write_sample(path: Path, **changes) -> Path:
    sample = {"callback": "address_update", "note": "test", "expect": {"status": 200},
              "body": json.loads((SAMPLES / "01-address_update-se-sek.json").read_text())["body"]}
    sample.update(changes)
    path.write_text(json.dumps(sample))
    return path


# -- the samples themselves --------------------------------------------------------------------
def test_samples_cover_what_issue_5_asks_for():
    samples = [replay.load_sample(p) for p in SAMPLE_FILES]
    assert len(samples) >= 15
    assert {s.callback for s in samples} == set(replay.CALLBACKS)
    currencies = {s.body["purchase_currency"].upper() for s in samples
                  if isinstance(s.body, dict) and "purchase_currency" in s.body}
    assert {"SEK", "EUR", "GBP", "NOK", "CHF", "USD", "DKK"} <= currencies
    error_types = {s.expect.get("error_type") for s in samples}
    assert {"address_error", "unsupported_shipping_address", "approval_failed"} <= error_types
    assert {s.expect["status"] for s in samples} >= {200, 303, 400}
    assert any(len(s.body.get("order_lines", [])) == 1000 for s in samples if s.body)
    assert any(s.callback == "notification" and s.body["event_type"].startswith("FRAUD_RISK_")
               for s in samples)
    assert all(s.note for s in samples)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_body_follows_klarnas_amount_rules(path):
    body = replay.load_sample(path).body
    if isinstance(body, dict) and "order_lines" in body:
        assert rules.order_errors(body) == []
        assert len(json.dumps(body).encode()) < 1024 * 1024  # under the service's body limit


def test_readme_lists_every_sample():
    readme = (SAMPLES / "README.md").read_text()
    assert [p.name for p in SAMPLE_FILES if f"`{p.name}`" not in readme] == []


def test_committed_large_carts_are_what_the_script_makes():
    spec = importlib.util.spec_from_file_location("make_large_cart", SAMPLES / "make_large_cart.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shop = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"}).extensions["kco"].shop
    for name, make in (("19-address_update-1000-lines.json", script.body),
                       ("20-validation-1000-lines.json", script.validation)):
        committed = json.loads((SAMPLES / name).read_text())["body"]
        assert committed == make(shop)
        goods = [line for line in committed["order_lines"] if line["type"] != "shipping_fee"]
        assert len(goods) == 999 and len(committed["order_lines"]) == 1000
        assert len({line["reference"] for line in goods}) < len(goods)  # references repeat


def test_the_discount_sample_is_approved_for_the_session_that_has_the_coupon(quiet_app):
    """Sample 18 expects 303 only because a replayed session has no coupon (its note says so)."""
    api = quiet_app.test_client()
    headers = {"Authorization": f"Bearer {quiet_app.config['KCO_API_KEY']}"}
    cart = {"items": [{"reference": "HOODIE-GREY-L", "quantity": 1},
                      {"reference": "SOCKS-MERINO-3PK", "quantity": 2}], "coupon": "SUMMER10"}
    assert api.put("/api/sessions/web-b2e8d4f1a6/cart", json=cart, headers=headers).status_code == 200
    assert api.put("/api/sessions/web-b2e8d4f1a6/market", json={"country": "FI", "locale": "fi-FI"},
                   headers=headers).status_code == 200
    sample = SAMPLES / "18-validation-discount-denied.json"
    result = invoke(quiet_app, sample, "--session", "web-b2e8d4f1a6")
    assert result.exit_code == 1 and "expected 303, got 200" in result.output
    # A fresh session has no coupon: 303. (Its own order id: the sample's now belongs to the
    # session above, and an order of another session is refused.)
    assert invoke(quiet_app, sample, "--order-id", "another-order").exit_code == 0


# -- replaying them ----------------------------------------------------------------------------
def test_every_sample_replays_clean_in_process(database_url, start_sandbox):
    sandbox = start_sandbox()
    app = make_app(database_url, KLARNA_API_URL=sandbox.url)
    try:
        result = invoke(app, SAMPLES)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[-1] == f"{len(SAMPLE_FILES)} sent, {len(SAMPLE_FILES)} ok"
        for path in SAMPLE_FILES:
            assert any(line.startswith("ok") and f" {path.name} " in line for line in lines), path.name
        store = app.extensions["kco"].store
        # Replay made the two orders the push and notification samples need, one per session.
        made = prepared_orders(sandbox)
        assert set(made) == {"ACCEPTED", "REJECTED"}
        pushed, rejected = made["ACCEPTED"], made["REJECTED"]
        assert pushed["order"]["merchant_reference2"] != rejected["order"]["merchant_reference2"]
        # The push's after-reply work ran in-process: the order was recorded and acknowledged.
        assert store.completed_order(pushed["order_id"])["acknowledged_at"] is not None
        assert pushed["acknowledged"] >= 1
        # The fraud notification was verified with Order Management and recorded.
        state = store.get_state(rejected["order"]["merchant_reference2"])
        assert state["klarna"] == {**state["klarna"], "order_id": rejected["order_id"],
                                   "fraud_status": "REJECTED"}
    finally:
        app.extensions["kco"].store.dispose()


def test_an_explicit_order_id_is_used_instead_of_a_prepared_order(database_url, start_sandbox):
    sandbox = start_sandbox()
    order = sandbox.client().create_order(sample_order(merchant_reference2=FRAUD_SESSION))
    sandbox.complete(order["order_id"], fraud_status="REJECTED")
    app = make_app(database_url, KLARNA_API_URL=sandbox.url)
    try:
        result = invoke(app, SAMPLES / "22-notification-fraud-risk-rejected.json",
                        "--order-id", order["order_id"], "--session", FRAUD_SESSION)
        assert result.exit_code == 0, result.output
        assert len(sandbox.control("GET", "/orders")["orders"]) == 1  # nothing prepared
        assert app.extensions["kco"].store.get_state(FRAUD_SESSION)["klarna"]["fraud_status"] == "REJECTED"
    finally:
        app.extensions["kco"].store.dispose()


def test_a_sample_needing_an_order_fails_plainly_when_klarna_is_not_the_sandbox(
        quiet_app, broken_service):
    """Real Klarna (here: a server without /_sandbox) cannot be told to complete an order."""
    base, replies = broken_service
    json_type = {"Content-Type": "application/json"}
    replies["orders"] = (201, {"Location": f"{base}/checkout/v3/orders/o-1", **json_type}, "{}")
    replies["o-1"] = (200, json_type, json.dumps({"order_id": "o-1"}))
    replies["complete"] = (404, {}, "Not Found")
    quiet_app.config["KLARNA_API_URL"] = base
    result = invoke(quiet_app, SAMPLES / "22-notification-fraud-risk-rejected.json")
    assert result.exit_code == 1, result.output
    assert "not sent:" in result.output and "it is not the sandbox" in result.output
    assert "pass --order-id" in result.output
    assert "Traceback" not in result.output


def test_replay_over_http_against_gunicorn(database_url, start_sandbox):
    sandbox = start_sandbox()
    env = {"DATABASE_URL": database_url, "KCO_CALLBACK_SECRET": SECRET, "KCO_API_KEY": "k",
           "KLARNA_API_URL": sandbox.url, "KLARNA_USERNAME": "sandbox", "KLARNA_PASSWORD": "sandbox"}
    app = make_app(database_url, KLARNA_API_URL=sandbox.url)
    try:
        with gunicorn(env) as base:
            result = invoke(app, SAMPLES, "--url", base)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == f"{len(SAMPLE_FILES)} sent, {len(SAMPLE_FILES)} ok"
        assert "→ " in result.output  # the 303s came back as redirects, not followed
        with app.extensions["kco"].store.engine.connect() as conn:
            logged = conn.execute(sa.select(sa.func.count()).select_from(callback_log)).scalar_one()
        assert logged == len(SAMPLE_FILES)  # the server logged every one of them
    finally:
        app.extensions["kco"].store.dispose()


@pytest.mark.timeout(300)
def test_the_readme_replay_command_exits_0_against_the_service_and_the_sandbox(tmp_path):
    """What scripts/run.sh starts (gunicorn for each), then the README's command, twice: the
    second run against the same database makes fresh orders and sessions, so it passes too."""
    sandbox_port, service_port = free_port(), free_port()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}", "KCO_CALLBACK_SECRET": SECRET,
           "KCO_API_KEY": "k", "KLARNA_API_URL": f"http://127.0.0.1:{sandbox_port}",
           "KCO_PUBLIC_URL": f"http://127.0.0.1:{service_port}"}
    with gunicorn(env, app="sandbox_wsgi:app", workers=1, port=sandbox_port), \
            gunicorn(env, port=service_port) as base:
        for _ in range(2):
            run = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", "replay",
                                  "samples/", "--url", base], cwd=ROOT, env={**os.environ, **env},
                                 capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, run.stdout + run.stderr
            assert run.stdout.splitlines()[-1] == f"{len(SAMPLE_FILES)} sent, {len(SAMPLE_FILES)} ok"


def test_a_sample_whose_status_changed_is_reported_changed_and_fails_the_run(quiet_app, tmp_path):
    """A sample that expects 200 and now gets a (well-formed) 400: not ok, and not a broken
    reply either — the service decides differently now, and the line says so."""
    shutil.copy(SAMPLES / "04-validation-se-approved.json", tmp_path / "a-good.json")
    wrong = json.loads((SAMPLES / "13-address_update-unsupported-shipping-country.json").read_text())
    wrong["expect"] = {"status": 200}
    (tmp_path / "b-wrong.json").write_text(json.dumps(wrong))
    result = invoke(quiet_app, tmp_path)
    assert result.exit_code == 1, result.output
    assert "ok       a-good.json" in result.output
    assert "CHANGED  b-wrong.json" in result.output
    assert "expected 200, got 400" in result.output
    assert "unsupported_shipping_address" in result.output  # the error body is shown
    assert result.output.splitlines()[-1] == "2 sent, 1 ok, 1 changed"


def test_a_sample_whose_error_type_changed_is_reported_changed(quiet_app, tmp_path):
    sample = json.loads((SAMPLES / "15-validation-unknown-sku.json").read_text())
    sample["expect"] = {"status": 400, "error_type": "address_error"}
    (tmp_path / "s.json").write_text(json.dumps(sample))
    result = invoke(quiet_app, tmp_path / "s.json")
    assert result.exit_code == 1
    assert result.output.startswith("CHANGED  s.json")
    assert "expected error_type address_error, got approval_failed" in result.output
    assert result.output.splitlines()[-1] == "1 sent, 0 ok, 1 changed"


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args, **kwargs):
        pass


@pytest.fixture
def broken_service():
    """A service that answers every callback the same wrong way, over HTTP: `replies[callback]`
    is (status, headers, body)."""
    replies: dict = {}

    def app(environ, start_response):
        callback = Request(environ).path.rsplit("/", 1)[-1]
        status, headers, body = replies[callback]
        return Response(body, status, headers)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", replies
    server.shutdown()
    thread.join(5)


def test_a_reply_breaking_klarnas_rules_fails_the_run_even_when_its_status_is_expected(
        quiet_app, broken_service):
    base, replies = broken_service
    reply = {"order_amount": 10000, "order_tax_amount": 2000, "purchase_currency": "SEK",
             "order_lines": [{"type": "physical", "reference": "X", "name": "X", "quantity": 1,
                              "unit_price": 9000, "tax_rate": 2500, "total_amount": 9000,
                              "total_tax_amount": 1800}]}
    replies["address_update"] = (200, {"Content-Type": "application/json"}, json.dumps(reply))
    replies["validation"] = (303, {}, "")
    replies["country_change"] = (400, {"Content-Type": "application/json"},
                                 json.dumps({"error_type": "out_of_stock", "error_text": "x"}))
    replies["shipping_option_update"] = (502, {}, "Bad Gateway")
    result = invoke(quiet_app, SAMPLES / "01-address_update-se-sek.json",
                    SAMPLES / "17-validation-cart-changed-stale-price.json",
                    SAMPLES / "03-country_change-se-to-fi.json",
                    SAMPLES / "02-shipping_option_update-se-home-delivery.json", "--url", base)
    assert result.exit_code == 1, result.output
    out = result.output
    assert "breaks Klarna's rules: order_amount, order_tax_amount" in out
    assert "a 303 without a Location header" in out
    assert "error_type 'out_of_stock' is not one of" in out
    assert "server error 502" in out and "reply: Bad Gateway" in out
    assert out.splitlines()[-1] == "4 sent, 0 ok, 4 failed"


@pytest.mark.parametrize("callback, reply, problem", [
    ("validation", Reply(200, {}, b'{"ok": true}'), "a validation 200 must have an empty body"),
    ("address_update", Reply(200, {}, b"[]"), "a address_update 200 must be a JSON object"),
    ("country_change", Reply(400, {}, b'{"error_type": "approval_failed"}'), "error_text missing"),
    ("validation", Reply(404, {}, b""), "status 404 means nothing to Klarna"),
    ("notification", Reply(503, {}, b""), "server error 503"),
    ("push", Reply(0, {}, b""), "no reply within the timeout"),
])
def test_rule_problems(callback, reply, problem):
    assert any(problem in p for p in replay.rule_problems(callback, reply))


def test_klarnas_own_replies_pass_the_rules():
    assert replay.rule_problems("validation", Reply(200, {}, b"")) == []
    assert replay.rule_problems("validation", Reply(303, {"Location": "https://x/"}, b"")) == []
    body = {"error_type": "approval_failed", "error_text": "Slut i lager."}
    assert replay.rule_problems("address_update", Reply(400, {}, json.dumps(body).encode())) == []
    assert replay.rule_problems("push", Reply(200, {}, b"")) == []


# -- the callback log ----------------------------------------------------------------------------
def _last_log_id(app) -> int:
    with app.extensions["kco"].store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(callback_log.c.id))).scalar_one()


def test_from_log_replays_the_scrubbed_request_to_the_same_session(quiet_app):
    sample = SAMPLES / "17-validation-cart-changed-stale-price.json"
    assert invoke(quiet_app, sample, "--session", "shopper-1").exit_code == 0
    log_id = _last_log_id(quiet_app)
    store = quiet_app.extensions["kco"].store
    logged = store.logged_callback(log_id)
    assert logged["request"]["billing_address"]["given_name"] == "[scrubbed]"
    version = store.get_state("shopper-1")["version"]

    result = invoke(quiet_app, "--from-log", log_id)
    assert result.exit_code == 0, result.output
    assert f"log #{log_id}" in result.output and "(logged: 303)" in result.output
    assert "validation" in result.output and "303" in result.output
    entry = store.logged_callback(_last_log_id(quiet_app))
    assert entry["session"] == "shopper-1" and entry["callback"] == "validation"
    assert entry["order_id"] == logged["order_id"]
    assert store.get_state("shopper-1")["version"] == version  # same failure, nothing new


def test_from_log_to_a_new_session(quiet_app):
    assert invoke(quiet_app, SAMPLES / "05-address_update-fi-eur.json", "--session", "old-1").exit_code == 0
    log_id = _last_log_id(quiet_app)
    result = invoke(quiet_app, "--from-log", log_id, "--session", "new-1", "-v")
    assert result.exit_code == 0, result.output
    assert "session=new-1" in result.output and '"purchase_currency": "EUR"' in result.output
    state = quiet_app.extensions["kco"].store.get_state("new-1")
    assert state["market"]["currency"] == "EUR" and state["shipping_country"] == "FI"


# -- bad input: exit 2, a message, no traceback ----------------------------------------------
@pytest.mark.parametrize("make_args, message", [
    (lambda d: [d / "missing.json"], "missing.json: no such file or directory"),
    (lambda d: [(d / "bad.json", (d / "bad.json").write_text("{not json"))[0]], "bad.json: not valid JSON"),
    (lambda d: [write_sample(d / "cb.json", callback="order_update")], "unknown callback 'order_update'"),
    (lambda d: [write_sample(d / "ex.json", expected={"status": 200})], "unknown key(s) expected"),
    (lambda d: [write_sample(d / "st.json", expect={"status": "200"})], "expect.status '200'"),
    (lambda d: [write_sample(d / "push.json", callback="push")], "use \"body\": null"),
    (lambda d: [write_sample(d / "s.json", session="has space")], "session 'has space'"),
    (lambda d: ["--from-log", "4242"], "no callback log entry with id 4242"),
    (lambda d: [SAMPLES / "01-address_update-se-sek.json", "--url", f"http://127.0.0.1:{free_port()}"],
     "cannot reach http://127.0.0.1:"),
    (lambda d: [SAMPLES / "01-address_update-se-sek.json", "--url", "ftp://x"], "must start with http"),
    (lambda d: [SAMPLES / "01-address_update-se-sek.json", "--session", "a/b"], "--session 'a/b'"),
    (lambda d: [], "nothing to replay"),
])
def test_bad_input_exits_2_with_a_message(quiet_app, tmp_path, make_args, message):
    result = invoke(quiet_app, *make_args(tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_directory_without_samples_exits_2(quiet_app, tmp_path):
    result = invoke(quiet_app, tmp_path)
    assert result.exit_code == 2 and "no *.json samples in this directory" in result.output


def test_bad_input_is_found_before_anything_is_sent(quiet_app, tmp_path):
    write_sample(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("[]")
    result = invoke(quiet_app, tmp_path)
    assert result.exit_code == 2 and "b.json: a sample is a JSON object" in result.output
    assert _last_log_id(quiet_app) is None


# -- output --------------------------------------------------------------------------------------
def test_progress_bar_then_the_report(quiet_app):
    result = invoke(quiet_app, *SAMPLE_FILES[:3], "--progress")
    assert result.exit_code == 0, result.output
    assert "replaying" in result.stderr
    assert "replaying" not in result.stdout and result.stdout.count("\nok  ") == 2


def test_no_progress_bar_when_stderr_is_not_a_terminal(quiet_app):
    result = invoke(quiet_app, *SAMPLE_FILES[:12])
    assert result.exit_code == 0 and result.stderr == ""


def test_help_says_in_process_writes_into_the_database(quiet_app):
    result = invoke(quiet_app, "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "WRITE INTO THE CONFIGURED DATABASE" in text and "--from-log" in text


def test_a_logged_callback_whose_status_changed_is_reported_changed_not_ok():
    """A 200 that now answers 400 is a regression to look at, not a pass."""
    from callbacks.cli.samples import Payload
    from callbacks.cli.verdicts import Reply, Result, report_line, summary

    payload = Payload("log #7", "validation", {}, logged_status=200)
    body = b'{"error_type": "approval_failed", "error_text": "x"}'
    result = Result(payload, "s-1", None, Reply(400, {"Content-Type": "application/json"}, body))
    assert result.changed and not result.ok
    assert report_line(result).startswith("CHANGED") and "(logged: 200)" in report_line(result)
    assert "1 changed" in summary([result])
    same = Result(payload, "s-1", None, Reply(200, {}, b""))
    assert same.ok and not same.changed


def test_a_logged_callback_whose_error_type_changed_is_reported_changed():
    """Same status, another reply class: Klarna shows the shopper another message."""
    from callbacks.cli.samples import Payload
    from callbacks.cli.verdicts import Reply, Result, report_line

    logged = {"error_type": "approval_failed", "error_text": "[scrubbed]"}
    payload = Payload("log #8", "address_update", {}, logged_status=400, logged_reply=logged)
    now = b'{"error_type": "unsupported_shipping_address", "error_text": "x"}'
    result = Result(payload, "s-1", None, Reply(400, {}, now))
    assert result.changed and not result.ok
    assert report_line(result).startswith("CHANGED")
    assert "logged 400 approval_failed, now 400 unsupported_shipping_address" in report_line(result)
    again = Result(payload, "s-1", None, Reply(400, {}, b'{"error_type": "approval_failed", "error_text": "y"}'))
    assert again.ok


def test_a_broken_reply_is_a_failure_even_when_it_also_changed():
    from callbacks.cli.samples import Payload
    from callbacks.cli.verdicts import Reply, Result, report_line, summary

    result = Result(Payload("s.json", "address_update", {}, expect={"status": 200}), "s-1", None,
                    Reply(502, {}, b"Bad Gateway"), ["server error 502"])
    assert report_line(result).startswith("FAIL") and "expected 200, got 502" in report_line(result)
    assert summary([result]) == "1 sent, 0 ok, 1 failed"


def test_from_log_reports_changed_when_the_service_now_decides_otherwise(quiet_app, tmp_path):
    """The whole path: an address_update logged as 200, replayed after the shop stopped
    shipping there (here: the logged reply edited to what the old shop answered) → CHANGED."""
    assert invoke(quiet_app, SAMPLES / "13-address_update-unsupported-shipping-country.json",
                  "--session", "moved-1").exit_code == 0
    log_id = _last_log_id(quiet_app)
    with quiet_app.extensions["kco"].store.engine.begin() as conn:
        conn.execute(callback_log.update().where(callback_log.c.id == log_id).values(status=200, reply={}))
    result = invoke(quiet_app, "--from-log", log_id)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"CHANGED  log #{log_id}") and "(logged: 200)" in result.output
    assert "logged 200, now 400 unsupported_shipping_address" in result.output
    assert result.output.splitlines()[-1] == "1 sent, 0 ok, 1 changed"


def _lines_body(lines: int) -> dict:
    """The 1000-line sample's body, or its first `lines - 1` goods lines and its shipping line
    with the totals to match."""
    body = json.loads((SAMPLES / "19-address_update-1000-lines.json").read_text())["body"]
    if lines < len(body["order_lines"]):
        kept = body["order_lines"][:lines - 1] + body["order_lines"][-1:]
        body = {**body, "order_lines": kept,
                "order_amount": sum(line["total_amount"] for line in kept),
                "order_tax_amount": sum(line["total_tax_amount"] for line in kept)}
    assert len(body["order_lines"]) == lines
    return body


@pytest.mark.parametrize("lines", [10, 1000])
def test_from_log_of_compact_and_of_old_rows_gives_the_reply_the_callback_got(database_url, lines):
    """The log keeps a request's lines as compact rows (the allow-listed fields): replayed to
    a new session, the logged request gets the reply the original got there, as does a row in
    the format written before (every field of every line, scrubbed one by one)."""
    from callbacks.klarna import scrub as scrubbing
    from tests.conftest import kco_url

    app = make_app(database_url, KLARNA_API_URL=f"http://127.0.0.1:{free_port()}", KLARNA_RETRIES=0)
    store = app.extensions["kco"].store
    try:
        body = _lines_body(lines)
        original = app.test_client().post(kco_url(app, "address_update", "orig-1"), json=body)
        assert original.status_code == 200, original.get_data()[:300]
        log_id = _last_log_id(app)
        with store.engine.connect() as conn:  # what is stored: compact, nothing of the rest
            raw = conn.execute(sa.select(sa.cast(callback_log.c.request, sa.Text))
                               .where(callback_log.c.id == log_id)).scalar_one()
        assert "product_url" not in raw and "merchant_data" not in raw and "recipient" not in raw
        assert "Grå" not in raw and "pcs" not in raw
        logged_lines = json.loads(raw)["order_lines"]
        assert logged_lines["cols"] == list(scrubbing.LINE_COLS) and len(logged_lines["rows"]) == lines
        old_id = store.log_callback("address_update", "orig-1", None, 200, 1.0,
                                    scrubbing.scrub(body), original.get_json())
        for source, session in ((log_id, "copy-compact"), (old_id, "copy-old")):
            result = invoke(app, "--from-log", source, "--session", session)
            assert result.exit_code == 0, result.output
            assert result.output.splitlines()[-1] == "1 sent, 1 ok"
            replayed = store.logged_callback(_last_log_id(app))
            assert replayed["session"] == session and replayed["status"] == 200
            assert replayed["reply"] == original.get_json(), source
            assert store.get_state(session)["order"] == store.get_state("orig-1")["order"]
    finally:
        store.dispose()


def test_from_log_of_1000_line_validations_decides_the_same(database_url):
    """Validation compares every line: the lines as we priced them (the 1000 merged into 10)
    pass, the sample's 1000 unmerged lines do not (cart_changed); both, replayed from their
    compact rows to the same session, are decided the same."""
    from tests.conftest import kco_url

    app = make_app(database_url, KLARNA_API_URL=f"http://127.0.0.1:{free_port()}", KLARNA_RETRIES=0)
    store = app.extensions["kco"].store
    client = app.test_client()
    try:
        body = _lines_body(1000)
        priced = client.post(kco_url(app, "address_update", "big-1"), json=body).get_json()
        agreed = {**body, "purchase_country": "SE", "status": "checkout_incomplete",
                  **{key: priced[key] for key in ("order_amount", "order_tax_amount", "order_lines")}}
        changed = {**json.loads((SAMPLES / "20-validation-1000-lines.json").read_text())["body"],
                   "order_id": "ord-big-1"}
        ids = []
        for order, status in ((agreed, 200), (changed, 303)):
            reply = client.post(kco_url(app, "validation", "big-1", order_id="ord-big-1"), json=order)
            assert reply.status_code == status, reply.get_data()[:300]
            ids.append(_last_log_id(app))
        assert len(changed["order_lines"]) == 1000
        result = invoke(app, *itertools.chain.from_iterable(("--from-log", i) for i in ids))
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == "2 sent, 2 ok"
        assert [store.logged_callback(i)["status"] for i in range(ids[-1] + 1, ids[-1] + 3)] == [200, 303]
    finally:
        store.dispose()
