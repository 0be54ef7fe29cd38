"""The engine's heartbeat: a row per engine process (host, pid, workers, jobs running, version,
last seen), renewed every few seconds, so every host can tell which engines serve and which
hosts are gone."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from core.clock import utc
from core.hosts import BEAT_EVERY
from core.models import EngineHeartbeat
from core.procfs import HOST, engine_alive, proc_started_at
from core.store import Store

# Rows of engines that stopped (or went stale) this long ago are dropped from the table.
FORGET_AFTER = timedelta(days=1)
# How often an engine looks again for this host's engines that died (seconds).
TIDY_EVERY = 30.0


def version() -> str:
    """modeldeck's installed version, or ``unknown``."""
    try:
        from importlib.metadata import version as dist_version

        return dist_version("modeldeck")
    except Exception:
        return "unknown"


class Heartbeat:
    """Writes this engine's row: ``beat()`` each round (a write every BEAT_EVERY seconds),
    ``stop()`` on shutdown (the row stays, marked stopped, so its host counts as seen)."""

    def __init__(self, store: Store, engine_id: str, workers: int) -> None:
        self.store = store
        self.engine_id = engine_id
        self.workers = workers
        self._started = store.now()
        self._last = 0.0
        self._next_tidy = 0.0
        self._version = version()

    def due(self) -> bool:
        return time.monotonic() - self._last >= BEAT_EVERY

    def beat(self, running: int) -> None:
        """Renew the row (created on the first beat); at most once every BEAT_EVERY."""
        if not self.due():
            return
        self._write(running, None)
        self._last = time.monotonic()

    def stop(self, running: int) -> None:
        """Mark the row stopped (an engine that never beat has no row to mark)."""
        if self._last:
            self._write(running, self.store.now())

    def _write(self, running: int, stopped: datetime | None) -> None:
        now = self.store.now()
        with self.store.writer() as s:
            row = s.get(EngineHeartbeat, self.engine_id)
            if row is None:
                row = EngineHeartbeat(
                    id=self.engine_id,
                    host=HOST,
                    pid=os.getpid(),
                    workers=self.workers,
                    running=running,
                    version=self._version,
                    started_at=self._started,
                    last_seen=now,
                )
            if time.monotonic() >= self._next_tidy:
                _tidy(s, now, self.engine_id)
                self._next_tidy = time.monotonic() + TIDY_EVERY
            row.running, row.last_seen, row.stopped_at = running, now, stopped
            s.add(row)
            s.commit()


def _tidy(s: Session, now: datetime, me: str) -> None:
    """Rows of engines gone for a day are dropped, and those of this host's engines whose
    process is gone (killed, the host rebooted) are marked stopped as of when they were last
    seen: else they would be listed as stale for a day (the host's last sight stays). On an
    engine's first beat, and every TIDY_EVERY seconds (an engine killed after it started)."""
    s.exec(
        delete(EngineHeartbeat).where(  # type: ignore[call-overload]
            col(EngineHeartbeat.last_seen) < now - FORGET_AFTER
        )
    )
    mine = s.exec(
        select(EngineHeartbeat).where(
            EngineHeartbeat.host == HOST,
            EngineHeartbeat.id != me,
            col(EngineHeartbeat.stopped_at).is_(None),
        )
    ).all()
    for gone in mine:
        if _gone(gone):
            gone.stopped_at = gone.last_seen
            s.add(gone)


def _gone(row: EngineHeartbeat) -> bool:
    """Whether the process of this host's engine ``row`` is gone: not alive, or its pid now
    another process's (one started after the row was: a reboot reuses pids)."""
    if not engine_alive(row.id):
        return True
    started = proc_started_at(row.pid)
    return started is not None and started > utc(row.started_at).timestamp() + 2.0


def engines_beating(store: Store, ids: set[str]) -> set[str]:
    """Which of the engines ``ids`` have a heartbeat row not marked stopped."""
    if not ids:
        return set()
    with store.reader() as s:
        rows = s.exec(
            select(EngineHeartbeat.id).where(
                col(EngineHeartbeat.id).in_(sorted(ids)),
                col(EngineHeartbeat.stopped_at).is_(None),
            )
        ).all()
    return set(rows)
