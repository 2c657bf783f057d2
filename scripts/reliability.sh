#!/usr/bin/env bash
# The reliability suite in its full form (docs/reliability.md): more fuzzing examples, more
# requests, sessions and worker kills than the short form every `scripts/test.sh` run includes.
# Same setup as the tests (PostgreSQL on localhost, or skipped with the reason). Extra pytest
# arguments pass through, e.g. `scripts/reliability.sh -k crash`. The figures are printed at
# the end and written to instance/reliability-figures-full.json (KCO_RELIABILITY_FIGURES).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/test.sh tests/reliability --reliability-full "$@"
