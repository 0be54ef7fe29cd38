"""Time, injectable: the engine and the scheduler ask a clock, tests hand them a fake one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0, **kw: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, **kw)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)


def utc(dt: datetime | None) -> datetime | None:
    """Naive datetimes from the database are UTC; give them their zone back."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a trailing Z (`2026-11-28T07:16:40.716Z`), or None."""
    d = utc(dt)
    return None if d is None else d.isoformat(timespec="milliseconds").replace("+00:00", "Z")
