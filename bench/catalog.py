"""A 100 000-product catalog: import time, and callback CPU per request against the example shop.

    .venv/bin/python -m bench.catalog [--products 100000] [--requests 400] [--db sqlite,postgresql]

For each database (a fresh SQLite file; PostgreSQL database `kco_bench_catalog`, recreated):

1. writes a CSV of N generated products (every column the importer takes, 7 currencies);
2. times `flask kco catalog import` on it (a subprocess, as an operator runs it), then again
   (nothing changed: the idempotent path), then with 1 % of the prices changed;
3. measures the service's CPU per callback in-process (Flask test client, one thread,
   `time.process_time` over `--requests` requests after a warm-up) for a 10-line cart,
   address_update alternating SE/FI shipping (a re-price and a write every time) and a passing
   validation, in four set-ups: the example shop with pricing reading the shop file's mapping
   directly (the code before the catalog: the baseline); the example shop through the catalog
   (its [products], empty products table);
   the 100 000-product catalog with a warm cache; and the same with the catalog changed
   before every request (every SKU of the cart read again from the database: the worst
   case, right after an import).

PostgreSQL's own CPU is not in these figures (it is another process). Timing belongs here,
not in the tests (house rule).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
CURRENCIES = ("SEK", "NOK", "EUR", "DKK", "GBP", "CHF", "USD")
FACTORS = (100, 120, 10, 75, 9, 11, 11)
TAX_CLASSES = ("standard", "reduced", "books")
PG_SERVER = os.environ.get("KCO_TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")


def write_csv(path: Path, products: int, change_every: int = 0) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["reference", "name", "name_sv", "name_fi", "tax_class", "type", "stock",
                      *(f"price_{c}" for c in CURRENCIES)])
        for i in range(products):
            base = 900 + (i * 7919) % 29000
            if change_every and i % change_every == 0:
                base += 100
            out.writerow([f"BIG-{i:06d}", f"Catalog product {i}", f"Katalogprodukt {i}",
                          f"Tuote {i}", TAX_CLASSES[i % 3], "digital" if i % 10 == 0 else "physical",
                          "" if i % 4 else 1000, *(max(100, base * f // 100) for f in FACTORS)])


def example_skus() -> list[str]:
    """Ten of the example shop's products sold in SEK: the same cart size as the big one."""
    from callbacks.rules.shop import load_shop

    skus = [p.sku for p in load_shop().products.values()
            if "SEK" in p.prices and (p.stock is None or p.stock >= 2)][:10]
    assert len(skus) == 10, skus
    return skus


def database(kind: str, tmp: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / name}.sqlite3"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{PG_SERVER}/{name}"


