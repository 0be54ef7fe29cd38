"""What the engine's phases share: limits, a few small helpers, and the guard that lets one
failing part of a round back off while the others go on."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

from core.text import printable

log = logging.getLogger("modeldeck.engine")

MISSED_LISTED = 20
# Missed fires are counted up to here (a minutely schedule: ~10 weeks), so that a long outage
# costs about a second under the write lock, not half a minute.
MISSED_COUNTED = 100_000
FIRE_BATCH = 250
# How long the engine's thread spends at most killing a job's processes (one stuck in the
# kernel dies when its I/O returns; the engine does not wait for that).
KILL_LIMIT = 1.0
# A part of a round that failed waits this long before it is tried again, doubling up to
# RETRY_MAX: a full disk or a broken record costs a try every few seconds, never a spin.
RETRY_FIRST = 0.5
RETRY_MAX = 5.0
# Bad lines of one job's events.jsonl get an event each, up to this many a round; the rest
# of the round's are counted in one more.
SKIPS_LISTED = 5
# Free space below this on the job's file system, with no result file, means the job's
# output could not be written.
NO_SPACE_MARGIN = 1 << 20
NO_SPACE_ERROR = "no space left on device: the job's log and result could not be written"
FIRING_SCHEDULES = "firing schedules"
# How often recovery looks for jobs no engine follows.
RECOVER_EVERY = 2.0
# Ids of this process's engines inside ``serve()``. Another engine of this process counts as
# gone (an engine object driven round by round and then dropped, as tests do).
SERVING: set[str] = set()


def signal_name(number: int) -> str:
    """``SIGTERM``; a signal Python has no name for (a real-time one) as ``signal 40``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe(exc: BaseException) -> str:
    """One printable line saying what went wrong (the driver's error, not SQLAlchemy's
    wrapping of it with the statement)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    text = f"{type(orig).__name__}: {first}" if first else type(orig).__name__
    return printable(text if len(text) <= 300 else text[:299] + "…")


def out_of_space(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NO_SPACE_MARGIN


@dataclass
class Fault:
    """A part of the engine's round that failed: how often in a row, and when to try again."""

    failures: int
    retry_at: float


class Guard:
    """Runs the parts of a round. A part that raises (a full disk, a bug) is logged once and
    left alone for a while, doubling up to RETRY_MAX, while the rest of the engine goes on."""

    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {}

    def run(self, what: str, step: Callable[[], object]) -> bool:
        """Run one part; True when it ran and did not fail."""
        fault = self.faults.get(what)
        if fault is not None and time.monotonic() < fault.retry_at:
            return False
        try:
            step()
        except Exception as exc:
            failures = fault.failures + 1 if fault is not None else 1
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
            self.faults[what] = Fault(failures, time.monotonic() + delay)
            if failures == 1:
                log.error("modeldeck engine: %s failed: %s; trying again", what, describe(exc))
                log.debug("%s failed", what, exc_info=exc)
            return False
        if fault is not None:
            del self.faults[what]
            log.warning(
                "modeldeck engine: %s works again (after %d failed attempt(s))",
                what,
                fault.failures,
            )
        return True

    def retry_at(self, what: str) -> float | None:
        """When a failed part is tried again (monotonic), or None when it has not failed."""
        fault = self.faults.get(what)
        return fault.retry_at if fault is not None else None

    def forget(self, prefix: str, keep: Container[str]) -> None:
        """Drop the faults of parts ``prefix + name`` whose name is not in ``keep``: what
        they were about is dealt with, nothing of it is to be tried again."""
        for what in [w for w in self.faults if w.startswith(prefix)]:
            if what.removeprefix(prefix) not in keep:
                del self.faults[what]
