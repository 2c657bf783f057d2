"""Scale-out: two service instances on ONE PostgreSQL database, each at half the connections at
once, against one instance at all of them, in the same run (bench/run.sh --scale-out-connections).

Both instances start as the Procfile's `web:` line says (bench/server.py), each on its own port,
on the same freshly made database. The load is the 10-line `address_update` to a session never
seen (every request creates a session: the first callback of a checkout), so the instances
share no session and nothing but the database. Each round runs, back to back:

* one instance (the first) at N connections, the other idle;
* both at N/2 connections each, at the same time (two wrk processes started together).

The rounds alternate `--runs` times; the figures are medians, and the ratio is the pair's
total throughput over the single instance's. Nothing waits on another instance in kco-sync's
design (a session's lock is the session's own, the feed is LISTEN/NOTIFY, the outbox is claimed
with SKIP LOCKED), so the ratio should stay near 1 on a machine that has the cores; on a
2-core machine both instances and PostgreSQL share two cores, which is the point: a shared wait
would show as a ratio well below the single instance's, not as a CPU figure.

    .venv/bin/python -m bench.scale_out [--connections 16] [--runs 3] [--duration 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import workload  # noqa: E402
from bench.server import gunicorn  # noqa: E402
from callbacks.rules.shop import load_shop  # noqa: E402

LINES = 10
TARGET = 0.90


def pools(shop, sessions: int) -> dict[str, workload.Pool]:
    """One pool of never-seen sessions per load: the single instance's and each of the pair's."""
    body = workload.klarna_body(shop, LINES)
    return {name: workload.Pool("address_update_new", LINES,
                                [f"so-{name}-{i}" for i in range(sessions)], f"so-{name}-spare", body)
            for name in ("one", "a", "b")}


def run(args, tmp: Path, shop_file: Path, wrk_bin: str, log=print) -> dict:
    """`args`: connections, runs, duration, warmup, pg (URL; its database is dropped), env."""
    from bench import run as bench_run  # here: run.py imports this module

    url = bench_run.prepare_database("postgresql", tmp, args.pg, LINES)
    shop = load_shop(shop_file)
    connections = args.connections
    half = max(1, connections // 2)
    # A session per request the rounds can send, with room: ~600 req/s at most on 2 cores.
    per_pool = max(4000, 1200 * (args.runs * args.duration + args.warmup + 2))
    by_name = pools(shop, per_pool)
    scripts_dir = tmp / "scale-out"
    scripts = {}
    for name, pool in by_name.items():  # one directory each: the scripts' file names are alike
        (scripts_dir / name).mkdir(parents=True, exist_ok=True)
        scripts[name] = workload.write_lua(pool, bench_run.SECRET, scripts_dir / name)
    env = bench_run.service_env(url, shop_file, args.env)
    counters = dict.fromkeys(by_name, 0)
    single: list[dict] = []
    pair: list[dict] = []
    with ExitStack() as stack:
        servers = [stack.enter_context(gunicorn("wsgi:app", env, tmp, f"scale-out-{n}"))
                   for n in ("a", "b")]
        log(f"== scale-out on PostgreSQL ({url}): one instance at c={connections} vs two "
            f"({servers[0].base}, {servers[1].base}) at c={half} each")
        for server, name in ((servers[0], "one"), (servers[0], "a"), (servers[1], "b")):
            bench_run.probe(server.base, by_name[name])

        def load(server, name: str, conns: int, seconds: int) -> dict:
            result = bench_run.wrk(wrk_bin, server.base, scripts[name], conns, seconds,
                                   counters[name])
            sent = result["counter"] - counters[name]
            counters[name] = result["counter"]
            return {"rps": result["requests"] / (result["duration_us"] / 1e6),
                    "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
                    "requests": result["requests"], "sent": sent,
                    "errors": sum(result[k] for k in ("connect", "read", "write", "status",
                                                      "timeout"))}

        def both(seconds: int, pool: ThreadPoolExecutor) -> list[dict]:
            futures = [pool.submit(load, servers[0], "a", half, seconds),
                       pool.submit(load, servers[1], "b", half, seconds)]
            return [f.result() for f in futures]

        with ThreadPoolExecutor(2) as executor:
            if args.warmup:  # fills both instances' thread and connection pools
                load(servers[0], "one", connections, args.warmup)
                both(args.warmup, executor)
            for server in servers:
                bench_run.quiesce(server)
            for round_ in range(args.runs):
                cpu = sum(s.cpu_seconds() for s in servers)
                one = load(servers[0], "one", connections, args.duration)
                bench_run.quiesce(servers[0])
                one["cpu_ms_per_request"] = 1000 * (sum(s.cpu_seconds() for s in servers) - cpu) \
                    / max(one["sent"], 1)
                single.append(one)
                cpu = sum(s.cpu_seconds() for s in servers)
                a, b = both(args.duration, executor)
                for server in servers:
                    bench_run.quiesce(server)
                two = {"rps": a["rps"] + b["rps"], "rps_each": [a["rps"], b["rps"]],
                       "p50_ms": max(a["p50_ms"], b["p50_ms"]),
                       "p99_ms": max(a["p99_ms"], b["p99_ms"]),
                       "requests": a["requests"] + b["requests"], "sent": a["sent"] + b["sent"],
                       "errors": a["errors"] + b["errors"]}
                two["cpu_ms_per_request"] = 1000 * (sum(s.cpu_seconds() for s in servers) - cpu) \
                    / max(two["sent"], 1)
                pair.append(two)
                log(f"  [{round_ + 1}/{args.runs}] one c={connections}: {one['rps']:7.1f} req/s "
                    f"p99 {one['p99_ms']:6.1f} ms | two c={half}+{half}: {two['rps']:7.1f} req/s "
                    f"({a['rps']:.1f} + {b['rps']:.1f}) p99 {two['p99_ms']:6.1f} ms | "
                    f"ratio {two['rps'] / one['rps']:.2f}")
    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    out = {"database": "postgresql", "endpoint": "address_update_new", "cart": LINES,
           "connections": connections, "connections_each": half, "runs": args.runs,
           "duration": args.duration, "single": single, "pair": pair,
           "single_rps": med(single, "rps"), "pair_rps": med(pair, "rps"),
           "single_p99_ms": med(single, "p99_ms"), "pair_p99_ms": med(pair, "p99_ms"),
           "single_cpu_ms_per_request": med(single, "cpu_ms_per_request"),
           "pair_cpu_ms_per_request": med(pair, "cpu_ms_per_request"),
           "errors": sum(r["errors"] for r in single + pair)}
    out["ratio"] = out["pair_rps"] / out["single_rps"]
    out["ratio_per_round"] = [p["rps"] / s["rps"] for s, p in zip(single, pair)]
    return out


def summary(result: dict) -> str:
    return (f"Scale-out (bench/scale_out.py, PostgreSQL, 10-line address_update to new sessions): "
            f"two instances at {result['connections_each']} connections each "
            f"{result['pair_rps']:.0f} req/s (p99 {result['pair_p99_ms']:.1f} ms, "
            f"{result['pair_cpu_ms_per_request']:.2f} CPU ms/req) against one at "
            f"{result['connections']} {result['single_rps']:.0f} req/s (p99 "
            f"{result['single_p99_ms']:.1f} ms, {result['single_cpu_ms_per_request']:.2f} CPU "
            f"ms/req): **{result['ratio']:.2f}×** (target ≥ {TARGET:.2f}×; per round "
            f"{', '.join(f'{r:.2f}' for r in result['ratio_per_round'])}; "
            f"{result['errors']} errors)")


def main(argv=None) -> int:
    from bench import run as bench_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--pg", default=bench_run.PG_DEFAULT + "_scale",
                        help="PostgreSQL URL; its database is dropped")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    wrk_bin = bench_run.ensure_wrk()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kco-scale-out-") as tmp_name:
        tmp = Path(tmp_name)
        result = run(args, tmp, workload.write_bench_shop(tmp), wrk_bin)
    print("\n" + summary(result) + f" ({(time.monotonic() - began) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
