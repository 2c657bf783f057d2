"""Work slots: at most KCO_WORK_SLOTS cart-sized requests are worked on at once per process.

A gthread worker has many threads (128 in the Procfile) because waiting long-polls each hold
one (docs/long-poll.md). Those threads must not all turn into carts at once: a 1000-line
callback holds a few MB of parsed JSON, state and log row while it runs, and glibc keeps what
it freed, so a worker's memory grows with how many of them overlapped, not with how many it
served (BENCHMARKS.md: peak RSS per worker). Under the GIL they do not run in parallel anyway,
so a request beyond the limit waits for a slot, and its turn comes as soon as one ends:
throughput is the same, only the memory of the overlap is saved.

A slot is taken only once the request has passed its blueprint's checks (the callback token,
the API key) and its whole body has arrived: a caller who sends its body slowly, or a forged
URL, holds a thread as before, never a slot that Klarna's callbacks need.

Guarded: Klarna's synchronous callbacks (`@guarded`), which read, price and write a whole cart
and call nobody, and the pricing and writing of the storefront's cart (`with slot()` in
`PUT cart`), which then updates the Klarna order outside its slot. Nothing that waits on the
network or on a checkout lease holds a slot (push and notification read the order from Klarna,
a checkout load and a cart's Klarna update call Klarna's API and wait for the session's lease:
seconds, during which Klarna's callbacks, whose answers Klarna times out, would queue), and
neither do long-polls and the cheap reads. So this bounds the memory of Klarna's callbacks,
not of every request: a `PUT cart` parses its body, and a read holds a stored state, outside
any slot (BENCHMARKS.md has what that leaves at 16 and 64 connections).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import Flask, current_app, request

P = ParamSpec("P")
R = TypeVar("R")


def init_app(app: Flask) -> None:
    limit = app.config.get("KCO_WORK_SLOTS") or 0
    app.extensions["kco_work_slots"] = threading.BoundedSemaphore(limit) if limit > 0 else None


@contextmanager
def slot() -> Iterator[None]:
    slots = current_app.extensions.get("kco_work_slots")
    if slots is None:  # 0: no limit
        yield
        return
    request.get_data(cache=True)  # the whole body first (413 past the limit, as in the view)
    # Every slot holder is bounded in time by the database's own waits (the writer lock and
    # the pool, 30 s) and calls nobody, so a plain acquire cannot hang.
    with slots:
        yield


def guarded(view: Callable[P, R]) -> Callable[P, R]:
    """Run `view` in a work slot: for views that call nobody and wait only on the database."""
    @wraps(view)
    def in_slot(*args: P.args, **kwargs: P.kwargs) -> R:
        with slot():
            return view(*args, **kwargs)
    return in_slot
