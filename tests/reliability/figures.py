"""What the reliability suite did, counted: examples, requests, statuses, 5xx — the figures the
README's "Reliability" section quotes. One process-wide tally, and a pytest plugin (loaded by
tests/conftest.py) that prints it at the end of the run and writes it as JSON
(KCO_RELIABILITY_FIGURES, default instance/reliability-figures-{short|full}.json).

Under pytest-xdist every worker keeps its own tally and hands it to the controller when it
finishes (`workeroutput`); the controller adds them up (a maximum stays a maximum) and is the
only process that prints and writes the figures."""
from __future__ import annotations

import json
import os
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER_OUTPUT_KEY = "kco_reliability_figures"

_lock = threading.Lock()
_counts: dict[str, Counter] = defaultdict(Counter)
_maxima: set[tuple[str, str]] = set()  # (area, key) counted with maximum(), not add()


def add(area: str, key: str, n: int = 1) -> None:
    with _lock:
        _counts[area][key] += n


def maximum(area: str, key: str, value: int) -> None:
    with _lock:
        _maxima.add((area, key))
        _counts[area][key] = max(_counts[area][key], value)


def example(area: str) -> None:
    add(area, "examples")


def response(area: str, status: int | None, designed: bool = False) -> None:
    """One request sent and what came back (None: no response — a reset connection).
    `designed`: a 5xx the contract calls for (notification's 503 when Klarna's Order
    Management does not confirm the order), counted apart from the 5xx that must not happen."""
    with _lock:
        counts = _counts[area]
        counts["requests"] += 1
        if status is None:
            counts["no response"] += 1
        else:
            counts["designed 5xx" if designed else f"{status // 100}xx"] += 1
            counts[f"status {status}"] += 1


def snapshot() -> dict[str, dict[str, int]]:
    with _lock:
        return {area: dict(sorted(c.items())) for area, c in sorted(_counts.items())}


def totals() -> dict[str, int]:
    out: Counter = Counter()
    for counts in snapshot().values():
        for key in ("examples", "requests", "2xx", "3xx", "4xx", "5xx", "designed 5xx",
                    "no response"):
            out[key] += counts.get(key, 0)
    return dict(out)


def export() -> dict:
    """The tally as plain data, for an xdist worker to send to the controller."""
    with _lock:
        return {"counts": {area: dict(c) for area, c in _counts.items()},
                "maxima": sorted(_maxima)}


def merge(exported: dict) -> None:
    """Add another process's export() to this tally: sums, except maxima."""
    with _lock:
        maxima = {tuple(pair) for pair in exported.get("maxima", ())}
        _maxima.update(maxima)
        for area, counts in exported.get("counts", {}).items():
            for key, value in counts.items():
                if (area, key) in maxima or (area, key) in _maxima:
                    _counts[area][key] = max(_counts[area][key], value)
                else:
                    _counts[area][key] += value


def full_form(config) -> bool:
    """--reliability-full (tests/conftest.py) or KCO_RELIABILITY=full."""
    return bool(config.getoption("--reliability-full", default=False)) or \
        os.environ.get("KCO_RELIABILITY", "").lower() == "full"


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


# The plugin: tests/conftest.py loads it, so the hooks run in the controller too (under xdist
# the controller collects nothing and never imports tests/reliability/conftest.py).

def pytest_sessionfinish(session):
    if _is_xdist_worker(session.config):
        session.config.workeroutput[WORKER_OUTPUT_KEY] = export()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist, in the controller: a worker finished; take its figures (absent if it crashed)."""
    exported = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if exported:
        merge(exported)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _is_xdist_worker(config):
        return
    snap = snapshot()
    if not snap:
        return
    mode = "full" if full_form(config) else "short"
    tw = terminalreporter
    tw.section(f"reliability figures ({mode} form)")
    for area, counts in snap.items():
        tw.line(f"{area:24} " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    tw.line(f"{'TOTAL':24} " + ", ".join(f"{k}={v}" for k, v in totals().items()))
    target = Path(os.environ.get("KCO_RELIABILITY_FIGURES")
                  or ROOT / "instance" / f"reliability-figures-{mode}.json")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"mode": mode, "exitstatus": int(exitstatus),
                                      "areas": snap, "totals": totals()}, indent=2))
        tw.line(f"written to {target}")
    except OSError as exc:
        tw.line(f"could not write {target}: {exc}")
