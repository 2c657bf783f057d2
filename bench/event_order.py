"""PostgreSQL's write ceiling: how long the event-order lock is held per callback, and whether
two service instances sharing one database are held back by it (docs/event-ordering.md).

    .venv/bin/python -m bench.event_order [--threads 16] [--callbacks 400] [--seconds 5]

1. **Hold time.** 2 processes × `--threads` threads each run `--callbacks` callbacks' worth of
   database work in total (the session lock, read, `checkout.address_update` on a 10-line cart,
   save) on their own sessions, as fast as they can; for each callback it records how long the
   event-order lock was held, for whichever tree it runs in: with the horizon
   (store/events_pg.py), the server's clock either side of `kco_append_events`, which holds
   the lock only inside it; with the global lock held to the commit, the length of the one
   message that takes it and commits, or from the moment the lock statement returned to the
   moment the commit returned (older trees). Each includes any wait for the lock: an upper
   bound. The ceiling is 1 / mean hold.
2. **Two instances.** Two gunicorn services (the Procfile's command, 127.0.0.1) on one fresh
   PostgreSQL database, each driven by wrk with 10-line `address_update`s on its own sessions
   for `--seconds`, both at once. Meanwhile pg_locks is sampled every 10 ms for transactions
   waiting on the event-order lock and on any advisory lock (the per-session locks too), and
   /proc/stat for how busy the machine's CPUs are.

`--commit-delay-ms N` adds N ms to every event-writing commit (a deferred trigger that sleeps),
as a disk with a slower WAL flush than this machine's would.

3. **Reads.** What a feed read of 50 events costs, alone and while an open transaction in the
   database holds them back; one INSERT committed on its own and `SELECT 1`, for scale.

Bounded: a fixed number of callbacks, wrk runs of `--seconds`, localhost only. Runs the code
of the tree it sits in (so a copy of an older tree measures that tree).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import workload  # noqa: E402
from bench.run import SECRET, prepare_database, seed, service_env, wrk  # noqa: E402
from bench.server import gunicorn  # noqa: E402
from callbacks.store import database  # noqa: E402
from callbacks.store.database import EVENT_ORDER_LOCK, Store  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/kco_perf_order"


def instrument(holds: list[float]) -> None:
    """Record the event-order lock's hold time per callback in this process, for any tree."""
    try:
        from callbacks.store import events_pg
    except ImportError:  # a tree from before the horizon
        events_pg = None
    if events_pg is not None:  # the horizon: the lock is held inside kco_append_events only
        def timed_append(conn, pending):
            """events_pg.publish with the server's clock read either side of the function:
            the lock's hold time, plus any wait for it (an upper bound)."""
            from psycopg import sql

            from callbacks.web import jsonprovider
            batch = jsonprovider.dumps([
                {"session": e["session"], "type": e["type"], "version": e["version"],
                 "at": at.isoformat(), "data": e["data"]} for e, at in pending])
            message = sql.SQL(
                "SELECT clock_timestamp(); SELECT id, pg_notify('kco_events', id::text)"
                " FROM kco_append_events({batch}::json) AS id ORDER BY id;"
                " SELECT clock_timestamp(); COMMIT").format(batch=sql.Literal(batch))
            raw = conn.connection.driver_connection
            with raw.cursor() as cursor:
                cursor.execute(message.as_string(raw))
                began = cursor.fetchone()[0]
                cursor.nextset()
                for (event, _), (event_id, _) in zip(pending, cursor.fetchall(), strict=True):
                    event["id"] = event_id
                cursor.nextset()
                holds.append((cursor.fetchone()[0] - began).total_seconds())
        events_pg.publish = timed_append
        return
    if hasattr(database, "_publish"):  # one message: lock, insert, notify, commit
        publish = database._publish

        def timed(conn, pending):
            began = time.perf_counter()
            publish(conn, pending)
            holds.append(time.perf_counter() - began)
        database._publish = timed
        return
    local = threading.local()
    sa.event.listen(sa.Engine, "after_cursor_execute",
                    lambda conn, cursor, statement, params, context, many: setattr(
                        local, "granted", time.perf_counter())
                    if "pg_advisory_xact_lock" in statement and EVENT_ORDER_LOCK in (
                        params.values() if isinstance(params, dict) else params) else None)
    session = Store.session

    def timed_session(self, sid):
        context = session(self, sid)

        class Timed:
            def __enter__(self):
                local.granted = None
                return context.__enter__()

            def __exit__(self, *exc):
                out = context.__exit__(*exc)
                if local.granted is not None:
                    holds.append(time.perf_counter() - local.granted)
                return out
        return Timed()
    Store.session = timed_session


