"""Klarna accounts per market (docs/design.md §4.1): the shop file's [klarna_accounts] checked at
load, and a shop of three accounts — Europe, North America, Oceania — against the sandbox
playing all three: every call for an order goes to the account that created it, and a shopper
who moves the billing country from SE to US inside the iframe ends with an order at the US
account, in USD, with nothing sent to the wrong account."""
from __future__ import annotations

import secrets
import textwrap
import threading
import time

import pytest
from werkzeug.serving import make_server

from callbacks import create_app
from callbacks.klarna import accounts
from callbacks.rules import regions
from callbacks.rules.shop import ShopFileError, load_shop, parse_shop
from config import ConfigError

from .sandbox_fixtures import _QuietHandler, sandbox_server, start_sandbox  # noqa: F401 - fixtures

# Environment variable names the test shop files use (built, not literal: they are a shop file's
# own names, not settings of the service).
EU_VAR, NA_VAR, OC_VAR = ("_".join(("KCO", "TEST", r, "PW")) for r in ("EU", "NA", "OC"))
CREDENTIALS = {"eu": ("shop-eu", "eu-secret"), "na": ("shop-na", "na-secret"),
               "oc": ("shop-oc", "oc-secret")}
SANDBOX_ACCOUNTS = ",".join(f"{u}:{p}:{r}" for r, (u, p) in CREDENTIALS.items())

MARKETS = """
[shop]
name = "Three accounts"
default_country = "SE"

[markets.SE]
currency = "SEK"
locales = ["sv-SE", "en-SE"]
tax = { standard = 2500 }
shipping_tax_class = "standard"
klarna_account = "europe"

[[markets.SE.shipping]]
id = "post"
name = "Post"
price = { SEK = 4900 }

[markets.US]
currency = "USD"
locales = ["en-US"]
prices_include_tax = false
sales_tax = { default = 0, CA = 725 }
tax_shipping = true
klarna_account = "north_america"

[[markets.US.shipping]]
id = "ground"
name = "Ground"
price = { USD = 599 }

[markets.AU]
currency = "AUD"
locales = ["en-AU"]
tax = { standard = 1000 }
shipping_tax_class = "standard"
klarna_account = "oceania"

[[markets.AU.shipping]]
id = "post-au"
name = "Australia Post"
price = { AUD = 990 }

[products."TEE"]
name = "T-shirt"
tax_class = "standard"
prices = { SEK = 19900, USD = 2200, AUD = 3500 }
"""


def accounts_toml(url: str) -> str:
    return textwrap.dedent(f"""
    [klarna_accounts.europe]
    api_url = "{url}"
    region = "eu"
    username = "{CREDENTIALS['eu'][0]}"
    password_env = "{EU_VAR}"

    [klarna_accounts.north_america]
    api_url = "{url}"
    region = "na"
    username = "{CREDENTIALS['na'][0]}"
    password_env = "{NA_VAR}"

    [klarna_accounts.oceania]
    api_url = "{url}"
    region = "oc"
    username = "{CREDENTIALS['oc'][0]}"
    password_env = "{OC_VAR}"
    """)


@pytest.fixture
def passwords(monkeypatch):
    for var, region in ((EU_VAR, "eu"), (NA_VAR, "na"), (OC_VAR, "oc")):
        monkeypatch.setenv(var, CREDENTIALS[region][1])
    return monkeypatch


def shop_error(toml: str) -> ShopFileError:
    import tomllib
    with pytest.raises(ShopFileError) as raised:
        parse_shop(tomllib.loads(toml), source="three.toml")
    return raised.value


# -- the shop file --------------------------------------------------------------------------------
def test_without_accounts_every_market_sells_through_the_environment():
    shop = load_shop()  # the example has one named account; a file without any:
    import tomllib
    plain = parse_shop(tomllib.loads(MARKETS.replace('klarna_account = "europe"', "")
                                     .replace('klarna_account = "north_america"', "")
                                     .replace('klarna_account = "oceania"', "")))
    assert plain.klarna_accounts == {} and plain.uses_environment_account
    assert {plain.account_of(c) for c in plain.markets} == {None}
    assert shop.account_of("US") == "north_america" and shop.account_of("SE") is None


