"""The service under load: Klarna's callbacks and the storefront reads, on SQLite and
PostgreSQL, with 10-line and 1000-line carts, against a bare Flask app as the baseline.

    bench/run.sh [--quick] [--runs 3] [--duration 3] [--connections 1,16,64] …

What it does (BENCHMARKS.md has the results and the reasoning):

* installs wrk with apt-get when it is missing; runs from the project's .venv;
* writes a bench shop (the example shop plus 1200 generated products) into a temp dir;
* per database and cart size (a fresh SQLite file; or PostgreSQL database `kco_bench`,
  dropped and created) starts gunicorn exactly as the Procfile does (its `web:` line, bound
  to 127.0.0.1), creates one pool of sessions per endpoint (bench/workload.py), then drives
  each endpoint with wrk (one thread, -c 1/16/64, a Lua script per pool: per-request
  sessions and tokens) for `--runs` rounds of `--duration` seconds — the rounds go
  round-robin over all cells, so a burst of load from elsewhere on the machine hits one run
  of many cells, not all runs of one;
* measures a long-poll's cost: CPU time of the workers (utime+stime from /proc) while 0, 1
  and 200 long-polls wait with no events;
* runs the same wrk scripts against bench/bare_app.py under the same gunicorn command;
* a webhooks cell per database (bench/webhooks.py): delivery lag at 100 events/s and one
  worker's drain rate, with `flask kco deliver` as the Procfile starts it;
* a scale-out cell on PostgreSQL (bench/scale_out.py, `--scale-out-connections N`, 16 by
  default, 0: skip): two instances under the Procfile's command on one database, each at N/2
  connections at once, against one instance at N, alternating rounds; the pair's throughput
  over the single instance's;
* optionally (`--tabs N`), a two-tab cell in Chromium (bench/two_tabs.py): N cart changes in
  one tab, each timed until the other tab's Klarna iframe shows the new total;
* prints a table of medians (req/s, p50, p99, max; peak RSS of any one worker; worker CPU
  per request; throughput relative to the bare app at the same connections) and writes it as
  Markdown and JSON to bench/last-run.md and bench/last-run.json.

Only 127.0.0.1 is ever targeted; every wrk run and wait is bounded in time.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import workload  # noqa: E402
from bench.server import Sampler, gunicorn  # noqa: E402
from callbacks.rules.shop import load_shop  # noqa: E402
from callbacks.store.database import Store  # noqa: E402
from callbacks.web.tokens import poll_token  # noqa: E402

SECRET = "bench-callback-secret"
API_KEY = "bench-api-key"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/kco_bench"


# -- set-up --------------------------------------------------------------------------------
def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: wrk is missing; installing it with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, timeout=600)
    return shutil.which("wrk") or sys.exit("bench: wrk is still missing after apt-get install")


def prepare_database(db: str, tmp: Path, pg_url: str, size: int) -> str:
    if db == "sqlite":
        url = f"sqlite:///{tmp}/bench-{size}.sqlite3"
    else:
        server, _, name = pg_url.rpartition("/")
        admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = pg_url
    store = Store(url)
    store.migrate()  # once, here, rather than racing in both workers at start-up
    store.dispose()
    return url


def service_env(url: str, shop_file: Path, extra: list[str]) -> dict:
    return {**dict(e.split("=", 1) for e in extra), "DATABASE_URL": url,
            "KCO_SHOP_FILE": str(shop_file), "KCO_CALLBACK_SECRET": SECRET, "KCO_API_KEY": API_KEY,
            "KCO_PUBLIC_URL": "http://127.0.0.1:8000", "KCO_AUTO_MIGRATE": "1"}


def seed(base: str, pools: list[workload.Pool]) -> None:
    """Create every session of every pool with an address_update (a session we do not know
    is built from the body's lines), then fill in what the scripts need from the replies."""
    local = threading.local()

    def post(pool: workload.Pool, sid: str) -> dict:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        url = base + workload.callback_path("address_update", SECRET, sid) + "seed"
        response = local.http.post(url, json=pool.seed_body, timeout=60)
        if response.status_code != 200:
            raise SystemExit(f"bench: seeding {sid} answered {response.status_code}: "
                             f"{response.text[:500]}")
        return response.json()

    with ThreadPoolExecutor(2) as executor:  # no more than wrk -c1 would: see drive()
        for pool in pools:
            if pool.creates:  # its sessions are created by the load itself; the probe checks
                continue
            replies = list(executor.map(lambda sid, p=pool: post(p, sid), [pool.spare, *pool.sids]))
            if pool.endpoint == "validation":  # the shipping region alternates: a change each time
                passing = workload.validation_body(replies[0], pool.seed_body)
                pool.variants = [passing, {**passing, "shipping_address": workload.address("SE", "C")}]
            if pool.endpoint == "state_304":
                sids = [pool.spare, *pool.sids]
                pool.etags = dict(zip(sids, executor.map(lambda sid: etag(base, sid), sids)))


def etag(base: str, sid: str) -> str:
    response = requests.get(f"{base}/api/sessions/{sid}/state",
                            params={"token": poll_token(SECRET, sid)}, timeout=60)
    response.raise_for_status()
    return response.headers["ETag"]


def probe(base: str, pool: workload.Pool) -> None:
    """Send one pass of the script's requests to a spare session seeded like the pool and
    check the replies: 200 (304 with the ETag), and a new version on every callback."""
    sid = pool.spare
    if pool.creates:
        response = requests.post(base + pool.path(SECRET, sid) + "probe", json=pool.seed_body,
                                 timeout=60)
        if response.status_code != 200 or not response.json().get("order_lines"):
            raise SystemExit(f"bench: probe of {pool.endpoint} ({pool.size} lines) answered "
                             f"{response.status_code}: {response.text[:500]}")
        return
    state = lambda: requests.get(f"{base}/api/sessions/{sid}/state",  # noqa: E731
                                 params={"token": poll_token(SECRET, sid)}, timeout=60)
    before = state().json()["version"]
    for n in range(2 if pool.method == "POST" else 1):
        order_id = "own-probe" if pool.endpoint == "validation" else f"probe-{n}"  # callback_path
        path = pool.path(SECRET, sid) + (order_id if pool.method == "POST" else "")
        if pool.method == "POST":
            body = pool.variants[(n + pool.first_variant) % len(pool.variants)] if pool.variants else pool.seed_body
            response = requests.post(base + path, json=body, timeout=60)
        else:
            response = requests.get(base + path, headers={"If-None-Match": pool.etags.get(sid, "")},
                                    timeout=60)
        expected = 304 if pool.endpoint == "state_304" else 200
        if response.status_code != expected:
            raise SystemExit(f"bench: probe of {pool.endpoint} ({pool.size} lines) answered "
                             f"{response.status_code}, not {expected}: {response.text[:500]}")
    after = state().json()["version"]
    wanted = 0 if pool.endpoint.endswith("_same") else 2 if pool.method == "POST" else 0
    if after != before + wanted:
        raise SystemExit(f"bench: probe of {pool.endpoint}: the requests made {after - before} "
                         f"new versions, not {wanted}")


# -- measuring -----------------------------------------------------------------------------
class Cell:
    """One endpoint × cart size × connections on one server, and its runs."""

    def __init__(self, target: str, pool: workload.Pool, connections: int, script: Path):
        self.target, self.pool, self.connections, self.script = target, pool, connections, script
        self.runs: list[dict] = []

    @property
    def slow(self) -> bool:
        """A 1000-line cart at 64 connections: a request waits seconds in the queue, and wrk
        counts only the requests that finish within a run, so such a cell gets one run as long
        as all its runs together (3 runs × 3 s → 1 run × 9 s) rather than several short ones."""
        return self.pool.size >= 1000 and self.connections >= 64

    @property
    def key(self) -> tuple:
        return (self.pool.endpoint, self.pool.size, self.target, self.connections)


class Counters:
    """Where each pool's script left its request counter (BENCH_START of its next run)."""

    def __init__(self):
        self.next: dict[tuple, int] = {}


def wrk(wrk_bin: str, base: str, script: Path, connections: int, seconds: int,
        start: int) -> dict:
    command = [wrk_bin, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
               "-s", str(script), base]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90,
                          env={**os.environ, "BENCH_START": str(start)})
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed ({done.returncode}): {done.stdout[-1500:]} "
                         f"{done.stderr[-1500:]}")
    return json.loads(line.split(" ", 1)[1])


