"""Webhook delivery under load (docs/webhooks.md): the lag from an event's commit to the
receiver having its message at a steady 100 events/s, and how many messages per second one
worker delivers when it drains a backlog flat out, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.webhooks [--dbs sqlite,postgresql] [--rate 100] [--seconds 30]
        [--backlog 3000] [--sessions 50] [--writers 4] [--concurrency N] [--poll S]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/kco_bench_webhooks] [--out FILE]

Per database — a fresh SQLite file in a temporary directory, or the PostgreSQL database named
in --pg, dropped and created — it

1. subscribes one endpoint at a local receiver (tests/receiver.py: a threaded HTTP server on
   127.0.0.1 that answers 200 at once and notes when each request arrived);
2. starts the delivery worker exactly as the Procfile's `worker:` line does (`flask --app wsgi
   kco deliver`, its own process, the database in DATABASE_URL; --concurrency and --poll are
   passed on only when given, so by default it runs with the worker's own defaults) and waits
   for one warm-up message to arrive;
3. **lag**: writes events at --rate per second for --seconds, each in its own session
   transaction as the views write them (Store.session → save, the outbox row in the same
   commit), round-robin over --sessions sessions, by --writers threads paced from one clock
   so that a slow commit does not lower the rate; lag = the receiver's arrival time − the
   moment the writer's commit returned, per event: median, p99 and max (a few can be slightly
   negative: the receiver's thread may run before the writer's is scheduled again);
4. **throughput**: stops the worker (SIGTERM), writes --backlog events (10 per transaction,
   over the same sessions), starts a new worker and lets it drain them; messages per second =
   (backlog − 1) / (last arrival − first arrival), so the worker's start-up is not counted;
   with the worker's CPU time per message (utime + stime from /proc).

On PostgreSQL the database is ANALYZEd before each phase (see analyze()). Both phases also
check what the tests assert: every event arrived, none twice, and each session's in version
order. The receiver, the writer and the worker share the machine (and, for PostgreSQL, the
database server): the figures are for everything on one host. Prints figures only; bounded
by --seconds and a 120 s drain timeout; targets 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
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

from bench.run import API_KEY, SECRET, prepare_database  # noqa: E402
from bench.server import CLK_TCK, VENV_BIN, free_port  # noqa: E402
from callbacks.store.database import Store  # noqa: E402
from callbacks.webhooks import endpoints  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/kco_bench_webhooks"
DRAIN_TIMEOUT = 120.0
BATCH = 10  # backlog events per transaction: 3000 → 300 transactions over all the sessions


def worker_command(concurrency: int | None, poll: float | None) -> list[str]:
    """The Procfile's `worker:` command, with the project's .venv flask."""
    line = next(l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("worker:"))
    words = shlex.split(line.split(":", 1)[1])
    if words[:2] != ["flask", "--app"] or words[-2:] != ["kco", "deliver"]:
        raise SystemExit(f"bench: the Procfile's worker line is not `flask --app … kco deliver`: {line}")
    words[0] = str(VENV_BIN / "flask")
    if concurrency:
        words += ["--concurrency", str(concurrency)]
    if poll:
        words += ["--poll", str(poll)]
    return words


class Worker:
    def __init__(self, command: list[str], url: str, log: Path):
        env = {**os.environ, "DATABASE_URL": url, "KCO_CALLBACK_SECRET": SECRET,
               "KCO_API_KEY": API_KEY, "KCO_WEBHOOK_PRIVATE_URLS": "1", "KCO_AUTO_MIGRATE": "0"}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.log = log

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Writer:
    """Events as the views write them: one session transaction, its events and outbox rows."""

    def __init__(self, store: Store, sessions: int):
        self.store, self.sessions = store, [f"wh-{n:03d}" for n in range(sessions)]
        self.committed: dict[int, float] = {}  # event id → when its commit returned
        self.lock = threading.Lock()

    def write(self, n: int, per_transaction: int = 1) -> None:
        """Transaction number `n`: its session is the n-th, round-robin."""
        with self.store.session(self.sessions[n % len(self.sessions)]) as tx:
            for _ in range(per_transaction):
                tx.save({**(tx.state or {}), "n": n}, "cart_updated", {
                    "cart": {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": n % 9 + 1}],
                             "coupon": None},
                    "totals": {"old": {"order_amount": 19900, "order_tax_amount": 3980,
                                       "purchase_currency": "SEK"},
                               "new": {"order_amount": 39800, "order_tax_amount": 7960,
                                       "purchase_currency": "SEK"}}})
        done = time.time()
        with self.lock:
            for event in tx.events:
                self.committed[event["id"]] = done  # PostgreSQL draws the ids at commit

    def paced(self, total: int, rate: float, threads: int) -> float:
        """`total` transactions of one event at `rate` per second, from one clock: transaction
        i is due at i / rate, and `threads` writers take turns, so one slow commit delays
        only its own. Returns how long the writing took."""
        began = time.monotonic()

        def run(k: int) -> None:
            for i in range(k, total, threads):
                delay = began + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.write(i)
        pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return time.monotonic() - began


def wait_for(predicate, what: str, timeout: float = DRAIN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def check(received: list[dict], expected: set[int]) -> dict:
    """Lost, duplicated and out-of-order messages among `received` for the `expected` ids."""
    ids = [r["body"]["data"]["event_id"] for r in received]
    last: dict[str, int] = {}
    out_of_order = 0
    for r in received:
        data = r["body"]["data"]
        if data["version"] <= last.get(data["session"], 0):
            out_of_order += 1
        last[data["session"]] = max(data["version"], last.get(data["session"], 0))
    return {"lost": len(expected - set(ids)), "duplicates": len(ids) - len(set(ids)),
            "out_of_order": out_of_order}


def analyze(store: Store) -> None:
    """PostgreSQL: table statistics, as autovacuum keeps them on a live database. A fresh
    webhook_messages table has none, and the claim's query then takes a plan 20–30 times
    slower (25–30 ms instead of 1 ms for a 3000-message backlog): a figure for the first
    minutes after a migration, not for a running service."""
    if store.is_postgres:
        with store.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(db: str, url: str, args, tmp: Path) -> dict:
    store = Store(url)
    receiver = Receiver(port=free_port())
    command = worker_command(args.concurrency, args.poll)
    log = tmp / f"worker-{db}.log"
    worker: Worker | None = None
    try:
        endpoints.create(store, receiver.url, description="bench")
        writer = Writer(store, args.sessions)
        worker = Worker(command, url, log)
        writer.write(0)  # warm-up: the worker is up, its connections and the receiver's are open
        wait_for(lambda: len(receiver.received) >= 1, "the warm-up message (see " + str(log) + ")")
        skip = len(receiver.received)
        first_id = max(writer.committed) + 1
        analyze(store)

        # 1. lag at a steady rate
        total = int(args.rate * args.seconds)
        load_before = os.getloadavg()
        wrote_for = writer.paced(total, args.rate, args.writers)
        steady = {i for i in writer.committed if i >= first_id}
        wait_for(lambda: {r["body"]["data"]["event_id"] for r in receiver.received[skip:]} >= steady,
                 "every steady-rate message")
        arrived: dict[int, float] = {}
        for r in receiver.received[skip:]:
            arrived.setdefault(r["body"]["data"]["event_id"], r["at"])
        lags = [1000 * (arrived[i] - writer.committed[i]) for i in sorted(steady)]
        lag = {"events": total, "rate_achieved": total / wrote_for,
               "median_ms": statistics.median(lags), "p99_ms": percentile(lags, 0.99),
               "max_ms": max(lags), "load_average_at_start": load_before,
               "lags_ms": [round(x, 2) for x in lags],
               **check(receiver.received[skip:], steady)}

        # 2. throughput: a backlog drained flat out by one worker
        worker.stop()
        skip = len(receiver.received)
        first_id = max(writer.committed) + 1
        for n in range(0, args.backlog, BATCH):
            writer.write(n // BATCH, min(BATCH, args.backlog - n))
        backlog = {i for i in writer.committed if i >= first_id}
        analyze(store)
        load_before = os.getloadavg()
        worker = Worker(command, url, log)
        cpu_started = time.monotonic()
        wait_for(lambda: len(receiver.received) - skip >= len(backlog), "the backlog to drain")
        cpu = worker.cpu_seconds()
        drained = receiver.received[skip:]
        seconds = drained[-1]["at"] - drained[0]["at"]
        throughput = {"messages": len(backlog), "seconds": seconds,
                      "per_second": (len(drained) - 1) / seconds if seconds > 0 else float("inf"),
                      "worker_cpu_ms_per_message": 1000 * cpu / len(backlog),
                      "worker_wall_seconds": time.monotonic() - cpu_started,
                      "load_average_at_start": load_before, **check(drained, backlog)}
        return {"db": db, "worker": " ".join(["flask", *command[1:]]), "lag": lag,
                "throughput": throughput, "load_average_at_end": os.getloadavg()}
    finally:
        if worker is not None:
            worker.stop()
        receiver.close()
        store.dispose()


def markdown(results: list[dict]) -> str:
    out = ["| db | events/s written | lag median ms | lag p99 ms | lag max ms | backlog | "
           "delivered/s, one worker | worker CPU ms/message | lost · duplicates · out of order |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lag, tp = r["lag"], r["throughput"]
        out.append(f"| {r['db']} | {lag['rate_achieved']:.1f} | {lag['median_ms']:.1f} | "
                   f"{lag['p99_ms']:.1f} | {lag['max_ms']:.1f} | {tp['messages']} | "
                   f"{tp['per_second']:.0f} | {tp['worker_cpu_ms_per_message']:.2f} | "
                   f"{lag['lost'] + tp['lost']} · {lag['duplicates'] + tp['duplicates']} · "
                   f"{lag['out_of_order'] + tp['out_of_order']} |")
    return "\n".join(out)


def run(dbs: list[str], args, tmp: Path) -> list[dict]:
    results = []
    for db in dbs:
        url = prepare_database(db, tmp, args.pg, 0)
        print(f"== webhooks on {db}: {url}", flush=True)
        result = measure(db, url, args, tmp)
        lag, tp = result["lag"], result["throughput"]
        print(f"  lag at {lag['rate_achieved']:.1f} events/s for {args.seconds} s: median "
              f"{lag['median_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.1f} ms "
              f"(load {' '.join(f'{x:.2f}' for x in lag['load_average_at_start'])})", flush=True)
        print(f"  one worker drained {tp['messages']} messages in {tp['seconds']:.2f} s: "
              f"{tp['per_second']:.0f} messages/s, {tp['worker_cpu_ms_per_message']:.2f} ms "
              f"worker CPU each (load {' '.join(f'{x:.2f}' for x in tp['load_average_at_start'])})",
              flush=True)
        print(f"  lost {lag['lost'] + tp['lost']}, duplicates {lag['duplicates'] + tp['duplicates']}, "
              f"out of order {lag['out_of_order'] + tp['out_of_order']}", flush=True)
        results.append(result)
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dbs", type=lambda t: [x for x in t.split(",") if x],
                        default=["sqlite", "postgresql"])
    parser.add_argument("--rate", type=float, default=100.0, help="events per second written")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the steady phase")
    parser.add_argument("--backlog", type=int, default=3000, help="messages drained flat out")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--writers", type=int, default=4,
                        help="threads writing the steady phase (one commit takes some ms)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="passed to `kco deliver` (default: the worker's own, 8)")
    parser.add_argument("--poll", type=float, default=None,
                        help="passed to `kco deliver` (default: the worker's own, 0.25 s)")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL URL; its database is dropped")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    unknown = set(args.dbs) - {"sqlite", "postgresql"}
    if (unknown or args.rate <= 0 or args.seconds <= 0 or args.backlog < 2 or args.sessions < 1
            or args.writers < 1):
        parser.error("--dbs of sqlite,postgresql; --rate and --seconds > 0; --backlog ≥ 2; "
                     "--sessions and --writers ≥ 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"bench.webhooks: {' '.join(sys.argv)}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="kco-bench-webhooks-") as tmp_name:
        results = run(args.dbs, args, Path(tmp_name))
    print()
    print(markdown(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
