"""The engine's alerts: a phase that finds notices while the engine holds the lease
(``core.alerts.scan``), and a courier, a thread of its own, that delivers them.

The courier keeps a queue of notices by when their next try is due: a webhook that hangs
holds up only the courier (5 s a try at most), never a round of the engine, and a try that
failed waits for its back-off without holding up the notices behind it. Notices are rows
first: a notice not yet delivered when the engine stops is delivered by the next engine (the
courier starts with every notice without a final try), so none is lost while an engine runs
now or later. One that was delivered just before an engine died, its try not yet recorded,
may be told again: at least once, never silently dropped.
"""

from __future__ import annotations

import heapq
import threading
import time

from sqlmodel import col, select

from core.alerts import delivery
from core.alerts.scan import Scanner
from core.alerts.tables import AlertDelivery, AlertNotice
from core.store import Store

from .common import log

SCAN_EVERY = 0.25  # seconds between looks at the timelines


class Courier:
    """Delivers notices on a thread of its own, each up to ``delivery.TRIES`` times."""

    def __init__(self, store: Store, backoff: float = delivery.BACKOFF) -> None:
        self.store = store
        self.backoff = backoff
        self._due: list[tuple[float, int]] = []  # (monotonic time of the next try, notice)
        self._known: set[int] = set()  # queued or being tried
        self._cond = threading.Condition()
        self._generation = 0  # a thread serves while its generation is the current one
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread, with every notice an earlier engine left undelivered."""
        if self.running:
            return
        with self._cond:
            self._generation += 1
            generation = self._generation
        for notice_id in self.pending():
            self.submit(notice_id)
        self._thread = threading.Thread(
            target=self._run, args=(generation,), name="modeldeck-alerts", daemon=True
        )
        self._thread.start()

    def pending(self) -> list[int]:
        """Notices without a final try (``alert test`` ones are the command's own)."""
        final = select(AlertDelivery.notice_id).where(col(AlertDelivery.final).is_(True))
        with self.store.reader() as s:
            return list(
                s.exec(
                    select(AlertNotice.id)
                    .where(col(AlertNotice.id).not_in(final), AlertNotice.event != "test")
                    .order_by(col(AlertNotice.id))
                )
            )

    def submit(self, notice_id: int, delay: float = 0.0) -> None:
        with self._cond:
            if notice_id in self._known:
                return
            self._known.add(notice_id)
            heapq.heappush(self._due, (time.monotonic() + delay, notice_id))
            self._cond.notify()

    def busy(self) -> bool:
        """Whether a notice is queued or being tried."""
        with self._cond:
            return bool(self._known)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop after the try under way (which may take its timeout); what is left is
        delivered by the next engine."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        with self._cond:
            self._due.clear()
            self._known.clear()

    def _next(self, generation: int) -> int | None:
        with self._cond:
            while generation == self._generation:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)[1]
                wait = self._due[0][0] - now if self._due else None
                self._cond.wait(wait)
            return None

    def _run(self, generation: int) -> None:
        while (notice_id := self._next(generation)) is not None:
            try:
                again = delivery.try_once(self.store, notice_id, self.backoff)
            except Exception:  # a database it cannot write: try again later
                log.exception("delivering alert notice %s failed", notice_id)
                again = self.backoff
            with self._cond:
                if again is None or generation != self._generation:
                    self._known.discard(notice_id)
                    continue
                heapq.heappush(self._due, (time.monotonic() + again, notice_id))


class AlertPhase:
    """Part of the engine's round: while it holds the lease, look for notices and have the
    courier deliver them; without the lease, the courier stops (the holder delivers)."""

    def __init__(self, store: Store, backoff: float = delivery.BACKOFF) -> None:
        self.scanner = Scanner(store)
        self.courier = Courier(store, backoff)
        self._next_scan = 0.0

    def tick(self, serving: bool) -> None:
        if not serving:
            if self.courier.running:
                self.courier.stop(timeout=0)
            return
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + SCAN_EVERY
        found, listening = self.scanner.scan()
        if (found or listening) and not self.courier.running:
            self.courier.start()
        for notice_id in found:
            self.courier.submit(notice_id)

    def settled(self) -> bool:
        """Whether everything that happened so far has been looked at, and each notice it
        found told (delivered, or given up after its tries): for an engine that exits once
        idle, so that the alerts of what it ran are not left to the next engine."""
        return not self.courier.busy() and self.scanner.caught_up()

    def shutdown(self) -> None:
        self.courier.stop()
