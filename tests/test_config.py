"""Production settings: a published, short, blank, low-entropy or shared secret stops start-up,
as do an unknown KCO_ENV, a Klarna API reached over plain http and a CORS origin that opens the
API to any page; each refusal names the variable and says how to fix it."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from callbacks import create_app
from config import Config, ConfigError, ProductionConfig, from_environment

ROOT = Path(__file__).resolve().parent.parent
STRONG = {"KCO_CALLBACK_SECRET": secrets.token_urlsafe(32), "KCO_API_KEY": secrets.token_urlsafe(32),
          "KLARNA_PASSWORD": secrets.token_urlsafe(32), "KCO_SUPPORT_PASSWORD": secrets.token_urlsafe(32),
          # the password_env of the example shop's North America account (its [klarna_accounts])
          "KLARNA_NA_PASSWORD": secrets.token_urlsafe(32)}
KLARNA_EU = "https://api.klarna.com"
WEAK = {
    "published development value": lambda name: {"KCO_CALLBACK_SECRET": "dev-callback-secret-change-me",
                                                 "KCO_API_KEY": "dev-api-key-change-me",
                                                 "KLARNA_PASSWORD": "sandbox",
                                                 "KCO_SUPPORT_PASSWORD": "s3cret-support",
                                                 "KLARNA_NA_PASSWORD": "sandbox-na"}[name],
    "one character": lambda name: "x",
    "31 characters": lambda name: "k" * 31,
    "spaces": lambda name: " " * 40,
    "a tab and a newline": lambda name: "\t\n",
    "empty": lambda name: "",
    "one character repeated": lambda name: "a" * 40,
    "a short pattern repeated": lambda name: "ab12" * 10,
    "two characters repeated to 32": lambda name: "ab" * 16,
    "a random half repeated": lambda name: secrets.token_hex(8) * 2,  # 16 hex digits, twice
    "a pattern repeated, cut short": lambda name: "q1w2e3r4t5" * 4 + "q1w",
    "the development value repeated": lambda name: "dev-api-key-change-me" * 2,
    "a development value embedded": lambda name: "x" + "dev-callback-secret-change-me" + secrets.token_hex(8),
    "the support password of the report": lambda name: "support",
}


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KCO_ENV", "production")
    monkeypatch.setenv("KCO_PUBLIC_URL", "https://shop.example")
    monkeypatch.setenv("KLARNA_API_URL", KLARNA_EU)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'kco.sqlite3'}")
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_production_starts_with_strong_secrets(production_env):
    app = create_app()
    assert app.config["KCO_CALLBACK_SECRET"] == STRONG["KCO_CALLBACK_SECRET"]
    assert app.config["KCO_SUPPORT_PASSWORD"] == STRONG["KCO_SUPPORT_PASSWORD"]
    assert app.config["KLARNA_API_URL"] == KLARNA_EU
    app.extensions["kco"].store.dispose()


@pytest.mark.parametrize("password", [None, "", "  "])
def test_production_starts_with_the_support_console_off(production_env, password):
    if password is None:
        production_env.delenv("KCO_SUPPORT_PASSWORD")
    else:
        production_env.setenv("KCO_SUPPORT_PASSWORD", password)
    app = create_app()
    assert app.config["KCO_SUPPORT_PASSWORD"] is None
    assert app.test_client().get("/support/").status_code == 404
    app.extensions["kco"].store.dispose()


@pytest.mark.parametrize("name", sorted(STRONG))
@pytest.mark.parametrize("weak", sorted(WEAK))
def test_production_refuses_a_weak_secret_naming_it(production_env, name, weak):
    if name == "KCO_SUPPORT_PASSWORD" and not WEAK[weak](name).strip():
        pytest.skip("a blank support password is unset: the console is off")
    production_env.setenv(name, WEAK[weak](name))
    with pytest.raises(ConfigError, match=name) as raised:
        ProductionConfig()
    assert "kco secret" in str(raised.value)
    with pytest.raises(ConfigError, match=name):
        create_app()


@pytest.mark.parametrize("name", sorted(set(STRONG) - {"KCO_SUPPORT_PASSWORD"}))
def test_production_refuses_a_missing_secret(production_env, name):
    production_env.delenv(name)
    with pytest.raises(ConfigError, match=name):
        create_app()


@pytest.mark.parametrize("first, second", [("KCO_API_KEY", "KCO_CALLBACK_SECRET"),
                                           ("KCO_SUPPORT_PASSWORD", "KCO_API_KEY"),
                                           ("KLARNA_PASSWORD", "KCO_CALLBACK_SECRET"),
                                           ("KCO_SUPPORT_PASSWORD", "KLARNA_PASSWORD"),
                                           # a [klarna_accounts] password and the environment's
                                           ("KLARNA_NA_PASSWORD", "KLARNA_PASSWORD"),
                                           ("KLARNA_NA_PASSWORD", "KCO_API_KEY")])
def test_production_refuses_one_secret_serving_twice(production_env, first, second):
    """Whoever holds the API key could otherwise forge callbacks and browser tokens."""
    production_env.setenv(first, STRONG[second])
    with pytest.raises(ConfigError, match=f"{first}.*{second}|{second}.*{first}") as raised:
        ProductionConfig()
    assert "own" in str(raised.value)  # the fix: a value of its own


@pytest.mark.parametrize("written", ["Production", "production ", " PRODUCTION\n", "pRoDuCtIoN"])
def test_kco_env_is_read_whatever_its_case_and_spaces(production_env, written):
    production_env.setenv("KCO_ENV", written)
    production_env.setenv("KCO_API_KEY", "dev-api-key-change-me")
    with pytest.raises(ConfigError, match="KCO_API_KEY"):  # production's checks apply
        from_environment()


@pytest.mark.parametrize("written", ["prod", "staging", "test", "live", "1"])
def test_an_unknown_kco_env_is_refused_listing_the_allowed_values(production_env, written):
    production_env.setenv("KCO_ENV", written)
    with pytest.raises(ConfigError, match="KCO_ENV") as raised:
        from_environment()
    assert "development" in str(raised.value) and "production" in str(raised.value)
    assert repr(written) in str(raised.value)


@pytest.mark.parametrize("written", ["", " ", "development", "Development "])
def test_kco_env_unset_or_development_runs_in_development(production_env, written):
    production_env.setenv("KCO_ENV", written)
    assert from_environment().PRODUCTION is False


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:8001", "http://api.klarna.com", "api.klarna.com",
                                 "ftp://api.klarna.com", "https://"])
def test_production_needs_an_explicit_https_klarna_api_url(production_env, url):
    """The Klarna password travels in every request's Basic auth: never in clear, never to the
    sandbox's default address by omission."""
    if url is None:
        production_env.delenv("KLARNA_API_URL")
    else:
        production_env.setenv("KLARNA_API_URL", url)
    with pytest.raises(ConfigError, match="KLARNA_API_URL") as raised:
        ProductionConfig()
    assert "https://" in str(raised.value)


