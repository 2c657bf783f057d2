"""Time `price_order` per call on the example shop (docs/design.md §10: a few ms of our own work).

    cd /work/main && .venv/bin/python bench/pricing.py

Prints the median time per call over several timeit repeats; no assertions. Cases:

* a 10-line cart (10 distinct SKUs) in SE (SEK, VAT) and US (USD, sales tax);
* a 1000-line cart over the example catalogue's SKUs: the lines merge into ≤ 12 order lines,
  so this measures merging a long cart more than pricing;
* a 1000-order-line order: the example shop with its catalogue cloned to ~1000 SKUs, one cart
  line each, so the order has exactly 1000 lines (goods + shipping, + sales tax in the US) —
  Klarna's maximum and the worst case a callback can meet.
"""
from __future__ import annotations

import dataclasses
import random
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callbacks.rules.pricing import CartItem, price_order  # noqa: E402
from callbacks.rules.shop import load_shop  # noqa: E402

REPEATS = 7
MIN_SECONDS_PER_REPEAT = 0.2


def per_call(fn) -> tuple[float, int]:
    """Median seconds per call over REPEATS repeats of a loop long enough to time well."""
    timer = timeit.Timer(fn)
    number, taken = timer.autorange()          # loops until one repeat takes ≥ 0.2 s
    number = max(1, round(number * MIN_SECONDS_PER_REPEAT / taken))
    runs = timer.repeat(repeat=REPEATS, number=number)
    return statistics.median(runs) / number, number


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:8.1f} µs"


def main() -> None:
    shop = load_shop()
    rnd = random.Random(20261127)
    us_skus = [s for s, p in shop.products.items() if "USD" in p.prices]
    se_skus = list(shop.products)

    # Clone the catalogue (the USD-priced products) to 1000 SKUs: same prices, classes, types.
    originals = [p for p in shop.products.values() if "USD" in p.prices]
    big_products = dict(shop.products)
    i = 0
    while len(big_products) < 1000:
        p = originals[i % len(originals)]
        sku = f"{p.sku}-{i:04d}"
        big_products[sku] = dataclasses.replace(p, sku=sku)
        i += 1
    big = dataclasses.replace(shop, products=big_products)
    big_usd = [s for s, p in big.products.items() if "USD" in p.prices]

    se, us = shop.markets["SE"], shop.markets["US"]
    cases = [
        ("SE  10-line cart", shop,
         [CartItem(s, rnd.randint(1, 3)) for s in rnd.sample(se_skus, 10)],
         dict(currency="SEK", tax_market=se, language="sv", coupon=shop.coupons["WELCOME50"])),
        ("US  10-line cart", shop,
         [CartItem(s, rnd.randint(1, 3)) for s in rnd.sample(us_skus, 10)],
         dict(currency="USD", tax_market=us, language="en", region="CA",
              coupon=shop.coupons["WELCOME50"])),
        ("SE  1000-line cart, 12 SKUs", shop,
         [CartItem(rnd.choice(se_skus), 1) for _ in range(1000)],
         dict(currency="SEK", tax_market=se, language="sv", coupon=shop.coupons["SUMMER10"])),
        ("US  1000-line cart, 11 SKUs", shop,
         [CartItem(rnd.choice(us_skus), 1) for _ in range(1000)],
         dict(currency="USD", tax_market=us, language="en", region="NY",
              coupon=shop.coupons["SUMMER10"])),
        ("SE  1000 order lines (999 SKUs + shipping)", big,
         [CartItem(s, rnd.randint(1, 2)) for s in rnd.sample(list(big.products), 999)],
         dict(currency="SEK", tax_market=se, language="sv", coupon=shop.coupons["WELCOME50"])),
        ("US  1000 order lines (998 SKUs + shipping + tax)", big,
         [CartItem(s, rnd.randint(1, 2)) for s in rnd.sample(big_usd, 998)],
         dict(currency="USD", tax_market=us, language="en", region="CA",
              coupon=shop.coupons["WELCOME50"])),
    ]
    print(f"price_order, median of {REPEATS} repeats (Python {sys.version.split()[0]})")
    for name, s, items, kw in cases:
        priced = price_order(s, items, **kw)
        seconds, number = per_call(lambda s=s, items=items, kw=kw: price_order(s, items, **kw))
        print(f"  {name:<48} {fmt(seconds)} per call   "
              f"({len(priced.order_lines):4d} order lines, {number} calls/repeat)")


if __name__ == "__main__":
    main()
