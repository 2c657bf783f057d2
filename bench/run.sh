#!/usr/bin/env bash
# The whole benchmark in one command (see BENCHMARKS.md and bench/run.py):
#
#   bench/run.sh            # full run, ~20 min: 3 runs × 3 s per cell
#   bench/run.sh --quick    # smoke test, ~4 min: 1 run × 1 s per cell
#   bench/run.sh --help     # every option (databases, carts, connections, endpoints, …)
#
# Uses the project's .venv (created and filled from requirements.txt when missing); installs
# wrk with apt-get when missing. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m bench.run "$@"
