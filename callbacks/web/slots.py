"""Work slots: at most KCO_WORK_SLOTS cart-sized requests are worked on at once per process.

A gthread worker has many threads (128 in the Procfile) because waiting long-polls each hold
one (docs/long-poll.md). Those threads must not all turn into carts at once: a 1000-line
callback holds a few MB of parsed JSON, state and log row while it runs, and glibc keeps what
it freed, so a worker's memory grows with how many of them overlapped, not with how many it
served (BENCHMARKS.md: peak RSS per worker). Under the GIL they do not run in parallel anyway,
so a request beyond the limit waits for a slot before its body is read, and its turn comes as
soon as one ends: throughput is the same, only the memory of the overlap is saved.

Guarded: Klarna's synchronous callbacks and the storefront's cart write, which read, price and
write a whole cart and call nobody. Not guarded: anything that waits on the network (push and
notification read the order from Klarna, a checkout load calls Klarna's API: they would hold a
slot for seconds while Klarna answers), long-polls, and the cheap reads.
"""
from __future__ import annotations

import threading

from flask import Flask, g, request

GUARDED = frozenset({"kco.address_update", "kco.shipping_option_update", "kco.country_change",
                     "kco.validation", "storefront.put_cart"})


def init_app(app: Flask) -> None:
    limit = app.config.get("KCO_WORK_SLOTS") or 0
    if limit <= 0:  # 0: no limit
        return
    slots = threading.BoundedSemaphore(limit)
    app.extensions["kco_work_slots"] = limit

    # App-wide hooks run before the blueprints' (token checks, body reads): a request waits for
    # its slot before anything of its body is read. Every slot holder is bounded in time by the
    # database's own waits (the writer lock and the pool, 30 s), so a plain acquire cannot hang.
    @app.before_request
    def take_slot():
        if request.endpoint in GUARDED:
            slots.acquire()
            g.kco_work_slot = True

    @app.teardown_request
    def give_slot(_exc):
        if g.pop("kco_work_slot", False):
            slots.release()
