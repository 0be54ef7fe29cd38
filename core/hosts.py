"""Several hosts on one database: the engines that serve it, the settings every host shares
(the artifact store), and a job's log wherever its host is. ``Deck.hosts`` hands these out."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlmodel import col, select

from core.clock import utc
from core.errors import ModelDeckError
from core.inputs import require_utf8
from core.lifecycle import JobStatus
from core.logchunks import JobLog
from core.models import EngineHeartbeat, EngineLease, Setting
from core.procfs import HOST, holder_gone, is_job_command
from core.store import ARTIFACTS, LEASE_NAME, Store, lease_in_force
from core.text import printable, quoted
from core.views import EnginesSummary, EngineView, JobView, SettingView

BEAT_EVERY = 2.0  # seconds between two heartbeats of an engine
# A row not renewed for this long is stale: its engine is stopped, hung or its host gone.
STALE_AFTER = 5 * BEAT_EVERY
LOST_AFTER = 120.0  # default: a host not seen this long is gone, and its jobs are lost
LOST_AFTER_LEAST = 2 * BEAT_EVERY  # shorter, a live host could be taken for gone

# The settings there are, and what each is (``config list`` shows the defaults too).
SETTINGS = {
    ARTIFACTS: "the artifact store: a folder every host mounts (default: each data home's "
    "artifacts/)",
}


class Hosts:
    """Engines, shared settings and logs across hosts."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- engines --------------------------------------------------------------------------

    def engines(self) -> list[EngineView]:
        """The engines of the database (stale ones too, marked), by host, each with its
        state: ``serving``; ``standing by`` (SQLite: another engine holds the lease, the
        one that dispatches); ``job command`` (a command running its own job while no
        engine serves); ``stale`` (not seen for a while)."""
        now = self.store.now()
        with self.store.reader() as s:
            rows = s.exec(
                select(EngineHeartbeat)
                .where(col(EngineHeartbeat.stopped_at).is_(None))
                .order_by(col(EngineHeartbeat.host), col(EngineHeartbeat.started_at))
            ).all()
            lease = None if self.store.shared_queue else s.get(EngineLease, LEASE_NAME)
        holder = lease.owner if lease is not None and lease_in_force(lease, now) else None
        stale_before = now - timedelta(seconds=STALE_AFTER)

        def state(r: EngineHeartbeat) -> str:
            # Not seen for a while, or seen a moment ago but its process here is gone (a
            # kill -9: it was listed as standing by, or serving, until it went stale).
            if utc(r.last_seen) < stale_before or holder_gone(r.host, r.pid):  # type: ignore[operator]
                return "stale"
            if is_job_command(r.id):
                return "job command"
            if not self.store.shared_queue and r.id != holder:
                return "standing by"
            return "serving"

        return [
            EngineView(
                id=r.id,
                host=r.host,
                pid=r.pid,
                workers=r.workers,
                running=r.running,
                version=r.version,
                started_at=utc(r.started_at),  # type: ignore[arg-type]
                last_seen=utc(r.last_seen),  # type: ignore[arg-type]
                stale=(kind := state(r)) == "stale",
                state=kind,
            )
            for r in rows
        ]

    def engine_alive_on(self, host: str | None) -> bool:
        """Whether an engine can act on ``host``'s jobs: this host (its own commands can),
        or another whose engines' heartbeats are not all stale."""
        if not host or host == HOST:
            return True
        return any(e.host == host and not e.stale for e in self.engines())

    def stop_note(self, job: JobView) -> str | None:
        """Why a stop just asked of ``job`` will not end it soon: its host has no engine to
        signal its process (None when one has, or when the job is not stopping)."""
        if job.status != JobStatus.stopping.value or self.engine_alive_on(job.host):
            return None
        return (
            f"the stop of job {job.id} is recorded, but its host {printable(job.host or '?')} "
            "has no engine running: the job stops when one starts there, or fails as lost "
            "once the host is not seen for the engines' --lost-after"
        )

    def lost_host(self, job: JobView) -> str | None:
        """The host of a job failed as lost because it fell silent, while it has not been
        back since (an engine starting there copies the rest of the job's log); None for
        any other job, and once that host is heard from again."""
        if job.error != "lost" or not job.host or job.host == HOST or job.finished_at is None:
            return None
        seen = self._last_seen(job.host)
        return job.host if seen is None or seen <= job.finished_at else None

    def silent_for(self, host: str | None) -> float | None:
        """Seconds since an engine on another ``host`` was last heard from, once that is
        long enough for its heartbeat to be stale (its engine stopped, hung or its host
        gone: its jobs are failed as lost when it stays so); None while it beats, and for
        this host (its own commands look after its jobs)."""
        seen = None if not host or host == HOST else self._last_seen(host)
        if seen is None:
            return None
        silent = (self.store.now() - seen).total_seconds()
        return silent if silent > STALE_AFTER else None

    def _last_seen(self, host: str) -> datetime | None:
        return hosts_last_seen(self.store, {host}).get(host)

    def summary(self) -> EnginesSummary:
        """How many engines serve now and how busy they are (stale ones counted apart;
        engines standing by and job commands are not serving)."""
        engines = self.engines()
        live = [e for e in engines if e.state == "serving"]
        return EnginesSummary(
            serving=len(live),
            workers=sum(e.workers for e in live),
            running=sum(e.running for e in live),
            stale=sum(1 for e in engines if e.stale),
        )

    # -- settings -------------------------------------------------------------------------

    def settings(self) -> list[SettingView]:
        return [self.setting(key) for key in SETTINGS]

    def setting(self, key: str) -> SettingView:
        _known(key)
        with self.store.reader() as s:
            row = s.get(Setting, key)
        if row is not None:
            return SettingView(key, row.value, utc(row.updated_at))
        return SettingView(key, str(self._default(key)), None, default=True)

    def set_setting(self, key: str, value: str) -> SettingView:
        """Set ``key``; a value this host cannot use is refused and nothing changes."""
        _known(key)
        require_utf8(value, "the value")
        if key == ARTIFACTS:
            if not value.strip():
                raise ModelDeckError("the artifact store cannot be empty: give a folder")
            value = str(_usable_store(Path(value).expanduser()))
        now = self.store.now()
        with self.store.writer() as s:
            row = s.get(Setting, key) or Setting(key=key, value=value, updated_at=now)
            row.value, row.updated_at = value, now
            s.add(row)
            s.commit()
        self.store.forget_settings()
        return self.setting(key)

    def check_artifacts(self) -> Path:
        """The artifact store, when this host can read and write it; else ModelDeckError
        (an engine refuses to start: the versions it made would be out of other hosts'
        reach, or it could not read theirs)."""
        path = self.store.artifacts_dir
        if path == self._default(ARTIFACTS):
            path.mkdir(parents=True, exist_ok=True)
        return _usable_store(path, configured=True)

    def _default(self, key: str) -> Path:
        return self.store.home / "artifacts"

    # -- logs -----------------------------------------------------------------------------

    def log(self, job_id: str) -> JobLog:
        """A job's log: its file on this host, else its copy in the database."""
        return JobLog(self.store, job_id)


