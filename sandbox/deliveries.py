"""Klarna's side of the wire: POSTing callbacks to an order's `merchant_urls`, the per-order log
of what was sent and what came back, and the retry schedules of push and notification.

Schedules are in Klarna minutes (docs/klarna.md §2.1, §2.4) and run on a compressed clock:
SANDBOX_TIME_SCALE Klarna seconds pass per real second (default 1000: a Klarna minute is 60 ms,
Klarna's 48 h of pushes take under 3 real minutes). Each due attempt runs in its own daemon
thread, so a slow merchant delays nobody else.

- push: ≈2 min after the purchase, then 5, 15, 30 and 60 min after that first push, then every
  4 h, for 48 h — each attempt only while the order is not acknowledged (Order Management
  acknowledge stops them; the HTTP status of the push reply does not). Body empty.
- notification: at the fraud decision, then every 10 min for 24 h until a reply is a 200.
  Body `{"order_id", "event_type"}`.
"""
from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from sandbox.orders import iso
from sandbox.replies import NOT_JSON, Reply

PLACEHOLDER = "{checkout.order.id}"
USER_AGENT = "Klarna-Checkout-Sandbox/1.0 (kco-sync)"
MAX_LOGGED_TEXT = 4000
LOG_PER_ORDER = 500

PUSH_FIRST = 2                      # minutes after the purchase
PUSH_RETRIES = (5, 15, 30, 60)      # minutes after the first push
PUSH_EVERY, PUSH_WINDOW = 240, 48 * 60
NOTIFICATION_EVERY, NOTIFICATION_WINDOW = 10, 24 * 60


def push_schedule() -> list[int]:
    """Minutes after the purchase at which a push is due (while unacknowledged)."""
    after_first = list(PUSH_RETRIES)
    while after_first[-1] + PUSH_EVERY <= PUSH_WINDOW:
        after_first.append(after_first[-1] + PUSH_EVERY)
    return [PUSH_FIRST] + [PUSH_FIRST + m for m in after_first]


def notification_schedule() -> list[int]:
    """Minutes after the fraud decision at which a notification is due (until a 200)."""
    return list(range(0, NOTIFICATION_WINDOW + 1, NOTIFICATION_EVERY))


# --- one HTTP exchange ------------------------------------------------------------------------

def callback_url(template: str, order_id: str) -> str:
    """The merchant URL with `{checkout.order.id}` (raw or percent-encoded) replaced."""
    value = quote(order_id, safe="")
    for placeholder in (PLACEHOLDER, quote(PLACEHOLDER, safe=""), quote(PLACEHOLDER, safe="{}")):
        template = template.replace(placeholder, value)
    return template


def post(url: str, body: Any, timeout: float) -> Reply:
    """POST `body` as JSON (None: an empty body, as for push) and wait at most `timeout` s."""
    headers = {"User-Agent": USER_AGENT}
    data = b""
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body, separators=(",", ":")).encode()
    started = time.monotonic()
    with requests.Session() as session:
        session.trust_env = False  # loopback merchants: never through a proxy
        try:
            resp = session.post(url, data=data, headers=headers, timeout=timeout,
                                allow_redirects=False)
        except requests.Timeout:
            return Reply(error=f"no answer within {timeout:g} s", seconds=time.monotonic() - started)
        except requests.RequestException as exc:
            return Reply(error=f"no connection: {type(exc).__name__}",
                         seconds=time.monotonic() - started)
    try:
        parsed = json.loads(resp.content) if resp.content else NOT_JSON
    except ValueError:
        parsed = NOT_JSON
    return Reply(resp.status_code, parsed, resp.text[:MAX_LOGGED_TEXT],
                 resp.headers.get("Location"), None, time.monotonic() - started)


# --- the per-order log ------------------------------------------------------------------------

class CallbackLog:
    """Every callback the sandbox sent, per order, oldest first (GET /_sandbox/orders/{id}/log);
    each order keeps its last `per_order` entries."""

    def __init__(self, clock, per_order: int = LOG_PER_ORDER):
        if per_order < 1:
            raise ValueError("per_order must be at least 1")
        self.clock = clock
        self.per_order = per_order
        self._lock = threading.Lock()
        self._entries: dict[str, deque] = {}
        self._ids = itertools.count(1)

    def record(self, order_id: str, callback: str, url: str | None, request: Any,
               reply: Reply | None, outcome: str, **extra) -> dict:
        entry = {"callback": callback, "url": url, "request": request, "outcome": outcome}
        if reply is not None:
            entry.update(status=reply.status,
                         reply=reply.body if reply.body is not NOT_JSON else (reply.text or None),
                         location=reply.location, error=reply.error,
                         duration_ms=round(reply.seconds * 1000, 1))
        entry.update(extra)
        with self._lock:
            entry = {"id": next(self._ids), "at": iso(self.clock.now()), **entry}
            self._entries.setdefault(order_id, deque(maxlen=self.per_order)).append(entry)
        return dict(entry)

    def entries(self, order_id: str) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._entries.get(order_id, ())]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# --- the compressed clock ---------------------------------------------------------------------

