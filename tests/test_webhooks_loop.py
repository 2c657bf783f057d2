"""The worker's loop (`Deliverer.run`, what `flask kco deliver` runs): deliveries stay in
flight independently, so a receiver that hangs holds back only its own messages, and a
session's next message goes out as soon as the previous one is recorded, not a poll later
(docs/webhooks.md, "The worker")."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from callbacks.webhooks import endpoints
from tests.receiver import Receiver, until
from tests.test_webhooks import worker, write


@contextmanager
def running(w):
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        w.stop()
        thread.join(15)
        assert not thread.is_alive(), "the worker did not stop"


def test_a_hanging_receiver_does_not_hold_back_another_endpoints_deliveries(store):
    release = threading.Event()
    stuck = Receiver(lambda n, body: (200, 0) if release.wait(20) else (500, 0))
    fast = Receiver()
    try:
        endpoints.create(store, stuck.url, ["order_completed"])
        endpoints.create(store, fast.url, ["cart_updated"])
        write(store, "slow-1", 1, "order_completed")
        write(store, "slow-2", 1, "order_completed")
        for s in range(30):
            write(store, f"s-{s}", 2)
        with running(worker(store, concurrency=4, poll=0.05)):
            # Two of four slots hang at the stuck receiver; the other two carry all 60.
            until(lambda: len(fast.received) == 60, "the fast endpoint's 60 messages")
            assert not release.is_set() and len(stuck.received) == 2
            release.set()
            until(lambda: _delivered(store) == 62, "every message recorded")
    finally:
        release.set()
        stuck.close()
        fast.close()


def test_a_sessions_backlog_drains_without_waiting_for_the_poll(store):
    fast = Receiver()
    try:
        endpoints.create(store, fast.url)
        write(store, "one-session", 25)
        # A poll of a minute: each next message must go out because the previous one was
        # recorded, not because the worker looked again (SQLite has no notification).
        with running(worker(store, concurrency=8, poll=60)):
            until(lambda: len(fast.received) == 25, "one session's 25 messages", timeout=30)
        assert [b["data"]["version"] for b in fast.bodies()] == list(range(1, 26))
    finally:
        fast.close()


def _delivered(store) -> int:
    import sqlalchemy as sa

    from callbacks.store.tables import webhook_messages as m
    with store.reads.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(m.c.state == "delivered")).scalar_one()