def _known(key: str) -> None:
    if key not in SETTINGS:
        raise ModelDeckError(f"no setting {quoted(key)}: there are {', '.join(sorted(SETTINGS))}")


def _usable_store(path: Path, configured: bool = False) -> Path:
    """``path`` made absolute, when it is a folder this host can read and write."""
    shown = printable(str(path))
    where = "the artifact store" + (" (`modeldeck config set artifacts`)" if configured else "")
    try:
        path = path.resolve()
        if not path.is_dir():
            raise ModelDeckError(f"{where} {shown} is not a folder on this host")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise ModelDeckError(f"{where} {shown} cannot be read and written on this host")
        with tempfile.TemporaryFile(dir=path):  # access() can be wrong on network file systems
            pass
    except OSError as exc:
        raise ModelDeckError(f"{where} {shown} cannot be used: {exc.strerror or exc}") from None
    return path


def hosts_last_seen(store: Store, hosts: set[str]) -> dict[str, datetime]:
    """When each of ``hosts`` was last seen by its engines' heartbeats (a host without any
    heartbeat row is missing from the answer)."""
    if not hosts:
        return {}
    with store.reader() as s:
        rows = s.exec(
            select(EngineHeartbeat.host, func.max(EngineHeartbeat.last_seen))
            .where(col(EngineHeartbeat.host).in_(sorted(hosts)))
            .group_by(EngineHeartbeat.host)
        ).all()
    return {host: utc(seen) for host, seen in rows if seen is not None}  # type: ignore[misc]