def test_the_three_accounts_load_with_their_regions():
    import tomllib
    shop = parse_shop(tomllib.loads(MARKETS + accounts_toml("http://127.0.0.1:9")))
    assert {n: a.region for n, a in shop.klarna_accounts.items()} == {
        "europe": "eu", "north_america": "na", "oceania": "oc"}
    assert [shop.account_of(c) for c in ("SE", "US", "AU")] == ["europe", "north_america", "oceania"]
    assert not shop.uses_environment_account


@pytest.mark.parametrize("change, key, problem", [
    (('klarna_account = "oceania"', 'klarna_account = "asia"'), "markets.AU.klarna_account",
     "'asia' is not an account of [klarna_accounts]"),
    (('region = "na"', 'region = "eu"'), "markets.US.klarna_account",
     "US sells in USD, which Klarna's Europe region does not"),
    (('region = "oc"', 'region = "mars"'), "klarna_accounts.oceania.region", "not one of Klarna's regions"),
    ((f'password_env = "{NA_VAR}"', 'password = "hunter2"'), "klarna_accounts.north_america.password",
     "never kept in the shop file"),
    ((f'password_env = "{OC_VAR}"', 'password_env = "not a name"'), "klarna_accounts.oceania.password_env",
     "is not an environment variable name"),
    ((f'username = "{CREDENTIALS["eu"][0]}"', 'username = ""'), "klarna_accounts.europe.username",
     "non-empty string"),
    (('[klarna_accounts.europe]\napi_url = "http://127.0.0.1:9"',
      '[klarna_accounts.europe]\napi_url = "ftp://api.klarna.com"'), "klarna_accounts.europe.api_url",
     "is not an http(s)://host"),
    (('[klarna_accounts.europe]\napi_url = "http://127.0.0.1:9"',
      '[klarna_accounts.europe]\napi_url = "https://api-oc.klarna.com"'), "klarna_accounts.europe.region",
     "Klarna's Oceania host"),
    (('[klarna_accounts.europe]', '[klarna_accounts."eu rope"]'), 'klarna_accounts.eu rope',
     "an account name is"),
])
def test_a_wrong_account_stops_loading_naming_file_key_and_problem(change, key, problem):
    error = shop_error(MARKETS + accounts_toml("http://127.0.0.1:9").replace(*change)
                       if "klarna_account =" not in change[0] else
                       MARKETS.replace(*change) + accounts_toml("http://127.0.0.1:9"))
    assert error.path == "three.toml" and error.key == key, str(error)
    assert problem in error.problem
    assert str(error).startswith(f"three.toml: {key}: ")


def test_klarnas_host_decides_the_region_and_the_currencies_it_sells():
    """An account at Klarna's North America host cannot sell the SE market's SEK."""
    toml = MARKETS + accounts_toml("http://127.0.0.1:9").replace(
        '[klarna_accounts.europe]\napi_url = "http://127.0.0.1:9"\nregion = "eu"',
        '[klarna_accounts.europe]\napi_url = "https://api-na.playground.klarna.com"')
    error = shop_error(toml)
    assert error.key == "markets.SE.klarna_account"
    assert "SEK" in error.problem and "North America" in error.problem
    assert regions.of_url("https://api-oc.klarna.com/") == "oc" and regions.of_url("http://127.0.0.1:8001") is None
    assert regions.sells("na", "CAD") and regions.sells("oc", "NZD") and not regions.sells("eu", "USD")


def test_a_missing_password_variable_stops_start_up(tmp_path, monkeypatch, sqlite_url):
    path = tmp_path / "three.toml"
    path.write_text(MARKETS + accounts_toml("http://127.0.0.1:9"), encoding="utf-8")
    monkeypatch.setenv(EU_VAR, "x")
    monkeypatch.setenv(NA_VAR, "  ")  # blank is unset
    monkeypatch.setenv(OC_VAR, "x")
    with pytest.raises(ShopFileError) as raised:
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "KCO_SHOP_FILE": str(path)})
    assert raised.value.path == str(path) and raised.value.key == "klarna_accounts.north_america.password_env"
    assert NA_VAR in raised.value.problem and "not set" in raised.value.problem