def flask_import(url: str, path: Path) -> tuple[float, str]:
    env = {**os.environ, "DATABASE_URL": url, "KCO_CALLBACK_SECRET": "bench", "KCO_API_KEY": "bench"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", "catalog",
                           "import", "--no-progress", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


class Setup:
    """One app (a worker) with one session whose 10-line cart is priced from `skus`."""

    def __init__(self, name: str, url: str, skus: list[str], *, churn: bool = False,
                 bypass: bool = False):
        import logging

        from bench.workload import address
        from callbacks import create_app
        from callbacks.rules.cart import set_cart
        from callbacks.rules.pricing import CartItem
        from callbacks.web.tokens import callback_token

        logging.getLogger("callbacks").setLevel(logging.WARNING)
        self.name, self.skus, self.churn = name, skus, churn
        self.app = create_app({"TESTING": True, "DATABASE_URL": url, "KCO_CALLBACK_SECRET": "bench"})
        self.kco = self.app.extensions["kco"]
        if bypass:  # the shop file's products as a plain mapping: the code before the catalog
            self.kco.shop = dataclasses.replace(self.kco.shop,
                                                products=self.kco.shop.products.file_products)
        self.client = self.app.test_client()
        self.sid = f"bench-{name.split()[0]}-{int(time.time() * 1000)}"
        items = [CartItem(s, 1 + i % 2) for i, s in enumerate(skus)]
        self.kco.store.apply(self.sid, lambda tx: set_cart(self.kco.shop, tx.state,
                                                                    self.sid, items, None))
        self.token = callback_token("bench", self.sid)
        state = self.kco.store.get_state(self.sid)
        self.bodies = {c: {"order_amount": state["order"]["order_amount"],
                           "order_tax_amount": state["order"]["order_tax_amount"],
                           "order_lines": state["order"]["order_lines"], "purchase_currency": "SEK",
                           "locale": "sv-SE", "billing_address": address("SE"),
                           "shipping_address": address(c)} for c in ("SE", "FI")}
        self.samples: dict[str, list[float]] = {"address_update": [], "validation": []}
        self.i = 0

    def touch(self) -> None:
        """Another writer changes the cart's products: this worker must read them again."""
        from callbacks.catalog import table
        from callbacks.catalog.cache import announce

        with self.kco.store.write() as conn:
            version = table.bump(conn)  # and pg_notify, as every catalog write does
            conn.execute(table.products.update().where(table.products.c.sku.in_(self.skus))
                         .values(version=version))
        announce(self.kco.store, version)  # as the importer and the API do after committing

    def run(self, callback: str, requests: int, keep: bool = True) -> None:
        # An order belongs to one session: each set-up's session has its own.
        path = f"/kco/{callback}?session={self.sid}&token={self.token}&order_id=order-{self.sid}"
        for _ in range(requests):
            self.i += 1
            if callback == "address_update":
                payload = self.bodies["FI" if self.i % 2 else "SE"]
            else:
                reply = self.client.post(f"/kco/address_update?session={self.sid}&token={self.token}",
                                         json=self.bodies["SE"]).get_json()
                payload = {**self.bodies["SE"], "purchase_country": "SE",
                           "status": "checkout_incomplete",
                           **{k: reply[k] for k in ("order_amount", "order_tax_amount", "order_lines")}}
            if self.churn:
                self.touch()
            started = time.process_time()
            response = self.client.post(path, json=payload)
            spent = time.process_time() - started
            assert response.status_code == 200, (callback, response.status_code, response.get_data()[:300])
            if keep:
                self.samples[callback].append(spent * 1000)

    def close(self) -> None:
        self.app.extensions["kco_catalog"].stop()
        self.app.extensions["kco_notify"].stop()
        self.kco.store.dispose()


def interleaved(setups: list[Setup], requests: int, rounds: int = 10) -> None:
    """Rounds of requests taken in turn from every set-up, so that load from elsewhere on the
    machine falls on all of them alike rather than on whichever ran during a burst."""
    for setup in setups:
        for callback in setup.samples:
            setup.run(callback, 20, keep=False)  # warm-up: imports, caches, prepared statements
    per_round = max(1, requests // rounds)
    for _ in range(rounds):
        for callback in ("address_update", "validation"):
            for setup in setups:
                setup.run(callback, per_round)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg-name", default="kco_bench_catalog",
                        help="PostgreSQL database names start with this (dropped and recreated)")
    parser.add_argument("--imports", type=int, choices=(1, 3), default=3,
                        help="1: only the first import (to re-measure callbacks sooner)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path, changed_path = tmp / "catalog.csv", tmp / "catalog-changed.csv"
        started = time.perf_counter()
        write_csv(csv_path, args.products)
        write_csv(changed_path, args.products, change_every=100)
        print(f"generated {args.products} products ({csv_path.stat().st_size / 2**20:.1f} MiB) "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
        for kind in args.db.split(","):
            url = database(kind, tmp, args.pg_name)
            first, line = flask_import(url, csv_path)
            print(f"{kind}: import {first:.1f} s wall ({line})", flush=True)
            if args.imports == 3:
                again, line = flask_import(url, csv_path)
                print(f"  again {again:.1f} s wall ({line})", flush=True)
                changed, line = flask_import(url, changed_path)
                print(f"  1 % changed {changed:.1f} s wall ({line})", flush=True)
            step = max(1, args.products // 10)
            big_skus = [f"BIG-{i:06d}" for i in range(1, args.products, step)][:10]
            example_url = database(kind, tmp, f"{args.pg_name}_example")
            setups = [Setup("example shop, no catalog (before)", example_url, example_skus(),
                            bypass=True),
                      Setup("example shop", example_url, example_skus()),
                      Setup(f"{args.products} products, warm cache", url, big_skus),
                      Setup(f"{args.products} products, changed before every request", url,
                            big_skus, churn=True)]
            interleaved(setups, args.requests)
            base = {c: statistics.median(v) for c, v in setups[0].samples.items()}
            for setup in setups:
                for callback, samples in setup.samples.items():
                    median = statistics.median(samples)
                    print(f"  {kind:10} {setup.name:48} {callback:15} median {median:6.2f} ms "
                          f"mean {statistics.mean(samples):6.2f} ms  ×{median / base[callback]:.2f} "
                          f"(n={len(samples)})", flush=True)
                setup.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
