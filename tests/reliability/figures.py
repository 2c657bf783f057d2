"""What the reliability suite did, counted: examples, requests, statuses, 5xx — the figures the
README's "Reliability" section quotes. One process-wide tally; conftest.py prints it at the end
of the run and writes it as JSON (KCO_RELIABILITY_FIGURES, default
instance/reliability-figures-{short|full}.json)."""
from __future__ import annotations

import threading
from collections import Counter, defaultdict

_lock = threading.Lock()
_counts: dict[str, Counter] = defaultdict(Counter)


def add(area: str, key: str, n: int = 1) -> None:
    with _lock:
        _counts[area][key] += n


def maximum(area: str, key: str, value: int) -> None:
    with _lock:
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
