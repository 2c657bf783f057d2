"""Waiting for a condition, never for a time: a test that needs something another process or
thread does polls for it, with a deadline generous enough for a busy 2-core machine running
other test workers (what matters is that it happens, not how fast; timing is bench/'s job)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

DEADLINE = 60.0  # seconds: far beyond any healthy run, so only a real hang fails
POLL = 0.02

T = TypeVar("T")


def until(condition: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail naming `what`
    after `timeout` seconds. An exception from `condition` propagates at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(POLL)
