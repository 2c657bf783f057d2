"""Fixtures: the app on SQLite and on PostgreSQL, a test client, and signed Klarna requests.

PostgreSQL tests use the server on localhost (docs/design.md §8). The database named by
KCO_TEST_PG_DATABASE (default kco_test) is created when missing, so a clean machine needs no
setup. Under pytest-xdist (scripts/test.sh runs several workers) each worker has a database of
its own, the name with the worker's id appended (kco_test_gw0, kco_test_gw1, …): the tests reset
the schema, so two workers on one database would wipe each other's tables. Where no server
answers the tests skip with the reason, except under KCO_REQUIRE_POSTGRES=1 (set by .ci/run),
where they fail: CI must not pass by skipping.
"""
from __future__ import annotations

import os
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from callbacks import create_app
from callbacks.web.tokens import callback_token, poll_token

# The reliability figures: counted in any process, printed and written once, by the controller
# under xdist (the plugin's docstring says how the workers' tallies reach it).
pytest_plugins = ["tests.reliability.figures"]

PG_SERVER = os.environ.get("KCO_TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_DATABASE = os.environ.get("KCO_TEST_PG_DATABASE", "kco_test")
if os.environ.get("PYTEST_XDIST_WORKER"):  # "gw0", "gw1", …: set in each xdist worker
    PG_DATABASE = f"{PG_DATABASE}_{os.environ['PYTEST_XDIST_WORKER']}"
REQUIRE_PG = os.environ.get("KCO_REQUIRE_POSTGRES") == "1"
# PostgreSQL allows 100 connections in all; each xdist worker's apps, and the gunicorn servers
# the reliability tests start (which inherit this environment), stay well inside a share of it.
os.environ.setdefault("KCO_DB_POOL_SIZE", "3")
os.environ.setdefault("KCO_DB_MAX_OVERFLOW", "7")
# Every app made on PostgreSQL starts a catalog listener on its own connection at its first
# priced request, and it lives until IDLE_STOP passes without one. A service has one app per
# process; the tests make hundreds, and with the 60 s of production each xdist worker held ~34
# abandoned listeners at once (the suite peaked at 82 of PostgreSQL's default 100 connections,
# and CI once met "too many clients"). A test's app is idle once its test ends.
from callbacks.catalog import watch as _catalog_watch  # noqa: E402

_catalog_watch.IDLE_STOP = 3.0
# A developer's ./scripts/run.sh writes where it runs (callbacks/cli/where.py); the tests, and the
# servers and commands they start, must never follow it to a live service: no run file for them.
os.environ["KCO_RUN_FILE"] = os.devnull
_pg_state: dict = {}


def postgres_url() -> str:
    """The test database's URL, creating the database once; skips (or fails in CI) without PG."""
    if "url" in _pg_state:
        return _pg_state["url"]
    if "error" in _pg_state:
        _no_postgres(_pg_state["error"])
    try:
        admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                                  {"d": PG_DATABASE}).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{PG_DATABASE}"'))
        admin.dispose()
    except sa.exc.OperationalError as exc:
        _pg_state["error"] = str(exc.orig).strip().splitlines()[0]
        _no_postgres(_pg_state["error"])
    _pg_state["url"] = f"{PG_SERVER}/{PG_DATABASE}"
    return _pg_state["url"]


def _no_postgres(reason: str):
    message = f"no PostgreSQL at {PG_SERVER}: {reason}"
    if REQUIRE_PG:
        pytest.fail(message + " (KCO_REQUIRE_POSTGRES=1)")
    pytest.skip(message)


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Every test that uses this runs twice: on a fresh SQLite file and a fresh PG schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kco.sqlite3'}"
    url = postgres_url()
    reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'kco.sqlite3'}"


@pytest.fixture
def app(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    yield app
    app.extensions["kco_catalog"].stop()  # the PostgreSQL catalog listener, if one started
    app.extensions["kco"].store.dispose()


@pytest.fixture
def app_factory():
    """create_app(TESTING and these overrides), as often as a test needs; every app made is
    stopped after the test."""
    made = []

    def make(**config):
        app = create_app({"TESTING": True, **config})
        made.append(app)
        return app
    yield make
    for app in made:
        app.extensions["kco_notify"].stop()
        app.extensions["kco"].store.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def shop(app):
    return app.extensions["kco"].shop


@pytest.fixture
def store(app):
    return app.extensions["kco"].store


def kco_url(app, callback: str, sid: str, order_id: str | None = None, token: str | None = None) -> str:
    """The URL Klarna would call: what we put in merchant_urls, with a valid token by default."""
    params = {"session": sid}
    if order_id:
        params["order_id"] = order_id
    params["token"] = token if token is not None else callback_token(app.config["KCO_CALLBACK_SECRET"], sid)
    return f"/kco/{callback}?{urlencode(params)}"


@pytest.fixture
def klarna(app, client):
    """`klarna("address_update", "s-1", body)` posts as Klarna would, with a valid token."""
    def post(callback: str, sid: str, body=None, *, order_id=None, token=None, data=None, **kw):
        url = kco_url(app, callback, sid, order_id, token)
        if data is not None:
            return client.post(url, data=data, content_type="application/json", **kw)
        return client.post(url, json=body, **kw)
    return post


@pytest.fixture
def api_headers(app):
    return {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}


@pytest.fixture
def poll_token_for(app):
    return lambda sid: poll_token(app.config["KCO_CALLBACK_SECRET"], sid)


def pytest_addoption(parser):
    """tests/reliability runs a short form by default (CI); `--reliability-full` (or
    KCO_RELIABILITY=full) runs the full form: more examples, requests, sessions and kills."""
    parser.addoption("--reliability-full", action="store_true", default=False,
                     help="run tests/reliability in its full form (also: KCO_RELIABILITY=full)")