def test_an_account_without_api_url_takes_klarna_api_urls_regional_twin(passwords):
    import tomllib
    toml = MARKETS + accounts_toml("x").replace('api_url = "x"\n', "")
    shop = parse_shop(tomllib.loads(toml), source="three.toml")
    resolved = accounts.resolve(shop, {"KLARNA_API_URL": "https://api.playground.klarna.com"})
    assert resolved.get("north_america").api_url == "https://api-na.playground.klarna.com"
    assert resolved.get("oceania").api_url == "https://api-oc.playground.klarna.com"
    assert resolved.get("north_america").password == CREDENTIALS["na"][1]
    assert "na-secret" not in repr(resolved.get("north_america"))
    sandbox = accounts.resolve(shop, {"KLARNA_API_URL": "http://127.0.0.1:8001"})
    assert {a.api_url for a in sandbox} == {"http://127.0.0.1:8001"}


def _without_accounts() -> str:
    """The three markets with no [klarna_accounts]: all on the environment's account."""
    return (MARKETS.replace('klarna_account = "europe"\n', "")
            .replace('klarna_account = "north_america"\n', "")
            .replace('klarna_account = "oceania"\n', ""))


@pytest.mark.parametrize("url, refused", [
    ("https://api.klarna.com", ["US", "AU"]),
    ("https://api-na.playground.klarna.com", ["SE", "AU"]),
    ("https://api-oc.klarna.com/", ["SE", "US"]),
])
def test_a_market_on_the_environments_account_at_a_regional_host_is_refused_naming_it(
        tmp_path, sqlite_url, url, refused):
    """KLARNA_API_URL at one of Klarna's regional hosts gives the environment's account that
    region: a market without klarna_account in a currency it does not sell stops start-up
    naming the file, the market and the problem, as for a named account (design §4.1)."""
    import tomllib
    shop = parse_shop(tomllib.loads(_without_accounts()), source="plain.toml")
    with pytest.raises(ShopFileError) as raised:
        accounts.resolve(shop, {"KLARNA_API_URL": url})
    error = raised.value
    assert (error.path, error.key) == ("plain.toml", f"markets.{refused[0]}.currency"), str(error)
    assert "environment's account" in error.problem and url.rstrip("/") in error.problem
    # and through start-up: the app refuses to be made
    path = tmp_path / "plain.toml"
    path.write_text(_without_accounts(), encoding="utf-8")
    with pytest.raises(ShopFileError) as started:
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "KCO_SHOP_FILE": str(path),
                    "KLARNA_API_URL": url})
    assert (started.value.path, started.value.key) == (str(path), f"markets.{refused[0]}.currency")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8001", "https://klarna-stand-in.example"])
def test_a_market_on_the_environments_account_elsewhere_is_not_judged(url):
    """The sandbox or a stand-in has no region of its own: the shop file loads, and the host
    answers for itself (the sandbox's environment account sells any currency)."""
    import tomllib
    shop = parse_shop(tomllib.loads(_without_accounts()), source="plain.toml")
    resolved = accounts.resolve(shop, {"KLARNA_API_URL": url})
    assert resolved.get(None).region is None and resolved.get(None).api_url == url


def test_a_regional_host_that_sells_every_market_on_the_environments_account_loads():
    import tomllib
    europe_only = _without_accounts().split("[markets.US]")[0] + '\n[products."TEE"]\n' \
        'name = "T-shirt"\ntax_class = "standard"\nprices = { SEK = 19900 }\n'
    shop = parse_shop(tomllib.loads(europe_only), source="eu.toml")
    assert accounts.resolve(shop, {"KLARNA_API_URL": "https://api.playground.klarna.com"}).get(None).region == "eu"


@pytest.fixture
def production(monkeypatch, tmp_path):
    strong = {name: secrets.token_urlsafe(32) for name in ("KCO_CALLBACK_SECRET", "KCO_API_KEY")}
    for name, value in strong.items():
        monkeypatch.setenv(name, value)
    for var in (EU_VAR, NA_VAR, OC_VAR):
        monkeypatch.setenv(var, secrets.token_urlsafe(32))
    monkeypatch.setenv("KCO_ENV", "production")
    monkeypatch.setenv("KCO_PUBLIC_URL", "https://shop.example")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'kco.sqlite3'}")
    monkeypatch.delenv("KLARNA_API_URL", raising=False)
    monkeypatch.delenv("KLARNA_PASSWORD", raising=False)
    path = tmp_path / "three.toml"
    path.write_text(MARKETS + accounts_toml("https://api.playground.klarna.com")
                    .replace('region = "na"', "").replace('region = "oc"', "")
                    .replace('[klarna_accounts.north_america]\napi_url = "https://api.playground.klarna.com"',
                             '[klarna_accounts.north_america]\napi_url = "https://api-na.playground.klarna.com"')
                    .replace('[klarna_accounts.oceania]\napi_url = "https://api.playground.klarna.com"',
                             '[klarna_accounts.oceania]\napi_url = "https://api-oc.playground.klarna.com"'),
                    encoding="utf-8")
    monkeypatch.setenv("KCO_SHOP_FILE", str(path))
    return monkeypatch, strong


