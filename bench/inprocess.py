"""CPU per request inside one process, through Flask's test client: the steadiest figure on a
shared machine (no sockets, no gunicorn, no other process's scheduling in it).

    .venv/bin/python -m bench.inprocess                       # both databases, 10 and 1000 lines
    .venv/bin/python -m bench.inprocess --db sqlite --lines 1000 --profile /tmp/p.prof

For each case it sends `--requests` requests after a warm-up and prints the mean of the fastest
80 % of `time.process_time` per request, in ms. Cases: address_update to one session (the
shipping region alternates, so every request re-prices and writes), address_update to a new
session every time, a passing validation, and the state read. PostgreSQL's own CPU is another
process and is not in these figures; bench/run.sh measures the whole service under gunicorn.
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import statistics
import tempfile
import time
from pathlib import Path

from bench import catalog, workload

SECRET = "bench-secret-bench-secret-bench-secret"


def database(kind: str, tmp: Path, name: str = "kco_bench_inprocess") -> str:
    """A fresh database: a new SQLite file, or `name` (kco_bench_inprocess) dropped and created
    again."""
    return catalog.database(kind, tmp, name)


class Case:
    def __init__(self, client, shop, lines: int, name: str):
        self.client, self.name, self.lines = client, name, lines
        self.se = workload.klarna_body(shop, lines)
        self.variants = [self.se, {**self.se, "shipping_address": workload.address("SE", "C")}]
        self.i = 0
        self.sid = f"{name}-{lines}-{time.time_ns()}"
        self.seed()

    def seed(self) -> None:
        response = self.client.post(workload.callback_path("address_update", SECRET, self.sid),
                                    json=self.se)
        assert response.status_code == 200, response.get_data()[:300]
        self.reply = response.get_json()

    def request(self):
        self.i += 1
        if self.name == "address_update":
            return self.client.post(workload.callback_path("address_update", SECRET, self.sid),
                                    json=self.variants[self.i % 2])
        if self.name == "address_update_new":
            return self.client.post(workload.callback_path("address_update", SECRET,
                                                           f"{self.sid}-{self.i}"), json=self.se)
        if self.name == "validation":
            body = workload.validation_body(self.reply, self.se)
            return self.client.post(
                workload.callback_path("validation", SECRET, self.sid) + f"order-{self.sid}",
                json=body)
        token = workload.poll_token(SECRET, self.sid)
        return self.client.get(f"/api/sessions/{self.sid}/state?token={token}")


def run(case: Case, requests: int, profiler: cProfile.Profile | None) -> float:
    for _ in range(10):
        case.request()
    samples = []
    for _ in range(requests):
        if profiler:
            profiler.enable()
        started = time.process_time()
        response = case.request()
        spent = time.process_time() - started
        if profiler:
            profiler.disable()
        assert response.status_code in (200, 204), (case.name, response.status_code,
                                                    response.get_data()[:300])
        samples.append(spent * 1000)
    return trimmed(samples)


def trimmed(samples: list[float]) -> float:
    """The mean of the fastest 80 %: what another process's burst added to a few is left out."""
    samples = sorted(samples)
    return statistics.fmean(samples[: max(1, len(samples) * 8 // 10)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--lines", default="10,1000")
    parser.add_argument("--cases", default="address_update,address_update_new,validation,state")
    parser.add_argument("--requests", type=int, default=0, help="default: 200 (10 lines), 30 (1000)")
    parser.add_argument("--profile", help="write a cProfile of the measured requests here")
    parser.add_argument("--pg-database", default="kco_bench_inprocess",
                        help="the PostgreSQL database to drop and create (one per concurrent run)")
    args = parser.parse_args(argv)
    logging.getLogger("callbacks").setLevel(logging.WARNING)
    from callbacks import create_app

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        shop_file = workload.write_bench_shop(Path(tmp))
        print(f"{'db':<11}{'lines':>6}  {'case':<20}{'CPU ms/request':>15}")
        for db in args.db.split(","):
            app = create_app({"TESTING": True, "DATABASE_URL": database(db, Path(tmp), args.pg_database),
                              "KCO_CALLBACK_SECRET": SECRET, "KCO_SHOP_FILE": str(shop_file)})
            kco = app.extensions["kco"]
            client = app.test_client()
            for lines in map(int, args.lines.split(",")):
                requests = args.requests or (200 if lines <= 10 else 30)
                for name in args.cases.split(","):
                    ms = run(Case(client, kco.shop, lines, name), requests, profiler)
                    print(f"{db:<11}{lines:>6}  {name:<20}{ms:>15.2f}", flush=True)
            for ext in ("kco_catalog", "kco_notify"):
                if ext in app.extensions:
                    app.extensions[ext].stop()
            kco.store.dispose()
    if profiler:
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