def quiesce(server, timeout: float = 10.0) -> None:
    """Wait until the workers are idle: requests still in flight when wrk stopped must not
    count towards the next run."""
    deadline = time.monotonic() + timeout
    last = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.cpu_seconds()
        if now - last <= 0.01:  # at most one clock tick in 0.1 s
            return
        last = now


def ensure_py_spy() -> str:
    tool = ROOT / ".venv" / "bin" / "py-spy"
    if not tool.exists():
        print("bench: installing py-spy into .venv for --profile", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "py-spy"], check=True, timeout=600)
    return str(tool)


def start_profiles(server, cell: Cell, seconds: int) -> list[subprocess.Popen]:
    """py-spy on every worker for the length of the run; collapsed stacks into bench/profiles/
    (bench/profile_report.py sums them up)."""
    tool = ensure_py_spy()
    out = ROOT / "bench" / "profiles"
    out.mkdir(exist_ok=True)
    name = f"{cell.target}-{cell.pool.endpoint}-{cell.pool.size}-c{cell.connections}"
    return [subprocess.Popen([tool, "record", "--pid", str(pid), "--duration", str(seconds),
                              "--rate", "250", "--format", "raw", "--gil", "--nonblocking",
                              "--output", str(out / f"{name}-{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in server.workers]


def measure(wrk_bin: str, server, cell: Cell, seconds: int, counters: Counters,
            events_engine: sa.Engine | None, profile: bool = False) -> dict:
    start = counters.next.get((cell.target, cell.pool.endpoint, cell.pool.size), 0)
    events_before = last_event(events_engine)
    cpu_before = server.cpu_seconds()
    profilers = start_profiles(server, cell, seconds) if profile else []
    with Sampler(server) as sampler:
        result = wrk(wrk_bin, server.base, cell.script, cell.connections, seconds, start)
    quiesce(server)
    cpu = server.cpu_seconds() - cpu_before
    for profiler in profilers:
        profiler.wait(seconds + 30)
    counters.next[(cell.target, cell.pool.endpoint, cell.pool.size)] = result["counter"]
    sent = result["counter"] - start
    if cell.pool.creates and result["counter"] > len(cell.pool.sids):
        print(f"  ! {cell.pool.endpoint} {cell.pool.size}: sent past its {len(cell.pool.sids)} new "
              "sessions; later requests went to existing ones (see ev/req)", flush=True)
    run = {"rps": result["requests"] / (result["duration_us"] / 1e6),
           "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
           "max_ms": result["max_us"] / 1000, "requests": result["requests"], "sent": sent,
           "errors": sum(result[k] for k in ("connect", "read", "write", "status", "timeout")),
           "cpu_ms_per_request": 1000 * cpu / max(sent, 1),
           "peak_rss_mib": sampler.peak_kib / 1024}
    if events_engine is not None and cell.pool.method == "POST":
        run["events_per_request"] = (last_event(events_engine) - events_before) / max(sent, 1)
    if run["errors"]:
        print(f"  ! {cell.pool.endpoint} {cell.pool.size} {cell.target} c={cell.connections}: "
              f"{result}", flush=True)
    cell.runs.append(run)
    return run


def last_event(engine: sa.Engine | None) -> int:
    if engine is None:
        return 0
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM events")).scalar_one()


def drive(wrk_bin: str, server, cells: list[Cell], args, events_engine) -> None:
    counters = Counters()
    warm = sorted({(c.pool.endpoint, c.pool.size): c for c in cells}.values(),
                  key=lambda c: (c.pool.size, c.pool.endpoint))
    # Warm-up: every script at the lowest connection count, then the light events feed (or
    # the first script) at the highest, which fills the thread and connection pools without
    # raising the workers' RSS much.
    light = next((c for c in warm if c.pool.endpoint == "events"), warm[0])
    for cell, connections in [*((c, min(args.connections)) for c in warm),
                              (light, max(args.connections))]:
        if args.warmup:
            key = (cell.target, cell.pool.endpoint, cell.pool.size)
            result = wrk(wrk_bin, server.base, cell.script, connections, args.warmup,
                         counters.next.get(key, 0))
            counters.next[key] = result["counter"]
    # Within a round: every endpoint at 1 connection, then at 16, then 64. A worker's RSS
    # hardly shrinks, so the first round's RSS of a cell is its peak after the seeding and
    # the lower connection counts only; that is the figure the table shows.
    cells = sorted(cells, key=lambda c: (c.connections, c.pool.size))
    quiesce(server)
    for round_ in range(args.runs):
        for cell in cells:
            runs, seconds = ((1, args.runs * args.duration) if cell.slow
                             else (args.runs, args.duration))
            if round_ >= runs:
                continue
            profile = round_ == 0 and any(matches(spec, cell) for spec in args.profile)
            run = measure(wrk_bin, server, cell, seconds, counters, events_engine, profile)
            print(f"  [{round_ + 1}/{runs}] {cell.target:<10} {cell.pool.endpoint:<22} "
                  f"{cell.pool.size:>4} lines c={cell.connections:<3} {run['rps']:8.1f} req/s "
                  f"p50 {run['p50_ms']:7.2f} ms p99 {run['p99_ms']:7.2f} ms "
                  f"cpu {run['cpu_ms_per_request']:6.2f} ms/req "
                  f"rss {run['peak_rss_mib']:5.1f} MiB"
                  + (f" ev/req {run['events_per_request']:.2f}" if "events_per_request" in run else ""),
                  flush=True)


def matches(spec: str, cell: Cell) -> bool:
    """--profile ENDPOINT:CART:CONNS:DB, empty or missing parts matching anything."""
    values = (cell.pool.endpoint, cell.pool.size, cell.connections, cell.target)
    return all(part in ("", str(value)) for part, value in zip(spec.split(":"), values))


def longpoll_cost(server, sid: str, after: int, waiters: int, seconds: int) -> list[dict]:
    """Worker CPU time while 0, 1 and `waiters` long-polls wait `seconds` with no events."""
    token = poll_token(SECRET, sid)
    host, port = server.base.removeprefix("http://").split(":")
    wait = seconds + 3
    out = []
    for count in (0, 1, waiters):
        results: list[dict] = []
        lock = threading.Lock()
        deadline = time.monotonic() + wait + 10

        def poll(deadline=deadline, lock=lock, results=results):
            retries = 0
            while time.monotonic() < deadline:
                conn = http.client.HTTPConnection(host, int(port), timeout=wait + 15)
                began = time.monotonic()
                try:
                    conn.request("GET", f"/api/sessions/{sid}/events?after={after}&wait={wait}"
                                        f"&token={token}")
                    response = conn.getresponse()
                    body = response.read()
                finally:
                    conn.close()
                if response.status == 503:  # this worker is full; the other one may not be
                    retries += 1
                    time.sleep(0.2)
                    continue
                with lock:
                    results.append({"status": response.status, "waited": time.monotonic() - began,
                                    "events": len(json.loads(body)["events"]), "retries": retries})
                return

        threads = [threading.Thread(target=poll, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)  # every poll has reached its worker and is waiting
        rss_before = server.memory()
        cpu_before, t0 = server.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        cpu, elapsed = server.cpu_seconds() - cpu_before, time.monotonic() - t0
        rss = server.memory()
        for thread in threads:
            thread.join(wait + 20)
        answered = [r for r in results if r["status"] == 200 and r["events"] == 0
                    and r["waited"] >= wait - 0.5]
        out.append({"waiters": count, "cpu_seconds": cpu, "seconds": elapsed,
                    "cpu_percent": 100 * cpu / elapsed, "waited_full": len(answered),
                    "retries_503": sum(r["retries"] for r in results),
                    "rss_mib": {str(pid): kib / 1024 for pid, kib in rss.items()},
                    "rss_before_mib": {str(pid): kib / 1024 for pid, kib in rss_before.items()}})
        if count and len(answered) != count:
            print(f"  ! long-polls: {len(answered)} of {count} waited the full {wait} s: "
                  f"{results[:3]}", flush=True)
        print(f"  long-poll: {count:3d} waiting for {elapsed:.1f} s: workers used "
              f"{cpu * 1000:.0f} ms CPU ({100 * cpu / elapsed:.2f} % of a core); "
              f"RSS {', '.join(f'{kib / 1024:.1f}' for kib in rss.values())} MiB", flush=True)
    return out


# -- reporting -----------------------------------------------------------------------------
def summarize(cells: list[Cell]) -> list[dict]:
    rows = []
    bare = {(c.pool.endpoint, c.pool.size, c.connections): c for c in cells if c.target == "bare"}
    for cell in cells:
        runs = cell.runs
        med = lambda key, runs=runs: statistics.median(r[key] for r in runs)  # noqa: E731
        row = {"endpoint": cell.pool.endpoint, "cart": cell.pool.size, "db": cell.target,
               "connections": cell.connections, "runs": len(runs), "rps": med("rps"),
               "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"), "max_ms": med("max_ms"),
               "peak_rss_mib": runs[0]["peak_rss_mib"],  # see drive()
               "cpu_ms_per_request": med("cpu_ms_per_request"),
               "errors": sum(r["errors"] for r in runs)}
        if "events_per_request" in runs[0]:
            row["events_per_request"] = med("events_per_request")
        base = baseline(bare, cell)
        if base is not None and cell.target != "bare":
            row["vs_bare"] = row["rps"] / statistics.median(r["rps"] for r in base.runs)
        rows.append(row)
    order = {e: i for i, e in enumerate(workload.ENDPOINTS)}
    targets = {"sqlite": 0, "postgresql": 1, "bare": 2}
    return sorted(rows, key=lambda r: (order[r["endpoint"]], r["cart"], targets[r["db"]],
                                       r["connections"]))


def baseline(bare: dict, cell: Cell) -> Cell | None:
    """The bare app's cell to compare `cell` with, at the same connections: the same script;
    else, for a GET, the same GET of the other cart size (the bare GETs do not read a cart);
    else, for a callback, the bare POST of the same cart size (without --bare-all only the
    first callback's script runs against the bare app: its four POST routes are one function,
    and the bodies of one cart size differ by a few hundred bytes)."""
    exact = bare.get((cell.pool.endpoint, cell.pool.size, cell.connections))
    if exact is not None:
        return exact
    for (endpoint, size, connections), candidate in bare.items():
        if connections != cell.connections or candidate.pool.method != cell.pool.method:
            continue
        if (cell.pool.method == "GET" and endpoint == cell.pool.endpoint) or \
                (cell.pool.method == "POST" and size == cell.pool.size):
            return candidate
    return None


COLUMNS = [("endpoint", "endpoint", "{}"), ("cart", "cart", "{}"), ("db", "db", "{}"),
           ("connections", "conns", "{}"), ("rps", "req/s", "{:.0f}"),
           ("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"),
           ("max_ms", "max ms", "{:.0f}"), ("peak_rss_mib", "peak RSS/worker MiB", "{:.0f}"),
           ("cpu_ms_per_request", "CPU ms/req", "{:.2f}"), ("vs_bare", "× bare", "{:.2f}")]


def cells_text(row: dict) -> list[str]:
    return [fmt.format(row[key]) if row.get(key) is not None else "–" for key, _, fmt in COLUMNS]


def table_text(rows: list[dict]) -> str:
    body = [cells_text(r) for r in rows]
    heads = [h for _, h, _ in COLUMNS]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.rjust(w) if i > 2 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(heads), line(["-" * w for w in widths]), *map(line, body)])


def table_markdown(rows: list[dict]) -> str:
    heads = [h for _, h, _ in COLUMNS]
    out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" if i < 3 else "---:"
                                                         for i in range(len(heads))) + "|"]
    out += ["| " + " | ".join(cells_text(r)) + " |" for r in rows]
    return "\n".join(out)


