"""The reliability suite (docs/reliability.md): fixtures, the short/full switch, the figures.

Short form (the default, and CI's): a few dozen examples per endpoint, a few hundred requests
per scenario, one worker kill. Full form: `scripts/reliability.sh`, i.e. `--reliability-full`
or KCO_RELIABILITY=full.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from callbacks import create_app

from ..sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures
from . import figures

ROOT = Path(__file__).resolve().parents[2]


def _full(config) -> bool:
    return bool(config.getoption("--reliability-full", default=False)) or \
        os.environ.get("KCO_RELIABILITY", "").lower() == "full"


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
    return Scale(_full(pytestconfig))


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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    snap = figures.snapshot()
    if not snap:
        return
    mode = "full" if _full(config) else "short"
    tw = terminalreporter
    tw.section(f"reliability figures ({mode} form)")
    for area, counts in snap.items():
        tw.line(f"{area:24} " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    tw.line(f"{'TOTAL':24} " + ", ".join(f"{k}={v}" for k, v in figures.totals().items()))
    target = Path(os.environ.get("KCO_RELIABILITY_FIGURES")
                  or ROOT / "instance" / f"reliability-figures-{mode}.json")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"mode": mode, "exitstatus": int(exitstatus),
                                      "areas": snap, "totals": figures.totals()}, indent=2))
        tw.line(f"written to {target}")
    except OSError as exc:
        tw.line(f"could not write {target}: {exc}")
