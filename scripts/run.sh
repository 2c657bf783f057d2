#!/usr/bin/env bash
# Install and run kco-sync on embedded defaults: SQLite under instance/, the example shop,
# development keys. No Klarna account and no network needed. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
export PORT=${PORT:-8000}
.venv/bin/flask --app wsgi kco migrate
echo "kco-sync on http://127.0.0.1:$PORT (Ctrl-C to stop)"
exec .venv/bin/gunicorn wsgi:app --worker-class gthread --workers "${WEB_CONCURRENCY:-2}" \
  --threads "${GUNICORN_THREADS:-32}" --bind "127.0.0.1:$PORT" --timeout 60
