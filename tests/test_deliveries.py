"""The sandbox's per-order log of the callbacks it sent (sandbox/deliveries.py)."""
from __future__ import annotations

import pytest

from sandbox.clock import Clock
from sandbox.deliveries import LOG_PER_ORDER, CallbackLog


def test_each_order_keeps_its_last_per_order_entries():
    log = CallbackLog(Clock(), per_order=3)
    for n in range(5):
        log.record("ord-a", "push", f"https://shop.example/push?n={n}", None, None, "no_url")
    log.record("ord-b", "notification", None, {"order_id": "ord-b"}, None, "no_url")
    kept = log.entries("ord-a")
    assert [e["url"] for e in kept] == [f"https://shop.example/push?n={n}" for n in (2, 3, 4)]
    assert [e["id"] for e in kept] == sorted(e["id"] for e in kept)
    assert len(log.entries("ord-b")) == 1


def test_the_default_keeps_log_per_order_entries():
    log = CallbackLog(Clock())
    for _ in range(LOG_PER_ORDER + 2):
        log.record("ord-a", "push", None, None, None, "no_url")
    assert len(log.entries("ord-a")) == LOG_PER_ORDER


def test_a_log_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError):
        CallbackLog(Clock(), per_order=0)
