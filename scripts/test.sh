#!/usr/bin/env bash
# The test command (README): installs what the tests need into .venv, lints with ruff, type-checks with mypy, then runs pytest.
# PostgreSQL tests use the server on localhost and create their own database; where none
# answers they skip with the reason, unless KCO_REQUIRE_POSTGRES=1 (as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The browser suite (tests/browser) drives Debian's Chromium by path; Playwright's own browser
# download is not used. Install it where it is missing and we may (root); elsewhere the suite
# skips with the reason, or fails under KCO_REQUIRE_BROWSER=1 (.ci/run).
if [ ! -x "${KCO_CHROMIUM:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Chromium for the browser tests (apt-get install -y chromium)"
  apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
# Lint first (configured in pyproject.toml): a style error fails the run before any test.
.venv/bin/ruff check --quiet .
# Then the type checker (pyproject.toml [tool.mypy]: strict for callbacks/rules, web and store).
.venv/bin/mypy
# pytest-xdist runs the tests in KCO_TEST_WORKERS processes (default 4): the suite mostly waits
# (fsync, servers, sockets), so more workers than cores pay. Each worker has its own PostgreSQL
# database (tests/conftest.py), temporary directory and ports. Serially: `./scripts/test.sh -n 0`
# (a later -n wins) or KCO_TEST_WORKERS=0.
exec .venv/bin/python -m pytest -n "${KCO_TEST_WORKERS:-4}" "$@"
