"""The service and the sandbox as gunicorn processes on free ports, and Chromium by path: what
scripts/screenshots.py and bench/country_change.py need (tests/browser/conftest.py does the same
with fixtures)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import free_port, gunicorn  # noqa: E402

CHROMIUM = os.environ.get("KCO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def running():
    """Yields (service URL, sandbox URL) with a throw-away SQLite database."""
    sandbox_port, service_port = free_port(), free_port()
    sandbox_url, service_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{service_port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{tmp}/kco.sqlite3", "KCO_PUBLIC_URL": service_url,
               "KLARNA_API_URL": sandbox_url, "KCO_ENV": "development"}
        with gunicorn({"SANDBOX_PUBLIC_URL": sandbox_url}, app="sandbox_wsgi:app", workers=1,
                      threads=16, port=sandbox_port):
            with gunicorn(env, workers=1, threads=48, port=service_port):
                yield service_url, sandbox_url


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
