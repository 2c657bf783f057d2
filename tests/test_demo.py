"""`flask --app wsgi kco demo`: one full scripted checkout, standalone and against running servers."""
from __future__ import annotations

import os
import subprocess
import sys

from callbacks import create_app

from .sandbox_fixtures import start_sandbox  # noqa: F401 (fixture)
from .servers import ROOT, free_port, gunicorn

COUNTRY_CHANGE = "market SE/SEK sv-SE → FI/EUR sv-FI, pending_purchase_country FI"


def test_the_demo_runs_standalone_to_the_end(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    for name in ("KCO_PUBLIC_URL", "KLARNA_API_URL", "KCO_ENV"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", "demo", "--standalone"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for text in ("shopper: enters a Swedish address", "address_update: HTTP 200",
                 "shipping_option_update: HTTP 200", "country_change: HTTP 200",
                 "our state v5: market FI/EUR sv-FI, purchase_country SE, pending_purchase_country FI",
                 "Klarna order: purchase_country FI, currency EUR, locale sv-FI",
                 "validation: HTTP 200", "order_acknowledged after", COUNTRY_CHANGE,
                 "purchase_country SE → FI", "Country change: SE/SEK sv-SE → FI/EUR sv-FI",
                 "One full scripted checkout took"):
        assert text in out, text
    assert out.index("cart_updated") < out.index("market_changed") < out.index("order_acknowledged  ")


def test_the_demo_drives_the_running_service_and_sandbox(sqlite_url, start_sandbox):  # noqa: F811
    sandbox = start_sandbox()
    port = free_port()
    env = {"DATABASE_URL": sqlite_url, "KCO_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "KLARNA_API_URL": sandbox.url, "KCO_API_KEY": "demo-key", "KCO_CALLBACK_SECRET": "demo-secret"}
    with gunicorn(env, port=port):
        app = create_app({"TESTING": True, **env})
        try:
            result = app.test_cli_runner().invoke(args=["kco", "demo"])
        finally:
            app.extensions["kco"].store.dispose()
    assert result.exit_code == 0, result.output
    assert f"service http://127.0.0.1:{port}, sandbox {sandbox.url}" in result.output
    assert COUNTRY_CHANGE in result.output and "One full scripted checkout took" in result.output


def test_without_running_servers_the_demo_says_how_to_start_them(sqlite_url):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url,
                      "KCO_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
                      "KLARNA_API_URL": f"http://127.0.0.1:{free_port()}"})
    try:
        result = app.test_cli_runner().invoke(args=["kco", "demo"])
    finally:
        app.extensions["kco"].store.dispose()
    assert result.exit_code == 1
    assert "start them with ./scripts/run.sh" in result.output and "--standalone" in result.output