def test_production_with_every_market_on_an_account_needs_no_klarna_password(production):
    """The environment's account sells nothing here, so neither KLARNA_PASSWORD nor
    KLARNA_API_URL is asked for; the accounts' own passwords are."""
    app = create_app()
    assert app.extensions["kco"].lifecycle.accounts.get("oceania").api_url == "https://api-oc.playground.klarna.com"
    app.extensions["kco"].store.dispose()


@pytest.mark.parametrize("weak", ["short", "sandbox", "", "ab12" * 10])
def test_production_refuses_a_weak_account_password_naming_it(production, weak):
    monkeypatch, _ = production
    monkeypatch.setenv(OC_VAR, weak)
    with pytest.raises((ConfigError, ShopFileError), match=OC_VAR if weak else "password_env"):
        create_app()


def test_production_refuses_an_account_password_that_is_also_the_api_key(production):
    monkeypatch, strong = production
    monkeypatch.setenv(NA_VAR, strong["KCO_API_KEY"])
    with pytest.raises(ConfigError, match=f"{NA_VAR}.*KCO_API_KEY"):
        create_app()


def test_production_refuses_an_account_over_plain_http(production, tmp_path):
    monkeypatch, _ = production
    path = tmp_path / "three.toml"
    path.write_text(path.read_text().replace("https://api.playground.klarna.com", "http://klarna.internal"))
    with pytest.raises(ConfigError, match="klarna_accounts.europe.*https"):
        create_app()


