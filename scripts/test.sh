#!/usr/bin/env bash
# The test command (README): installs what the tests need into .venv, lints with ruff, then runs pytest.
# PostgreSQL tests use the server on localhost and create their own database; where none
# answers they skip with the reason, unless KCO_REQUIRE_POSTGRES=1 (as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Lint first (configured in pyproject.toml): a style error fails the run before any test.
.venv/bin/ruff check --quiet .
exec .venv/bin/python -m pytest "$@"
