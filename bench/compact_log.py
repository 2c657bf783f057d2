"""The callback log's compact order lines against the log as it was (every value of every line
judged), measured in one process, alternating the two request by request (ABBA) so that both see
the same load from elsewhere (a shared machine):

    .venv/bin/python -m bench.compact_log                  # both databases, 10 and 1000 lines
    .venv/bin/python -m bench.compact_log --db sqlite --lines 1000 --requests 400

"before" is calllog.row with scrub.scrub for the request (the code before the compact rows),
"after" is the code as it is (scrub.scrub_request). Printed: the mean of the fastest 80 % of
`time.process_time` per request in ms (bench/inprocess.py's figure) for each variant and the
difference; then the scrub step alone on the same 1000-line body (scrub, and scrub plus the
JSON text stored), alternating likewise. PostgreSQL's own CPU is another process and not in it.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import catalog, workload
from bench.inprocess import SECRET, Case, trimmed

VARIANTS = ("before", "after")


def use(variant: str) -> None:
    from callbacks.klarna import calllog, scrub

    calllog.scrub_request = scrub.scrub if variant == "before" else scrub.scrub_request  # type: ignore[assignment]


def alternate(step: Callable[[], object], setup: Callable[[str], None], requests: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i in range(requests * 2 + 20):
        variant = VARIANTS[i % 4 in (1, 2)]  # ABBA: each variant gets both of Case's bodies
        setup(variant)
        started = time.process_time()
        step()
        spent = time.process_time() - started
        if i >= 20:  # the first ten of each: warm-up
            samples[variant].append(spent * 1000)
    return {v: trimmed(s) for v, s in samples.items()}


def report(label: str, ms: dict[str, float]) -> None:
    before, after = ms["before"], ms["after"]
    print(f"{label:<44}{before:>10.3f}{after:>10.3f}{after - before:>+10.3f}"
          f"{(after - before) / before * 100:>+8.1f} %", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--lines", default="10,1000")
    parser.add_argument("--requests", type=int, default=0,
                        help="per variant; default: 1000 (10 lines), 150 (1000)")
    parser.add_argument("--pg-database", default="kco_bench_compact_log",
                        help="the PostgreSQL database to drop and create (one per concurrent run)")
    args = parser.parse_args(argv)
    logging.getLogger("callbacks").setLevel(logging.WARNING)
    from callbacks import create_app
    from callbacks.klarna import scrub
    from callbacks.web import jsonprovider

    print(f"{'ms of CPU (trimmed mean)':<44}{'before':>10}{'after':>10}{'diff':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        shop_file = workload.write_bench_shop(Path(tmp))
        for db in args.db.split(","):
            app = create_app({"TESTING": True, "DATABASE_URL": catalog.database(db, Path(tmp), args.pg_database),
                              "KCO_CALLBACK_SECRET": SECRET, "KCO_SHOP_FILE": str(shop_file)})
            kco = app.extensions["kco"]
            client = app.test_client()
            for lines in map(int, args.lines.split(",")):
                requests = args.requests or (1000 if lines <= 10 else 150)
                case = Case(client, kco.shop, lines, "address_update")

                def request(case=case):
                    response = case.request()
                    assert response.status_code == 200, response.get_data()[:300]

                report(f"{db} address_update, {lines} lines (n={requests})",
                       alternate(request, use, requests))
            for ext in ("kco_catalog", "kco_notify"):
                if ext in app.extensions:
                    app.extensions[ext].stop()
            kco.store.dispose()
            use("after")
        body = workload.klarna_body(kco.shop, 1000)
        functions = {"before": scrub.scrub, "after": scrub.scrub_request}
        chosen = {"f": functions["after"]}

        def pick(variant: str) -> None:
            chosen["f"] = functions[variant]

        report("scrub step alone, 1000 lines (n=1000)", alternate(lambda: chosen["f"](body), pick, 1000))
        report("scrub + the stored JSON text, 1000 lines",
               alternate(lambda: jsonprovider.dumps(chosen["f"](body)), pick, 1000))
        print(f"stored request, 1000 lines: {len(jsonprovider.dumps(scrub.scrub(body))):,} bytes before, "
              f"{len(jsonprovider.dumps(scrub.scrub_request(body))):,} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