@pytest.mark.parametrize("origins", ["*", "null", "https://shop.example,*", "https://shop.example, null",
                                     "http://shop.example", "shop.example", "https://shop.example/checkout",
                                     "https://*.shop.example"])
def test_production_refuses_a_cors_origin_that_is_not_one_https_origin(production_env, origins):
    production_env.setenv("KCO_CORS_ORIGINS", origins)
    with pytest.raises(ConfigError, match="KCO_CORS_ORIGINS") as raised:
        ProductionConfig()
    assert "https://" in str(raised.value)


def test_production_accepts_https_cors_origins(production_env):
    production_env.setenv("KCO_CORS_ORIGINS", "https://shop.example, https://www.shop.example:8443/")
    app = create_app()
    reply = app.test_client().options("/api/sessions/s-1/state",
                                      headers={"Origin": "https://www.shop.example:8443",
                                               "Access-Control-Request-Method": "GET"})
    assert reply.headers.get("Access-Control-Allow-Origin") == "https://www.shop.example:8443"
    app.extensions["kco"].store.dispose()


@pytest.mark.parametrize("origins", ["*", "null", "http://127.0.0.1:24005,*", "null,http://127.0.0.1:24005"])
def test_development_refuses_a_wildcard_or_null_cors_origin(monkeypatch, origins):
    """`null` is the origin of sandboxed frames and file:// pages: any of them would be let in."""
    monkeypatch.delenv("KCO_ENV", raising=False)
    monkeypatch.setenv("KCO_CORS_ORIGINS", origins)
    with pytest.raises(ConfigError, match="KCO_CORS_ORIGINS"):
        Config()


def test_development_accepts_an_http_origin_for_a_local_page(monkeypatch):
    monkeypatch.delenv("KCO_ENV", raising=False)
    monkeypatch.setenv("KCO_CORS_ORIGINS", "http://127.0.0.1:24005")
    assert Config().KCO_CORS_ORIGINS == "http://127.0.0.1:24005"


def _run(args, env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCO_", "KLARNA_"))}
    env.update(env_overrides)
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kco_env", ["production", " Production "])
def test_the_wsgi_module_does_not_start_on_the_published_secrets(tmp_path, kco_env):
    """What gunicorn does first: import wsgi, with the values of the issue's report."""
    result = _run([sys.executable, "-c", "import wsgi"], {
        "KCO_ENV": kco_env, "KCO_PUBLIC_URL": "https://shop.example", "KLARNA_API_URL": KLARNA_EU,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}",
        "KCO_CALLBACK_SECRET": "dev-callback-secret-change-me", "KCO_API_KEY": "dev-api-key-change-me",
        "KLARNA_PASSWORD": STRONG["KLARNA_PASSWORD"]})
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "KCO_CALLBACK_SECRET" in result.stderr


def test_kco_secret_prints_a_fresh_secret_production_accepts(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}"}
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "kco", "secret"]
    first, second = _run(flask, env), _run(flask, env)
    assert first.returncode == 0, first.stderr
    one, two = first.stdout.strip(), second.stdout.strip()
    assert one != two and len(one) >= 32 and "\n" not in one
    from config import weak_secret
    assert weak_secret(one) is None  # production's own check accepts it


@pytest.mark.parametrize("name, value", [("KCO_DB_POOL_SIZE", "0"), ("KCO_DB_POOL_SIZE", "ten"),
                                         ("KCO_DB_MAX_OVERFLOW", "-1"), ("KCO_DB_MAX_OVERFLOW", "1.5")])
def test_a_pool_size_that_is_not_a_count_is_refused_naming_it(monkeypatch, name, value):
    """SQLAlchemy would read a pool_size of 0 as "no limit": the operator's figure must be one."""
    from callbacks.store.engine import make_engine
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/nothing")
