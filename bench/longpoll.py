"""Long-poll wake-up latency: from an event's commit in ANOTHER process to the waiting browser
having its answer, median and worst of N, on SQLite and PostgreSQL.

    .venv/bin/python bench/longpoll.py [--samples 100] [--backends sqlite,postgresql]
                                       [--pg postgresql+psycopg://postgres@127.0.0.1:5432/kco_bench]

The app runs in this process behind a threaded werkzeug server; one HTTP client long-polls
`/api/sessions/bench/events?after=N&wait=20`; a writer process (its own Store on the same
database, sharing nothing with the server) commits one cart change and reports the wall-clock
time just before it sent COMMIT; the latency is the time the client had the full HTTP response
minus that, so it includes the commit itself (a conservative figure). Between samples the
writer waits a random 0–60 ms, so SQLite's 50 ms polling is sampled at every phase. The
PostgreSQL database named in --pg is emptied.
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from callbacks import create_app  # noqa: E402

WRITER = """
import sys, time
from callbacks.rules.cart import set_cart
from callbacks.rules.pricing import CartItem
from callbacks.rules.shop import load_shop
from callbacks.store.database import Store
store, shop, sid = Store(sys.argv[1]), load_shop(None), sys.argv[2]
quantity = 0
for line in sys.stdin:
    quantity = quantity % 50 + 1
    with store.session(sid) as tx:
        decision = set_cart(shop, tx.state, sid, [CartItem("TSHIRT-BLUE-M", quantity)], None)
        tx.save(decision.state, decision.event_type, decision.data)
        committing = time.time()  # the COMMIT is the next thing that happens
    print(committing, tx.events[-1]["id"], flush=True)
"""
API_KEY = "bench-api-key"


def prepare_postgres(url: str) -> str:
    server, _, database = url.rpartition("/")
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                            {"d": database}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def long_poll(port: int, after: int, out: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/sessions/bench/events?after={after}&wait=20",
                 headers={"Authorization": f"Bearer {API_KEY}"})
    response = conn.getresponse()
    body = response.read()
    out["at"] = time.time()
    out["status"] = response.status
    out["body"] = json.loads(body)
    conn.close()


def run(backend: str, url: str, samples: int) -> list[float]:
    app = create_app({"TESTING": True, "DATABASE_URL": url, "KCO_API_KEY": API_KEY})
    notifier = app.extensions["kco_notify"]
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, "bench"], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    latencies = []
    try:
        writer.stdin.write("\n")  # the session's first event, and a warm-up of both sides
        writer.stdin.flush()
        after = int(writer.stdout.readline().split()[1])
        for _ in range(samples + 3):
            out: dict = {}
            poll = threading.Thread(target=long_poll, args=(httpd.server_port, after, out))
            poll.start()
            deadline = time.monotonic() + 10
            while notifier.waiters < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the long-poll never started waiting")
                time.sleep(0.001)
            time.sleep(random.uniform(0, 0.06))
            writer.stdin.write("\n")
            writer.stdin.flush()
            committed_at, event_id = writer.stdout.readline().split()
            poll.join(30)
            if out.get("status") != 200 or [e["id"] for e in out["body"]["events"]] != [int(event_id)]:
                raise RuntimeError(f"unexpected answer: {out}")
            latencies.append(out["at"] - float(committed_at))
            after = int(event_id)
        return latencies[3:]  # the first few warm up connections and pools
    finally:
        writer.stdin.close()
        writer.wait(10)
        notifier.stop()
        httpd.shutdown()
        httpd.server_close()
        app.extensions["kco"].store.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/kco_bench")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    print(f"long-poll wake-up latency, writer in another process, {args.samples} samples each")
    print(f"{'backend':<12}{'median':>10}{'p90':>10}{'worst':>10}{'best':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            url = (f"sqlite:///{tmp}/bench.sqlite3" if backend == "sqlite"
                   else prepare_postgres(args.pg))
            values = sorted(run(backend, url, args.samples))
            ms = lambda v: f"{v * 1000:8.1f}ms"  # noqa: E731
            p90 = values[int(len(values) * 0.9) - 1]
            print(f"{backend:<12}{ms(statistics.median(values)):>10}{ms(p90):>10}"
                  f"{ms(values[-1]):>10}{ms(values[0]):>10}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
