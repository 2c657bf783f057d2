"""Fault injection and the request log, the two things tests steer and watch the sandbox with.

A fault belongs to one API endpoint (its Flask endpoint name, see ENDPOINTS) and is used up by
the next request to it: it waits `delay` seconds, then either answers `status` (with Klarna's
error body, or `body` verbatim) without touching any order, or — without `status` — lets the
request through, so a client that gave up on a slow answer finds the work done anyway.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

ENDPOINTS = (
    "checkout.create_order", "checkout.read_order", "checkout.update_order",
    "ordermanagement.read_order", "ordermanagement.acknowledge_order",
)
MAX_DELAY = 30.0   # Klarna answers 504 itself after 30 s (docs/klarna.md §6)
LOG_SIZE = 1000


@dataclass
class Fault:
    endpoint: str
    status: int | None = None
    delay: float = 0.0
    error_code: str | None = None
    error_messages: list = field(default_factory=list)
    body: Any = None                 # replaces Klarna's error body: a JSON value or raw text
    headers: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: Mapping) -> tuple[Fault, int]:
        """(fault, count) from a control request body; ValueError names the bad field."""
        if not isinstance(spec, Mapping):
            raise ValueError("body")
        endpoint = spec.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise ValueError("endpoint")
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
            raise ValueError("count")
        status = spec.get("status")
        if status is not None and (not isinstance(status, int) or not 200 <= status <= 599):
            raise ValueError("status")
        delay = spec.get("delay", 0)
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY:
            raise ValueError("delay")
        if status is None and delay == 0:
            raise ValueError("status")  # a fault must do something
        messages = spec.get("error_messages", [])
        headers = spec.get("headers", {})
        if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
            raise ValueError("error_messages")
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers")
        code = spec.get("error_code")
        if code is not None and not isinstance(code, str):
            raise ValueError("error_code")
        return cls(endpoint, status, float(delay), code, list(messages), spec.get("body"),
                   dict(headers)), count

    def as_dict(self) -> dict:
        return asdict(self)


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._queues: dict[str, deque] = {}

    def add(self, fault: Fault, count: int = 1) -> None:
        with self._lock:
            self._queues.setdefault(fault.endpoint, deque()).extend([fault] * count)

    def take(self, endpoint: str | None) -> Fault | None:
        with self._lock:
            queue = self._queues.get(endpoint or "")
            return queue.popleft() if queue else None

    def pending(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for q in self._queues.values() for f in q]

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()


class RequestLog:
    """The last LOG_SIZE API requests: what a test asserts retries and headers with."""

    def __init__(self, size: int = LOG_SIZE):
        self._lock = threading.Lock()
        self._entries: deque = deque(maxlen=size)
        self._next = 1

    def record(self, entry: dict) -> None:
        with self._lock:
            self._entries.append({"id": self._next, **entry})
            self._next += 1

    def entries(self, endpoint: str | None = None, order_id: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._entries
                    if (endpoint is None or e["endpoint"] == endpoint)
                    and (order_id is None or e.get("order_id") == order_id)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