class Scheduler:
    """Runs jobs at Klarna times compressed by `scale`; one daemon thread waits for the next
    due job and starts it in a thread of its own. Started on first use (after any fork)."""

    def __init__(self, scale: float):
        if scale <= 0:
            raise ValueError("SANDBOX_TIME_SCALE must be > 0")
        self.scale = float(scale)
        self._heap: list = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def real_seconds(self, klarna_minutes: float) -> float:
        return klarna_minutes * 60 / self.scale

    def call_at(self, due: float, job: Callable[[], None]) -> None:
        """Run `job` at `due` (a time.monotonic() value)."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="sandbox-deliveries",
                                                daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                _, _, job = heapq.heappop(self._heap)
            threading.Thread(target=job, name="sandbox-delivery", daemon=True).start()


# --- push and notification campaigns ----------------------------------------------------------

@dataclass
class Campaign:
    """One retry schedule for one order: its pushes, or the notifications of one decision."""

    kind: str                       # "push" | "notification"
    order_id: str
    schedule: list                  # Klarna minutes after `started`
    started: float                  # time.monotonic() of the purchase / decision
    body: Any = None
    attempts: int = 0
    state: str = "scheduled"        # scheduled → retrying → acknowledged | delivered | gave_up
    cancelled: bool = False

    def summary(self, scheduler: Scheduler) -> dict:
        index = self.attempts
        upcoming = self.schedule[index] if index < len(self.schedule) and self.state in (
            "scheduled", "retrying") else None
        return {"kind": self.kind, "state": self.state, "attempts": self.attempts,
                "schedule_minutes": self.schedule, "next_minute": upcoming,
                "next_in_seconds": None if upcoming is None else round(max(
                    0.0, self.started + scheduler.real_seconds(upcoming) - time.monotonic()), 3),
                "body": self.body}


class Deliveries:
    """Push and notification on Klarna's retry schedules, logged per order."""

    def __init__(self, orders, log: CallbackLog, scheduler: Scheduler, timeout: float):
        self.orders, self.log, self.scheduler, self.timeout = orders, log, scheduler, timeout
        self._lock = threading.Lock()
        self._campaigns: dict[str, list[Campaign]] = {}

    def start_push(self, order_id: str) -> Campaign:
        return self._start(Campaign("push", order_id, push_schedule(), time.monotonic()))

    def start_notification(self, order_id: str, event_type: str) -> Campaign:
        body = {"order_id": order_id, "event_type": event_type}
        return self._start(Campaign("notification", order_id, notification_schedule(),
                                    time.monotonic(), body))

    def push_now(self, order_id: str) -> dict:
        """One extra push outside the schedule (what a late Klarna retry looks like)."""
        return self._deliver(Campaign("push", order_id, [0], time.monotonic()), 0, extra=True)

    def campaigns(self, order_id: str) -> list[dict]:
        with self._lock:
            return [c.summary(self.scheduler) for c in self._campaigns.get(order_id, ())]

    def reset(self) -> None:
        with self._lock:
            for campaigns in self._campaigns.values():
                for campaign in campaigns:
                    campaign.cancelled = True
            self._campaigns.clear()
        self.scheduler.clear()

    # internals

    def _start(self, campaign: Campaign) -> Campaign:
        with self._lock:
            self._campaigns.setdefault(campaign.order_id, []).append(campaign)
        self._schedule(campaign, 0)
        return campaign

    def _schedule(self, campaign: Campaign, index: int) -> None:
        due = campaign.started + self.scheduler.real_seconds(campaign.schedule[index])
        self.scheduler.call_at(due, lambda: self._attempt(campaign, index))

    def _attempt(self, campaign: Campaign, index: int) -> None:
        if campaign.cancelled:
            return
        try:
            order, _ = self.orders.inspect(campaign.order_id)
        except Exception:  # noqa: BLE001 - the order was forgotten (reset): nothing to deliver
            campaign.state = "cancelled"
            return
        if campaign.kind == "push" and order.acknowledged:
            campaign.state = "acknowledged"
            return
        entry = self._deliver(campaign, index, order=order)
        if campaign.cancelled:
            return
        if campaign.kind == "notification" and entry.get("status") == 200:
            campaign.state = "delivered"
        elif index + 1 < len(campaign.schedule):
            campaign.state = "retrying"
            self._schedule(campaign, index + 1)
        else:
            campaign.state = "gave_up"

    def _deliver(self, campaign: Campaign, index: int, order=None, extra: bool = False) -> dict:
        if order is None:
            order, _ = self.orders.inspect(campaign.order_id)
        template = (order.data.get("merchant_urls") or {}).get(campaign.kind)
        campaign.attempts += 1
        meta = {"attempt": campaign.attempts, "schedule_minute": campaign.schedule[index]}
        if extra:
            meta = {"attempt": "extra", "schedule_minute": None}
        if not template:
            return self.log.record(campaign.order_id, campaign.kind, None, campaign.body, None,
                                   "no_url", **meta)
        url = callback_url(template, campaign.order_id)
        reply = post(url, campaign.body, self.timeout)
        if campaign.kind == "push":
            outcome = "delivered" if reply.answered else "no_answer"
        else:
            outcome = "delivered" if reply.status == 200 else "not_200"
        return self.log.record(campaign.order_id, campaign.kind, url, campaign.body, reply,
                               outcome, **meta)
