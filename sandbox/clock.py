"""The sandbox's movable clock: real UTC time plus an offset that tests move forward, so 48-hour
expiry and 28-day authorizations can be tried in a second (docs/klarna.md §6)."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def iso(moment: datetime | None) -> str | None:
    """Klarna's timestamp format, `yyyy-mm-ddThh:mm:ssZ`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class Clock:
    """Real UTC time plus an offset that tests move forward with `advance(seconds)`."""

    def __init__(self):
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset.total_seconds()

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta()
