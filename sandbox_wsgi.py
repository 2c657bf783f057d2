"""The sandbox (a local fake Klarna, sandbox/) as a WSGI app. One process only — its
orders live in memory:

    flask --app sandbox_wsgi run -p 8001
    gunicorn sandbox_wsgi:app --workers 1 --threads 16 --bind 127.0.0.1:8001

kco-sync's default KLARNA_API_URL (http://127.0.0.1:8001) and credentials (sandbox/sandbox)
point at it. SANDBOX_USERNAME, SANDBOX_PASSWORD and SANDBOX_PUBLIC_URL come from the environment.
"""
from sandbox import create_sandbox

app = create_sandbox()
