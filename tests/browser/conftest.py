"""Fixtures for the browser suite: the service and the sandbox as real gunicorn processes, and
Debian's Chromium launched by path (Playwright's own browser download is not used).

Without a Chromium the suite skips with the reason — unless KCO_REQUIRE_BROWSER=1 (.ci/run sets
it), where it fails: CI must not pass by skipping. A failing test leaves a screenshot and the
page's console log under instance/browser-artifacts/ for CI to keep.

The service runs on SQLite; KCO_TEST_BROWSER_DATABASE=postgresql runs it on PostgreSQL instead
(a fresh database per server pair), the database production uses.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import PG_DATABASE, PG_SERVER, postgres_url
from tests.servers import ROOT, free_port, gunicorn

CHROMIUM = os.environ.get("KCO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE = os.environ.get("KCO_REQUIRE_BROWSER") == "1"
ARTIFACTS = ROOT / "instance" / "browser-artifacts"
API_KEY = "browser-test-api-key"
SUPPORT_PASSWORD = "browser-test-support-password"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        message = (f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set KCO_CHROMIUM)")
        if REQUIRE:
            pytest.fail(message + " — KCO_REQUIRE_BROWSER=1")
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-dev-shm-usage"]}


DATABASE = os.environ.get("KCO_TEST_BROWSER_DATABASE") or "sqlite"
if DATABASE not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"KCO_TEST_BROWSER_DATABASE={DATABASE!r}: sqlite or postgresql")
_pg_pairs = itertools.count(1)


def database_url(tmp_path_factory) -> str:
    """A fresh database for one server pair: a SQLite file, or (KCO_TEST_BROWSER_DATABASE=
    postgresql) a new PostgreSQL database named after this worker's test database."""
    if DATABASE == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('browser') / 'kco.sqlite3'}"
    name = f"{PG_DATABASE}_browser{next(_pg_pairs)}"
    postgres_url()  # the server answers (else skip, or fail under KCO_REQUIRE_POSTGRES=1)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def _pg_admin(*statements: str) -> None:
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    admin.dispose()


def drop_database(url: str) -> None:
    """A pair's PostgreSQL database, once its service has stopped (a SQLite file goes with pytest's tmp)."""
    if url.startswith("postgresql"):
        _pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def service_env(tmp_path_factory, service_url: str, sandbox_url: str) -> dict[str, str]:
    """The service's environment for a browser test: its own database, the sandbox as Klarna."""
    return {"DATABASE_URL": database_url(tmp_path_factory), "KCO_PUBLIC_URL": service_url,
            "KLARNA_API_URL": sandbox_url, "KCO_API_KEY": API_KEY,
            "KCO_CALLBACK_SECRET": "browser-test-callback-secret-0123456789",
            "KCO_ENV": "development", "KCO_SUPPORT_PASSWORD": SUPPORT_PASSWORD}


@contextmanager
def pair(tmp_path_factory, sandbox_env: dict | None = None, service_extra: dict | None = None):
    """The service and a sandbox as gunicorn processes: (service URL, sandbox URL).
    `service_extra` may be a function of the sandbox's URL (a shop file naming it)."""
    sandbox_port, service_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    service_url = f"http://127.0.0.1:{service_port}"
    extra = service_extra(sandbox_url) if callable(service_extra) else (service_extra or {})
    env = {**service_env(tmp_path_factory, service_url, sandbox_url), **extra}
    try:
        with gunicorn({"SANDBOX_PUBLIC_URL": sandbox_url, **(sandbox_env or {})}, app="sandbox_wsgi:app",
                      workers=1, threads=16, port=sandbox_port):
            with gunicorn(env, workers=1, threads=48, port=service_port):
                yield service_url, sandbox_url
    finally:
        drop_database(env["DATABASE_URL"])


@pytest.fixture(scope="session")
def servers(tmp_path_factory, browser_type_launch_args):
    """(service URL, sandbox URL); one pair for the whole suite, every test its own session."""
    with pair(tmp_path_factory) as servers:
        yield servers


@pytest.fixture(scope="session")
def slow_push_servers(tmp_path_factory, browser_type_launch_args):
    """A pair whose sandbox runs Klarna's clock in real time: the first push is 2 minutes after
    the purchase, so a test can act between purchase and push (and push with the control)."""
    with pair(tmp_path_factory, {"SANDBOX_TIME_SCALE": "1"}) as servers:
        yield servers


@pytest.fixture
def service(servers):
    return servers[0]


@pytest.fixture
def sandbox_url(servers):
    return servers[1]


@pytest.fixture
def api(service):
    """The merchant's back end: the API with the key, for setting things up and checking."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"

    def call(method: str, path: str, **kw):
        response = session.request(method, service + path, timeout=30, **kw)
        return response
    yield call
    session.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def shop(page, service, request):
    """A Playwright page on the demo shop; its console goes to a log that a failure keeps."""
    console: list[str] = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    page.set_default_timeout(15_000)
    page.goto(service + "/")
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # noqa: BLE001 - the console log is still worth keeping
            console.append(f"[screenshot failed] {exc}")
        (ARTIFACTS / f"{name}.console.log").write_text("\n".join(console) + "\n", encoding="utf-8")