# -- three accounts against the sandbox -----------------------------------------------------------
class _Late:
    """A WSGI app set after the server is listening: the app needs its own URL to be made."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture
def three(tmp_path, passwords, database_url, start_sandbox):
    """The service on a real port (the sandbox's shopper calls it back) with the three-account
    shop, and the sandbox playing the three accounts, each in its region."""
    sandbox = start_sandbox({"SANDBOX_ACCOUNTS": SANDBOX_ACCOUNTS})
    path = tmp_path / "three.toml"
    path.write_text(MARKETS + accounts_toml(sandbox.url), encoding="utf-8")
    late = _Late()
    server = make_server("127.0.0.1", 0, late, threaded=True, request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    late.app = app = create_app({"TESTING": True, "DATABASE_URL": database_url, "KCO_SHOP_FILE": str(path),
                                 "KCO_PUBLIC_URL": url, "KLARNA_TIMEOUT": "1,5"})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    app.sandbox = sandbox
    yield app
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    app.extensions["kco"].store.dispose()


def api(app, method, path, body=None, **headers):
    client = app.test_client()
    reply = client.open(path, method=method, json=body,
                        headers={"Authorization": f"Bearer {app.config['KCO_API_KEY']}", **headers})
    assert reply.status_code < 300, (reply.status_code, reply.get_json())
    return reply.get_json()


def wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def events(app, sid):
    return app.extensions["kco"].store.events_after(0, sid=sid, limit=1000)


ADDRESS_US = {"given_name": "Test", "family_name": "Person", "email": "t@example.com",
              "street_address": "1 Main St", "postal_code": "94105", "city": "San Francisco",
              "region": "CA", "country": "US"}


def test_a_country_change_from_se_to_us_ends_at_the_us_account_in_usd(three):
    app, sandbox = three, three.sandbox
    api(app, "PUT", "/api/sessions/s-move/cart", {"items": [{"reference": "TEE", "quantity": 2}]})
    se_order = api(app, "POST", "/api/sessions/s-move/checkout")["order_id"]
    assert sandbox.inspect(se_order)["account"] == "shop-eu"

    # The shopper moves the billing country to the US inside the iframe: Klarna's country_change.
    moved = sandbox.control("POST", f"/orders/{se_order}/address", {"billing_address": ADDRESS_US})
    assert moved["outcome"] == "applied", moved
    moved_at = max(r["id"] for r in sandbox.requests())
    state = api(app, "GET", "/api/sessions/s-move/state")
    assert state["market"]["currency"] == "USD" and state["pending_purchase_country"] == "US"
    # Klarna was answered with its order as it stands: the EU account never sees USD.
    assert sandbox.inspect(se_order)["order"]["purchase_currency"] == "SEK"

    # kco-sync.js follows the pending purchase country (suspend → PUT market → resume), then the
    # new order id in the state (and the feed's order_recreated) makes it load the checkout again.
    state = api(app, "PUT", "/api/sessions/s-move/market", {"country": "US"})
    us_order = state["klarna"]["order_id"]
    assert us_order != se_order and state["klarna"]["account"] == "north_america"
    recreated = [e for e in events(app, "s-move") if e["type"] == "order_recreated"]
    assert len(recreated) == 1
    expected = {"order_id": us_order, "old_order_id": se_order, "reason": "klarna_account",
                "klarna_account": "north_america", "old_klarna_account": "europe", "abandoned": True,
                "purchase_currency": "USD", "prefilled": ["billing_address", "shipping_address"]}
    assert {k: recreated[0]["data"].get(k) for k in expected} == expected
    # The new order starts with the address the shopper typed into the old one (Klarna's
    # copy of it, read at the old account), so the shopper does not type it again; kco-sync
    # itself keeps none of it.
    prefilled = sandbox.inspect(us_order)["order"]
    assert prefilled["billing_address"] == ADDRESS_US == prefilled["shipping_address"]
    kept = str(api(app, "GET", "/api/sessions/s-move/state")) + str(events(app, "s-move"))
    assert "1 Main St" not in kept and "t@example.com" not in kept
    loaded = api(app, "POST", "/api/sessions/s-move/checkout")
    assert loaded["order_id"] == us_order and loaded["state"]["market"]["currency"] == "USD"
    at_klarna = sandbox.inspect(us_order)
    assert at_klarna["account"] == "shop-na"
    assert (at_klarna["order"]["purchase_country"], at_klarna["order"]["purchase_currency"]) == ("US", "USD")
    assert "klarna_account=north_america" in at_klarna["merchant_urls"]["push"]

    # The purchase: validation, push, Order Management's read and acknowledge at the US account.
    bought = sandbox.control("POST", f"/orders/{us_order}/purchase",
                             {"billing_address": ADDRESS_US, "shipping_address": ADDRESS_US})
    assert bought["outcome"] == "approved", bought
    wait_for(lambda: any(e["type"] == "order_acknowledged" for e in events(app, "s-move")))
    completed = next(e for e in events(app, "s-move") if e["type"] == "order_completed")
    assert completed["data"]["purchase_currency"] == "USD" and completed["data"]["order_id"] == us_order

    # Nothing was sent to the wrong account: every call for an order went to its own.
    calls = [r for r in sandbox.requests() if r["order_id"] or r["endpoint"] == "checkout.create_order"]
    creates = [r for r in calls if r["endpoint"] == "checkout.create_order"]
    assert [c["account"] for c in creates] == ["shop-eu", "shop-na"]
    assert {r["account"] for r in calls if r["order_id"] == se_order} == {"shop-eu"}
    assert {r["account"] for r in calls if r["order_id"] == us_order} == {"shop-na"}
    assert all(r["status"] != 404 for r in calls)
    assert "shop-oc" not in {r["account"] for r in sandbox.requests()}
    # After the move the old order got nothing more: read once at its own account (was it
    # paid meanwhile?), never updated; Klarna still holds it as the shopper left it, in SEK.
    after = [r for r in calls if r["order_id"] == se_order and r["id"] > moved_at]
    assert after and {r["method"] for r in after} == {"GET"}, after
    left = sandbox.inspect(se_order)
    assert (left["status"], left["order"]["purchase_currency"]) == ("checkout_incomplete", "SEK")


def test_a_storefront_market_change_to_another_account_carries_no_address_of_the_old_country(three):
    """The shop's own country selector moved the session (the shopper's address is still the
    Swedish one): a Swedish address is no US billing address, so the US order starts empty."""
    app, sandbox = three, three.sandbox
    api(app, "PUT", "/api/sessions/s-pick/cart", {"items": [{"reference": "TEE", "quantity": 1}]})
    se_order = api(app, "POST", "/api/sessions/s-pick/checkout")["order_id"]
    se_address = {**ADDRESS_US, "street_address": "Storgatan 1", "postal_code": "11122",
                  "city": "Stockholm", "region": "", "country": "SE"}
    del se_address["region"]
    assert sandbox.control("POST", f"/orders/{se_order}/address",
                           {"billing_address": se_address})["outcome"] == "applied"
    us_order = api(app, "PUT", "/api/sessions/s-pick/market", {"country": "US"})["klarna"]["order_id"]
    assert us_order != se_order
    assert "billing_address" not in sandbox.inspect(us_order)["order"]
    recreated = next(e for e in events(app, "s-pick") if e["type"] == "order_recreated")
    assert recreated["data"]["prefilled"] == []


def test_order_management_goes_to_the_account_holding_the_order(three):
    app, sandbox = three, three.sandbox
    api(app, "PUT", "/api/sessions/s-au/cart", {"items": [{"reference": "TEE", "quantity": 1}]})
    api(app, "PUT", "/api/sessions/s-au/market", {"country": "AU"})
    order_id = api(app, "POST", "/api/sessions/s-au/checkout")["order_id"]
    sandbox.control("POST", f"/orders/{order_id}/purchase", {})
    wait_for(lambda: any(e["type"] == "order_acknowledged" for e in events(app, "s-au")))
    amount = api(app, "GET", f"/api/orders/{order_id}")["order_amount"]
    captured = api(app, "POST", f"/api/orders/{order_id}/captures", {"captured_amount": amount},
                   **{"Idempotency-Key": "cap-1"})
    assert captured["captured_amount"] == amount
    om = [r for r in sandbox.requests() if r["endpoint"] and r["endpoint"].startswith(("ordermanagement", "om"))]
    assert om and {r["account"] for r in om} == {"shop-oc"}
    row = app.extensions["kco"].store.completed_order(order_id)
    assert row["klarna_account"] == "oceania"
    # A restarted reconcile (nothing left to acknowledge) and a new read still find it there.
    assert app.extensions["kco"].lifecycle.order_account(order_id) == "oceania"


def test_a_push_url_naming_an_unknown_account_is_refused(three):
    from .conftest import kco_url
    reply = three.test_client().post(kco_url(three, "push", "s-x", order_id="o-1") + "&klarna_account=nope")
    assert reply.status_code == 400 and reply.get_json()["errors"] == {"klarna_account": ["Unknown account."]}


# -- the sandbox's accounts -------------------------------------------------------------------------
def test_another_accounts_credentials_get_404_on_every_call(start_sandbox):
    from .sandbox_fixtures import sample_order
    sandbox = start_sandbox({"SANDBOX_ACCOUNTS": SANDBOX_ACCOUNTS})
    eu = sandbox.client(credentials=CREDENTIALS["eu"])
    na = sandbox.client(credentials=CREDENTIALS["na"])
    order_id = eu.create_order(sample_order())["order_id"]
    from callbacks.klarna.client import KlarnaError
    for call in (lambda: na.read_order(order_id), lambda: na.update_order(order_id, {"merchant_reference1": "x"})):
        with pytest.raises(KlarnaError) as raised:
            call()
        assert raised.value.status == 404 and raised.value.error_code == "NOT_FOUND"
    sandbox.complete(order_id)
    for call in (lambda: na.read_merchant_order(order_id), lambda: na.acknowledge_order(order_id)):
        with pytest.raises(KlarnaError) as raised:
            call()
        assert raised.value.status == 404 and raised.value.error_code == "NO_SUCH_ORDER"
    from callbacks.klarna import om
    with pytest.raises(KlarnaError) as raised:
        om.capture(na, order_id, {"captured_amount": 100}, "k-1")
    assert raised.value.status == 404
    assert eu.read_merchant_order(order_id)["order_id"] == order_id  # its own account still can
    assert om.capture(eu, order_id, {"captured_amount": 100}, "k-1")


@pytest.mark.parametrize("region, currency", [("eu", "USD"), ("na", "SEK"), ("oc", "EUR")])
def test_an_account_cannot_create_an_order_in_a_currency_of_another_region(start_sandbox, region, currency):
    from callbacks.klarna.client import KlarnaError

    from .sandbox_fixtures import sample_order
    sandbox = start_sandbox({"SANDBOX_ACCOUNTS": SANDBOX_ACCOUNTS})
    client = sandbox.client(credentials=CREDENTIALS[region])
    with pytest.raises(KlarnaError) as raised:
        client.create_order(sample_order(purchase_currency=currency))
    assert (raised.value.status, raised.value.error_code) == (400, "BAD_VALUE")
    assert raised.value.error_messages == ["Bad value: purchase_currency"]
    assert raised.value.correlation_id


def test_without_sandbox_accounts_the_sandbox_plays_the_example_shops_two(sandbox_server):
    from .sandbox_fixtures import sample_order
    assert sandbox_server.client().create_order(sample_order(purchase_currency="USD", purchase_country="US",
                                                             locale="en-US"))
    na = sandbox_server.client(credentials=("sandbox-na", "sandbox-na"))
    assert na.create_order(sample_order(purchase_currency="USD", purchase_country="US", locale="en-US"))


def test_a_country_change_onto_another_account_answers_klarna_with_its_order_unchanged():
    """The pure decision (rules/checkout.py): the session moves to the US market, the EU order
    is answered as it stands (the EU account cannot sell USD, and the order is to be abandoned)."""
    from callbacks.rules import checkout
    from callbacks.rules.pricing import CartItem

    from .payloads import shipping_service_body
    shop = load_shop()  # SE on the environment's account, US on north_america
    state = checkout.new_state(shop, "s-1", items=[CartItem("TSHIRT-BLUE-M", 1)])
    state = {**state, "klarna": {"order_id": "ord-se", "status": "checkout_incomplete"}}
    body = shipping_service_body(state["order"]["order_lines"], country="US")
    decision = checkout.country_change(shop, state, "s-1", body)
    assert decision.state["market"]["currency"] == "USD"
    assert decision.state["pending_purchase_country"] == "US"
    assert decision.data["klarna_account"] == {"old": None, "new": "north_america"}
    assert decision.reply == checkout.reply_body(state)  # SEK, the order as Klarna holds it
    fi = checkout.country_change(shop, state, "s-1", shipping_service_body(
        state["order"]["order_lines"], country="FI"))
    assert fi.reply is None and "klarna_account" not in fi.data  # same account: re-priced reply


def test_a_carried_address_klarna_refuses_does_not_stop_the_move(three):
    """Klarna refuses the new order's body with the old order's address (400 BAD_VALUE): the
    order is made without it, under a key of its own, and the shopper types the address again."""
    app, sandbox = three, three.sandbox
    api(app, "PUT", "/api/sessions/s-refused/cart", {"items": [{"reference": "TEE", "quantity": 1}]})
    se_order = api(app, "POST", "/api/sessions/s-refused/checkout")["order_id"]
    assert sandbox.control("POST", f"/orders/{se_order}/address",
                           {"billing_address": ADDRESS_US})["outcome"] == "applied"
    sandbox.fail("checkout.create_order", 400, error_code="BAD_VALUE",
                 error_messages=["Bad value: billing_address.street_address"])
    us_order = api(app, "PUT", "/api/sessions/s-refused/market", {"country": "US"})["klarna"]["order_id"]
    assert us_order != se_order and sandbox.inspect(us_order)["account"] == "shop-na"
    assert "billing_address" not in sandbox.inspect(us_order)["order"]
    recreated = [e["data"] for e in events(app, "s-refused") if e["type"] == "order_recreated"]
    assert [(d["order_id"], d["prefilled"]) for d in recreated] == [(us_order, [])]
    creates = [r for r in sandbox.requests("checkout.create_order") if r["account"] == "shop-na"]
    assert [r["status"] for r in creates] == [400, 201]
    assert "billing_address" in creates[0]["body"] and "billing_address" not in creates[1]["body"]
    assert creates[0]["idempotency_key"] != creates[1]["idempotency_key"]
