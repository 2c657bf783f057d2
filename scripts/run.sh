#!/usr/bin/env bash
# Install and run kco-sync on embedded defaults: SQLite under instance/, the example shop,
# development keys — together with the sandbox, a local fake Klarna (sandbox/), as
# KLARNA_API_URL. No Klarna account and no network needed. Ctrl-C stops both.
#
#   PORT          the service (default 8000)
#   SANDBOX_PORT  the sandbox (default 8001); it runs one worker, since its orders live in memory
#   KLARNA_API_URL set to anything but the sandbox's URL: the sandbox is not started
#   KCO_RUN_FILE  where it writes what it started (default instance/run.json), so that
#                 `flask --app wsgi kco demo`, `kco replay` and the rest find both from another
#                 terminal (callbacks/cli/where.py); removed when it stops
#
# The example shop sells through two Klarna accounts (its [klarna_accounts]): the European
# markets through KLARNA_USERNAME/KLARNA_PASSWORD, the US through sandbox-na with the password
# in KLARNA_NA_PASSWORD. The sandbox is given both, each in its region (SANDBOX_ACCOUNTS).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
export PORT=${PORT:-8000}
export KCO_PUBLIC_URL=${KCO_PUBLIC_URL:-http://127.0.0.1:$PORT}
SANDBOX_PORT=${SANDBOX_PORT:-8001}
SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"
export KLARNA_API_URL=${KLARNA_API_URL:-$SANDBOX_URL}
.venv/bin/flask --app wsgi kco migrate

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  .venv/bin/python -m callbacks.cli.where remove --pid $$ || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

STARTED_SANDBOX=""
if [ "${KLARNA_API_URL%/}" = "$SANDBOX_URL" ]; then
  export KLARNA_USERNAME=${KLARNA_USERNAME:-sandbox} KLARNA_PASSWORD=${KLARNA_PASSWORD:-sandbox}
  export KLARNA_NA_PASSWORD=${KLARNA_NA_PASSWORD:-sandbox-na}
  export SANDBOX_ACCOUNTS=${SANDBOX_ACCOUNTS:-$KLARNA_USERNAME:$KLARNA_PASSWORD:eu,sandbox-na:$KLARNA_NA_PASSWORD:na}
  .venv/bin/gunicorn sandbox_wsgi:app --worker-class gthread --workers 1 --threads 16 \
    --bind "127.0.0.1:$SANDBOX_PORT" --timeout 60 --graceful-timeout 5 &
  pids+=($!)
  STARTED_SANDBOX=$SANDBOX_URL
  echo "sandbox (fake Klarna) on $SANDBOX_URL"
else
  echo "KLARNA_API_URL=$KLARNA_API_URL: not starting the sandbox"
fi
.venv/bin/gunicorn wsgi:app --worker-class gthread --workers "${WEB_CONCURRENCY:-2}" \
  --threads "${GUNICORN_THREADS:-128}" --bind "127.0.0.1:$PORT" --timeout 60 --graceful-timeout 5 &
pids+=($!)
.venv/bin/flask --app wsgi kco deliver &  # the webhook worker (docs/webhooks.md)
pids+=($!)
.venv/bin/python -m callbacks.cli.where write --pid $$ --url "http://127.0.0.1:$PORT" \
  --public-url "$KCO_PUBLIC_URL" --klarna-api-url "$KLARNA_API_URL" --sandbox-url "$STARTED_SANDBOX"
echo "kco-sync on http://127.0.0.1:$PORT — open http://127.0.0.1:$PORT/ in a browser for the demo shop"
echo "(Ctrl-C stops both; or try: .venv/bin/flask --app wsgi kco demo — it finds both through ${KCO_RUN_FILE:-instance/run.json})"

# The first of the two to exit (or Ctrl-C) stops the other.
status=0
wait -n "${pids[@]}" || status=$?
stop
exit "$status"
