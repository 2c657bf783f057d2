"""The reliability suite (docs/reliability.md): fixtures, the short/full switch, the figures.

Short form (the default, and CI's): a few dozen examples per endpoint, a few hundred requests
per scenario, one worker kill. Full form: `scripts/reliability.sh`, i.e. `--reliability-full`
or KCO_RELIABILITY=full. The figures are printed and written by the plugin in figures.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from callbacks import create_app

from ..sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures
from . import figures


@dataclass(frozen=True)
class Scale:
    full: bool

    def pick(self, short, full):
        return full if self.full else short

    def hypothesis(self, short: int, full: int, **kw) -> settings:
        return settings(max_examples=self.pick(short, full), deadline=None, derandomize=False,
                        suppress_health_check=list(HealthCheck), print_blob=True, **kw)

    @property
    def name(self) -> str:
        return "full" if self.full else "short"


@pytest.fixture(scope="session")
def scale(pytestconfig) -> Scale:
    return Scale(figures.full_form(pytestconfig))


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def rel_app(database_url, sandbox_server):
    """The app on a fresh database (SQLite and PostgreSQL), its Klarna the sandbox server."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "KLARNA_API_URL": sandbox_server.url, "KLARNA_TIMEOUT": "1,2",
                      "KLARNA_RETRIES": 0})
    app.sandbox = sandbox_server
    yield app
    notifier = app.extensions.get("kco_notify")
    if notifier is not None:
        notifier.stop()
    app.extensions["kco"].store.dispose()