def longpoll_markdown(results: dict) -> str:
    out = ["| db | long-polls waiting | worker CPU over the window | % of one core | "
           "waited the full time | worker RSS MiB |", "|---|---:|---:|---:|---:|---|"]
    for db, phases in results.items():
        for p in phases:
            out.append(f"| {db} | {p['waiters']} | {p['cpu_seconds'] * 1000:.0f} ms in "
                       f"{p['seconds']:.1f} s | {p['cpu_percent']:.2f} | "
                       f"{p['waited_full']}/{p['waiters']} | "
                       f"{', '.join(f'{v:.1f}' for v in p['rss_mib'].values())} |")
    return "\n".join(out)


def machine(pg_url: str | None) -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    mem = next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
               if l.startswith("MemTotal"))
    from importlib.metadata import version
    info = {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(int(mem) / 1024**2, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "packages": {p: version(p) for p in ("flask", "werkzeug", "gunicorn", "sqlalchemy",
                                                  "marshmallow", "psycopg")},
            "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
            "load_average_at_start": os.getloadavg()}
    if pg_url:
        engine = sa.create_engine(pg_url.rpartition("/")[0] + "/postgres")  # pg_url: not yet made
        with engine.connect() as conn:
            info["postgresql"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
        engine.dispose()
    return info


def report(args, info: dict, command: list[str], rows: list[dict], longpolls: dict,
           seconds: float, webhook_results: list[dict] | None = None,
           two_tabs: dict | None = None, scale_out: dict | None = None) -> str:
    lines = [f"Command: `{' '.join(['bench/run.sh', *sys.argv[1:]])}` "
             f"({args.runs} runs × {args.duration} s per cell, round-robin; figures are "
             f"medians of the runs, peak RSS the largest seen; total {seconds / 60:.1f} min)",
             "",
             f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Linux "
             f"{info['kernel']}, Python {info['python']}, SQLite {info['sqlite']}"
             + (f", PostgreSQL {info['postgresql']}" if "postgresql" in info else "")
             + f", {info['wrk']}; load average at start "
             f"{' '.join(f'{x:.2f}' for x in info['load_average_at_start'])}",
             "",
             "Packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
             "",
             f"gunicorn: `{' '.join(['gunicorn', *command[1:]])}`",
             "", "Rows of 1000-line carts at 64 connections are one run of "
             f"{args.runs * args.duration} s (see Cell.slow in bench/run.py). × bare: throughput "
             "over the bare app's with the same script at the same connections (for the "
             "callbacks: the bare app's POST of the same cart size).",
             "", table_markdown(rows)]
    if longpolls:
        lines += ["", longpoll_markdown(longpolls)]
    if webhook_results:
        from bench import webhooks
        lines += ["", f"Webhooks (bench/webhooks.py): {args.webhooks_seconds} s at 100 events/s, "
                  f"then a backlog of {args.webhooks_backlog} drained by one worker", "",
                  webhooks.markdown(webhook_results)]
    if scale_out:
        from bench import scale_out as scale
        lines += ["", scale.summary(scale_out)]
    if two_tabs:
        from bench import two_tabs as tabs
        lines += ["", f"{tabs.summary(two_tabs)} (bench/two_tabs.py, Chromium)"]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------
def csv(kind):
    return lambda text: [kind(x) for x in text.split(",") if x]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 1 s per cell, 2 s long-poll windows: a smoke test (~4 min)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per pool (0: none)")
    parser.add_argument("--connections", type=csv(int), default=[1, 16, 64])
    parser.add_argument("--carts", type=csv(int), default=[10, 1000])
    parser.add_argument("--dbs", type=csv(str), default=["sqlite", "postgresql"])
    parser.add_argument("--endpoints", type=csv(str), default=workload.DEFAULT_ENDPOINTS,
                        help=f"default: {','.join(workload.DEFAULT_ENDPOINTS)}; also: "
                             "address_update_same")
    parser.add_argument("--sessions", type=int, default=160, help="sessions per pool (> 2 × connections)")
    parser.add_argument("--no-bare", dest="bare", action="store_false")
    parser.add_argument("--bare-all", action="store_true",
                        help="run every callback's script against the bare app, not only the "
                             "first's (its POST routes are one function)")
    parser.add_argument("--longpolls", type=int, default=200, help="0: skip the long-poll cost")
    parser.add_argument("--longpoll-seconds", type=int, default=10)
    parser.add_argument("--webhooks-seconds", type=int, default=10,
                        help="the webhooks cell's steady phase at 100 events/s (0: skip the cell)")
    parser.add_argument("--webhooks-backlog", type=int, default=2000,
                        help="messages the webhooks cell's worker drains flat out")
    parser.add_argument("--tabs", type=int, default=0, metavar="N",
                        help="the two-tab cell (bench/two_tabs.py): N cart changes in one tab of "
                             "Chromium, each timed until the other tab's iframe shows the new "
                             "total (0: skip the cell; needs Chromium)")
    parser.add_argument("--scale-out-connections", type=int, default=16, metavar="N",
                        help="the scale-out cell (bench/scale_out.py, PostgreSQL only): two "
                             "instances at N/2 connections each on one database against one "
                             "at N, alternating rounds (0: skip the cell)")
    parser.add_argument("--profile", action="append", default=[],
                        metavar="ENDPOINT:CART:CONNS:DB",
                        help="py-spy the workers during the first run of matching cells (empty "
                             "parts match all), e.g. address_update:10:16:sqlite; repeatable")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the service (an experiment: the Procfile "
                             "sets none), e.g. MALLOC_ARENA_MAX=2; repeatable")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL URL; its database is dropped")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "last-run",
                        help="writes OUT.md and OUT.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.longpoll_seconds, args.sessions = 1, 1, 2, 140
        args.webhooks_seconds, args.webhooks_backlog = 3, 500
    unknown = set(args.endpoints) - set(workload.ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(workload.ENDPOINTS)}")
    if max(args.carts) > 1000 or args.sessions <= 2 * max(args.connections):
        parser.error("carts of at most 1000 lines; --sessions > 2 × the largest --connections")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk_bin = ensure_wrk()
    began = time.monotonic()
    info = machine(args.pg if "postgresql" in args.dbs else None)
    cells: list[Cell] = []
    longpolls: dict = {}
    webhook_results: list[dict] = []
    two_tabs: dict | None = None
    scale_out: dict | None = None
    command: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kco-bench-") as tmp_name:
        tmp = Path(tmp_name)
        shop_file = workload.write_bench_shop(tmp)
        shop = load_shop(shop_file)
        scripts: dict[tuple, Path] = {}
        pools_by_size = {size: [p for p in workload.pools(shop, size, args.sessions)
                                if p.endpoint in args.endpoints] for size in args.carts}
        for db in args.dbs:
            for size, pools in pools_by_size.items():
                # A fresh database and server per cart size: a worker's RSS never shrinks
                # back, so the 10-line figures must not carry the 1000-line requests' peak.
                url = prepare_database(db, tmp, args.pg, size)
                scripts_dir = tmp / f"{db}-{size}"
                scripts_dir.mkdir()
                print(f"== {db}, {size}-line carts: {url}", flush=True)
                with gunicorn("wsgi:app", service_env(url, shop_file, args.env), tmp, f"{db}-{size}") as server:
                    command = server.command
                    seeded = time.monotonic()
                    seed(server.base, pools)
                    server_cells = []
                    for pool in pools:
                        probe(server.base, pool)
                        script = workload.write_lua(pool, SECRET, scripts_dir)
                        scripts[(pool.endpoint, size)] = script
                        server_cells += [Cell(db, pool, c, script) for c in args.connections]
                    print(f"  seeded {len(pools)} pools of {args.sessions} sessions in "
                          f"{time.monotonic() - seeded:.0f} s", flush=True)
                    engine = sa.create_engine(url)
                    drive(wrk_bin, server, server_cells, args, engine)
                    cells += server_cells
                    if args.longpolls and size == args.carts[0]:
                        sid = pools[0].sids[0]
                        longpolls[db] = longpoll_cost(server, sid, last_event(engine),
                                                      args.longpolls, args.longpoll_seconds)
                    engine.dispose()
        if args.webhooks_seconds:
            from bench import webhooks  # here: it imports this module
            webhook_results = webhooks.run(args.dbs, webhooks.parse_args(
                ["--seconds", str(args.webhooks_seconds), "--backlog", str(args.webhooks_backlog),
                 "--pg", f"{args.pg}_webhooks"]), tmp)
        if args.scale_out_connections and "postgresql" in args.dbs:
            from bench import scale_out as scale  # here: it imports this module
            scale_out = scale.run(argparse.Namespace(
                connections=args.scale_out_connections, runs=args.runs, duration=args.duration,
                warmup=args.warmup, pg=f"{args.pg}_scale", env=args.env), tmp, shop_file, wrk_bin,
                log=lambda line: print(line, flush=True))
        if args.tabs:
            from bench import two_tabs as tabs  # Playwright only when asked for
            print(f"== two tabs in Chromium, {args.tabs} cart changes", flush=True)
            two_tabs = tabs.measure(args.tabs, log=lambda line: print("  " + line, flush=True))
        if args.bare:
            print("== bare Flask app", flush=True)
            with gunicorn("bench.bare_app:app", {}, tmp, "bare") as server:
                bare_cells = []
                for size, pools in pools_by_size.items():
                    posts = [p for p in pools if p.method == "POST"]
                    for pool in pools:
                        if pool.method == "GET" and size != args.carts[0]:
                            continue  # the bare app's GETs do not depend on the cart
                        if pool.method == "POST" and pool is not posts[0] and not args.bare_all:
                            continue  # the bare POST routes are one function: see summarize()
                        bare_cells += [Cell("bare", pool, c, scripts[(pool.endpoint, size)])
                                       for c in args.connections]
                drive(wrk_bin, server, bare_cells, args, None)
                cells += bare_cells
    seconds = time.monotonic() - began
    rows = summarize(cells)
    print()
    print(table_text(rows))
    text = report(args, info, command, rows, longpolls, seconds, webhook_results, two_tabs,
                  scale_out)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
         "machine": info, "gunicorn": command, "rows": rows, "longpoll": longpolls,
         "webhooks": webhook_results,
         "runs": [{"key": c.key, "runs": c.runs} for c in cells], "seconds": seconds,
         **({"scale_out": scale_out} if scale_out else {}),
         **({"two_tabs": two_tabs} if two_tabs else {})},
        indent=1))
    print(f"\n{text.split(chr(10) + chr(10) + '|')[0]}")
    if longpolls:
        print("\n" + longpoll_markdown(longpolls))
    if webhook_results:
        from bench import webhooks
        print("\n" + webhooks.markdown(webhook_results))
    if scale_out:
        from bench import scale_out as scale
        print("\n" + scale.summary(scale_out))
    if two_tabs:
        from bench import two_tabs as tabs
        print("\n" + tabs.summary(two_tabs))
    print(f"\nwritten: {args.out.with_suffix('.md')} and .json ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
