"""Production settings (issue 10 item 1): a published, short or blank secret stops start-up."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from callbacks import create_app
from config import ConfigError, ProductionConfig

ROOT = Path(__file__).resolve().parent.parent
STRONG = {"KCO_CALLBACK_SECRET": secrets.token_urlsafe(32), "KCO_API_KEY": secrets.token_urlsafe(32),
          "KLARNA_PASSWORD": secrets.token_urlsafe(32)}
WEAK = {
    "published development value": lambda name: {"KCO_CALLBACK_SECRET": "dev-callback-secret-change-me",
                                                 "KCO_API_KEY": "dev-api-key-change-me",
                                                 "KLARNA_PASSWORD": "sandbox"}[name],
    "one character": lambda name: "x",
    "31 characters": lambda name: "k" * 31,
    "spaces": lambda name: " " * 40,
    "a tab and a newline": lambda name: "\t\n",
    "empty": lambda name: "",
}


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KCO_ENV", "production")
    monkeypatch.setenv("KCO_PUBLIC_URL", "https://shop.example")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'kco.sqlite3'}")
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_production_starts_with_strong_secrets(production_env):
    app = create_app()
    assert app.config["KCO_CALLBACK_SECRET"] == STRONG["KCO_CALLBACK_SECRET"]
    app.extensions["kco"].store.dispose()


@pytest.mark.parametrize("name", sorted(STRONG))
@pytest.mark.parametrize("weak", sorted(WEAK))
def test_production_refuses_a_weak_secret_naming_it(production_env, name, weak):
    production_env.setenv(name, WEAK[weak](name))
    with pytest.raises(ConfigError, match=name) as raised:
        ProductionConfig()
    assert "kco secret" in str(raised.value)
    with pytest.raises(ConfigError, match=name):
        create_app()


@pytest.mark.parametrize("name", sorted(STRONG))
def test_production_refuses_a_missing_secret(production_env, name):
    production_env.delenv(name)
    with pytest.raises(ConfigError, match=name):
        create_app()


def _run(args, env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCO_", "KLARNA_"))}
    env.update(env_overrides)
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_wsgi_module_does_not_start_on_the_published_secrets(tmp_path):
    """What gunicorn does first: import wsgi, with the values of the issue's report."""
    result = _run([sys.executable, "-c", "import wsgi"], {
        "KCO_ENV": "production", "KCO_PUBLIC_URL": "https://shop.example",
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
