"""Prometheus metrics: `GET /metrics` (docs/design.md §10 budgets, made visible).

* `kco_callbacks_total{callback, status}`: every Klarna callback, counted by its reply status
  (401s for a wrong token are counted too: a count by callback name and status records nothing
  of the request, and a rising 401 count is what an operator wants to see);
* `kco_callback_duration_seconds{callback}`: how long we took to answer, a histogram with
  buckets fine enough to see the few-millisecond budget;
* `kco_longpoll_waiters`: long-poll requests waiting right now;
* `kco_klarna_api_calls_total{operation, status}` and `kco_klarna_api_duration_seconds`: every
  call to Klarna's Checkout and Order Management APIs (retries included).

Each app gets its own `CollectorRegistry` (never the global default), so tests that create
many apps do not collide. Under gunicorn with several workers every worker has its own
counters; set `PROMETHEUS_MULTIPROC_DIR` to an empty, writable directory in the environment of
gunicorn (before it starts: prometheus_client reads it at import) and `/metrics` then sums all
workers through `prometheus_client.multiprocess`. `gunicorn.conf.py` empties the directory at
start and marks dead workers so the waiters gauge stays right (docs/long-poll.md).
"""
from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

bp = Blueprint("metrics", __name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, multiproc_dir: str | None = None):
        self.multiproc_dir = multiproc_dir
        # In multiprocess mode the values live in files in the directory; the metrics are then
        # registered nowhere and a fresh registry collects the files at each scrape.
        self.registry = None if multiproc_dir else CollectorRegistry()
        self.callbacks = Counter("kco_callbacks", "Klarna callbacks answered, by reply status.",
                                 ["callback", "status"], registry=self.registry)
        self.callback_seconds = Histogram("kco_callback_duration_seconds",
                                          "Time to answer a Klarna callback.", ["callback"],
                                          buckets=BUCKETS, registry=self.registry)
        self.klarna_calls = Counter("kco_klarna_api_calls", "Calls to Klarna's API, by operation "
                                    "and HTTP status (network errors: status \"error\").",
                                    ["operation", "status"], registry=self.registry)
        self.klarna_seconds = Histogram("kco_klarna_api_duration_seconds",
                                        "Time spent in one call to Klarna's API.", ["operation"],
                                        buckets=BUCKETS, registry=self.registry)
        self.waiters = Gauge("kco_longpoll_waiters", "Long-poll requests waiting for an event.",
                             registry=self.registry, multiprocess_mode="livesum")

    def observe_callback(self, callback: str, status: int, seconds: float) -> None:
        self.callbacks.labels(callback, str(status)).inc()
        self.callback_seconds.labels(callback).observe(seconds)

    def observe_klarna(self, operation: str, status: int | None, seconds: float) -> None:
        self.klarna_calls.labels(operation, str(status) if status else "error").inc()
        self.klarna_seconds.labels(operation).observe(seconds)

    def exposition(self) -> bytes:
        if self.multiproc_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        assert self.registry is not None  # made when there is no multiprocess directory
        return generate_latest(self.registry)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(current_app.extensions["kco_metrics"].exposition(),
                    content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> Metrics:
    registry = Metrics(multiprocess_dir())
    app.extensions["kco_metrics"] = registry
    app.register_blueprint(bp)
    return registry