def hold_worker(url: str, shop_file: str, threads: int, callbacks: int, name: str, out) -> None:
    from callbacks.klarna import schemas
    from callbacks.rules import checkout
    from callbacks.rules.shop import load_shop

    shop = load_shop(Path(shop_file))
    raw = workload.klarna_body(shop, 10)
    bodies = [schemas.shipping_service_request.load(b) for b in
              (raw, {**raw, "shipping_address": workload.address("SE", "C")})]
    holds: list[float] = []
    instrument(holds)
    store = Store(url)

    def run(t: int) -> None:
        for k in range(callbacks // threads):
            sid = f"{name}-{t}-{k % 4}"
            with store.session(sid) as tx:
                decision = checkout.address_update(shop, tx.state, sid, bodies[k // 4 % 2])
                if decision.event_type:
                    tx.save(decision.state, decision.event_type, decision.data)

    began = time.perf_counter()
    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((holds, time.perf_counter() - began))
    store.dispose()


def hold_times(url: str, shop_file: Path, threads: int, callbacks: int) -> dict:
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=hold_worker, args=(
        url, str(shop_file), threads, callbacks // 2, f"p{i}", queue)) for i in range(2)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(60)
    holds = sorted(h * 1000 for r in results for h in r[0])
    seconds = max(r[1] for r in results)
    mean = statistics.fmean(holds)
    return {"callbacks": len(holds), "callbacks_per_s": len(holds) / seconds,
            "hold_ms_p50": holds[len(holds) // 2], "hold_ms_p99": holds[int(len(holds) * .99)],
            "hold_ms_mean": mean, "ceiling_per_s": 1000 / mean,
            "lock_busy": len(holds) / seconds * mean / 1000}


def cpu_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)  # busy, total (idle, iowait out)


def two_instances(url: str, shop_file: Path, tmp: Path, seconds: int, conns: int) -> dict:
    shop = workload.load_shop(shop_file)
    env = service_env(url, shop_file, [])
    with gunicorn("wsgi:app", env, tmp, "a") as a, gunicorn("wsgi:app", env, tmp, "b") as b:
        scripts = []
        for server, name in ((a, "a"), (b, "b")):
            pool = next(p for p in workload.pools(shop, 10, 40) if p.endpoint == "address_update")
            pool.sids = [f"{name}-{sid}" for sid in pool.sids]
            pool.spare = f"{name}-{pool.spare}"
            seed(server.base, [pool])
            directory = tmp / name
            directory.mkdir()
            scripts.append(workload.write_lua(pool, SECRET, directory))
        waits, samples, stop = [], [0], threading.Event()
        engine = sa.create_engine(url)

        def sample() -> None:
            """Writers waiting on the event-order lock, and on any advisory lock (the
            per-session locks too), in this database."""
            with engine.connect() as conn:
                while not stop.is_set():
                    waits.append(tuple(conn.execute(sa.text(
                        "SELECT count(*) FILTER (WHERE objid = :k), count(*) FROM pg_locks"
                        " WHERE locktype = 'advisory' AND NOT granted"
                        " AND database = (SELECT oid FROM pg_database"
                        "                 WHERE datname = current_database())"),
                        {"k": EVENT_ORDER_LOCK}).one()))
                    conn.rollback()
                    samples[0] += 1
                    time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        busy0, total0 = cpu_busy()
        cpu0 = a.cpu_seconds() + b.cpu_seconds()
        results = [None, None]
        drivers = [threading.Thread(target=lambda i=i, s=s: results.__setitem__(
            i, wrk("wrk", s.base, scripts[i], conns, seconds, 0))) for i, s in enumerate((a, b))]
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join()
        busy1, total1 = cpu_busy()
        cpu = a.cpu_seconds() + b.cpu_seconds() - cpu0
        stop.set()
        sampler.join()
        engine.dispose()
    requests = sum(r["requests"] for r in results)
    return {"req_per_s": [r["requests"] / (r["duration_us"] / 1e6) for r in results],
            "total_req_per_s": sum(r["requests"] / (r["duration_us"] / 1e6) for r in results),
            "worker_cpu_ms_per_request": 1000 * cpu / max(requests, 1),
            "machine_cpu_busy": (busy1 - busy0) / max(total1 - total0, 1),
            "order_lock_waiters_mean": statistics.fmean(w[0] for w in waits) if waits else 0,
            "samples_with_an_order_lock_waiter": sum(1 for w in waits if w[0]) / max(len(waits), 1),
            "advisory_waiters_mean": statistics.fmean(w[1] for w in waits) if waits else 0,
            "samples_with_an_advisory_waiter": sum(1 for w in waits if w[1]) / max(len(waits), 1),
            "load_average_after": os.getloadavg()}


def slow_commits(url: str, ms: float) -> None:
    """Make every event-writing COMMIT take `ms` longer, as a slower disk's WAL flush would:
    a deferred trigger that sleeps at commit (no CPU), per event: one per callback here."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.connection.driver_connection.execute(f"""
            CREATE FUNCTION bench_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({ms / 1000:.4f}); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER bench_slow_commit AFTER INSERT ON events
              DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_slow_commit()""")
    engine.dispose()


def _ms(samples: list[float]) -> dict:
    samples = sorted(x * 1000 for x in samples)
    return {"p50_ms": samples[len(samples) // 2], "mean_ms": statistics.fmean(samples)}


def reads(url: str, rounds: int = 300) -> dict:
    """What a feed read costs (Store.events_after of the newest 50 events), alone and when 50
    events are held back by a transaction with an xid left open in this database (the
    reader's cut then looks at pg_stat_activity); and, for scale, one INSERT committed
    on its own (the WAL flush) and `SELECT 1`."""
    store = Store(url)
    after = max(store.last_event_id() - 50, 0)

    def timed(call) -> dict:
        samples = []
        for _ in range(rounds):
            began = time.perf_counter()
            call()
            samples.append(time.perf_counter() - began)
        return _ms(samples)

    out = {"feed_read": timed(lambda: store.events_after(after, limit=50))}
    with store.engine.connect() as older:
        older.execute(sa.text("SELECT pg_current_xact_id()"))
        after = store.last_event_id()
        for k in range(50):  # newer than `older`: held back until it ends (with the horizon)
            with store.session(f"bench-held-{k}") as tx:
                tx.save({"n": k}, "cart_updated", {})
        out["feed_read_held_back"] = timed(lambda: store.events_after(after, limit=50))
        out["held_back_events_returned"] = len(store.events_after(after, limit=50))
        older.rollback()
    with store.engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_commit (x int)"))
        conn.commit()

        def insert_commit() -> None:
            conn.execute(sa.text("INSERT INTO bench_commit VALUES (1)"))
            conn.commit()
        out["insert_commit"] = timed(insert_commit)
        out["select_1"] = timed(lambda: (conn.execute(sa.text("SELECT 1")), conn.rollback()))
    store.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL; its database is dropped")
    parser.add_argument("--threads", type=int, default=16, help="threads per process (part 1)")
    parser.add_argument("--callbacks", type=int, default=400, help="in all (part 1)")
    parser.add_argument("--seconds", type=int, default=5, help="wrk run (part 2)")
    parser.add_argument("--connections", type=int, default=16, help="per instance (part 2)")
    parser.add_argument("--hold-only", action="store_true", help="part 1 only")
    parser.add_argument("--commit-delay-ms", type=float, default=0,
                        help="add this to every event-writing commit, as a slow disk would")
    args = parser.parse_args()
    print(f"tree: {ROOT}; load average {os.getloadavg()}; commit delay {args.commit_delay_ms} ms",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="kco-order-") as name:
        tmp = Path(name)
        shop_file = workload.write_bench_shop(tmp)
        url = prepare_database("postgresql", tmp, args.pg, 10)
        if args.commit_delay_ms:
            slow_commits(url, args.commit_delay_ms)
        print("hold time:", hold_times(url, shop_file, args.threads, args.callbacks), flush=True)
        if args.hold_only:
            return 0
        url = prepare_database("postgresql", tmp, args.pg, 10)
        if args.commit_delay_ms:
            slow_commits(url, args.commit_delay_ms)
        print("two instances:", two_instances(url, shop_file, tmp, args.seconds,
                                              args.connections), flush=True)
        print("reads:", reads(url), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
