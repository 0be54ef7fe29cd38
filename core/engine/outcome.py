"""A job's end: its result read and checked, its outcome applied and recorded once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlmodel import Session

from core import jobs
from core.effects import apply_result, place_artifacts, record_dataset_read
from core.errors import ModelDeckError
from core.events import JobEventKind
from core.jobrow import JobRow
from core.lifecycle import ACTIVE_STATUSES, JobStatus
from core.procfs import HOST
from core.records import clean_result
from core.store import Store

from .common import NO_SPACE_ERROR, log
from .ingest import Ingest

# Writes made first in a job's end's transaction (another job's ``started`` record, say).
Before = Callable[[Connection], None]


@dataclass
class Ending:
    """A job to end: the outcome its process gave (``finish``'s arguments), and once
    written, what follows the commit (its staging folder, a new version's folder)."""

    job_id: str
    status: JobStatus
    error: str | None
    exit_code: int | None
    result: dict[str, Any]
    extra: dict[str, Any] | None = None
    staging: Path | None = None
    artifacts: Path | None = None
    unapplied: str | None = None  # why its result could not be applied: it fails with it
    asked: tuple[JobStatus, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.asked = (self.status, self.error)

    def reset(self) -> None:
        """As the follower asked, for another try (the transaction was undone)."""
        self.status, self.error = self.asked
        self.staging = self.artifacts = None


class _NotHere(Exception):
    """A job of a batch is not this process's to end (finalised elsewhere meanwhile)."""


class _Unapplied(Exception):
    """A completed job's result could not be applied (``Ending.unapplied`` says why): the
    transaction is undone and the job ended again, failed. No savepoint around every job's
    effects: this is rare, a savepoint is two more statements a job."""


class Outcomes:
    """Ends jobs. Events that belong with a job's end (recovered, processes_killed) wait as
    notes and are written in the transaction that ends the job, so only the process that
    ends it writes them."""

    def __init__(self, store: Store, ingest: Ingest, on_end: Callable[[], None]) -> None:
        self.store = store
        self.ingest = ingest
        self._on_end = on_end
        self._notes: dict[str, list[tuple[JobEventKind, str, dict[str, Any]]]] = {}
        self.no_space: set[str] = set()  # ended jobs whose output the full disk swallowed

    def note(self, job_id: str, kind: JobEventKind, message: str, details: dict[str, Any]) -> None:
        """An event for the job's timeline that ``finish`` writes with its end, when it is
        this process that ends it (kept until then: a retry still writes it, once)."""
        notes = self._notes.setdefault(job_id, [])
        if kind == JobEventKind.processes_killed:
            for i, (k, _, d) in enumerate(notes):
                if k == kind:  # killed on an earlier try: one event lists them all
                    pids = sorted(set(d["pids"]) | set(details["pids"]))
                    message = f"{len(pids)} process(es) the job left running killed with SIGKILL"
                    notes[i] = (kind, message, {**details, "pids": pids})
                    return
        elif any(k == kind for k, _, _ in notes):
            return
        notes.append((kind, message, details))

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        """The job's result file, checked; when the full disk kept the job from writing
        one, a failure saying so."""
        try:
            data = json.loads((self.store.job_dir(job_id) / "result.json").read_bytes())
        except (OSError, ValueError, RecursionError):
            data = None
        result = clean_result(data)
        if result is None and job_id in self.no_space:
            return {"status": "failed", "error": NO_SPACE_ERROR}
        return result

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        error: str | None,
        exit_code: int | None,
        result: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """End one job: its outcome, last records and effects in one write transaction."""
        self.end(Ending(job_id, status, error, exit_code, result, extra))

    def end(self, ending: Ending, first: Before | None = None) -> bool:
        """``finish`` for an ``Ending`` (what the follower read of a job's process).
        ``first``: more writes, made first in the same transaction; whether they were kept
        (they are not when the job was finalised elsewhere, or when this raises)."""
        unreadable = set(self.ingest.unreadable)  # told in a transaction undone: to tell again
        try:
            ended = self._end_alone(ending, first)
        except _Unapplied:
            self.ingest.unreadable = unreadable
            ending.reset()
            ended = self._end_alone(ending, first)  # failed, saying why: nothing to apply now
        if ended:
            self._ended(ending)
        return ended

    def _end_alone(self, ending: Ending, first: Before | None = None) -> bool:
        """One job's end in a transaction of its own; False when it was finalised elsewhere
        (outcomes are recorded once)."""
        with self.store.writer(rows=True) as s, s.no_autoflush:
            conn = s.connection()
            if first is not None:
                first(conn)
            # The job's row by Core statements (``JobRow``): read once, its changes and all
            # its new events written with its end (``jobs.end``), not flushed bit by bit.
            job = JobRow.load(conn, ending.job_id)
            if not self._end_in(s, job, ending):
                s.rollback()
                self._notes.pop(ending.job_id, None)
                return False
            s.commit()
        return True

    def finish_many(self, endings: list[Ending], first: Before | None = None) -> bool:
        """End several jobs in one write transaction (the jobs a round saw end): one read
        of their rows, one commit; each job's writes are those ``finish`` makes. False
        when any of them could not be ended here (finalised elsewhere meanwhile, an
        error): then nothing of the batch is kept, and the caller ends each job alone
        (``finish``), so that only that one waits or says why. ``first``: as for ``end``."""
        unreadable = set(self.ingest.unreadable)  # told in a batch undone: to tell again
        try:
            with self.store.writer(rows=True) as s, s.no_autoflush:
                conn = s.connection()
                if first is not None:
                    first(conn)
                rows = JobRow.load_many(conn, [e.job_id for e in endings])
                for e in endings:
                    if not self._end_in(s, rows.get(e.job_id), e):
                        raise _NotHere(e.job_id)
                s.commit()
        except Exception as exc:
            self.ingest.unreadable = unreadable
            if not isinstance(exc, (_NotHere, _Unapplied)):
                log.debug("ending a batch of jobs failed; one job at a time", exc_info=exc)
            for e in endings:
                e.reset()  # one whose result could not be applied keeps why
            return False
        for e in endings:
            self._ended(e)
        return True

    def _end_in(self, s: Session, job: JobRow | None, e: Ending) -> bool:
        """Write the job's end into ``s``'s transaction; False when it is not this
        process's to end (it is no longer active, or ``jobs.end`` found it moved)."""
        if job is None or job.status not in ACTIVE_STATUSES:
            return False
        now = self.store.now()
        job_id = job.id
        # Its last records go in with its end: one transaction, not two.
        self.ingest.ingest_into(job)
        for kind, note, note_details in self._notes.get(job_id, []):
            job.add_event(kind, note, now, note_details)
        out_dir = self.store.job_dir(job_id) / "output"
        job.outputs = [str(out_dir / p) for p in e.result.get("outputs", [])]
        record_dataset_read(s, job, e.result, now)
        status, error = e.status, e.error
        e.staging = self.store.staging_dir(job.id)
        if status == JobStatus.completed and e.unapplied is not None:
            status, error = JobStatus.failed, e.unapplied
        elif status == JobStatus.completed:
            try:
                e.artifacts = apply_result(
                    s, job, e.result, e.staging, self.store.artifacts_dir, now
                )
            except ModelDeckError as exc:
                e.unapplied = exc.message
                raise _Unapplied(job_id) from exc
            except Exception as exc:  # a result we cannot apply is the job's failure
                log.exception("applying the result of %s failed", job_id)
                e.unapplied = f"{type(exc).__name__}: {exc}"
                raise _Unapplied(job_id) from exc
        duration = (now - job.started_at).total_seconds() if job.started_at else None
        details = {"duration": duration, **(e.extra or {})}
        if error:
            details["error"] = error
        message = {
            JobStatus.completed: f"{job.type} completed",
            JobStatus.failed: f"{job.type} failed: {error}",
            JobStatus.cancelled: f"{job.type} cancelled",
        }[status]
        e.status, e.error = status, error
        if error == "lost" and job.host not in (None, HOST):
            # Failed here as lost, it may still run on its host and write to its staging
            # folder: an engine of that host clears it once it has ended the job.
            e.staging = None
        conn = s.connection()
        return jobs.end(conn, job, status, now, message, details, error, e.exit_code)

    def _ended(self, e: Ending) -> None:
        """After the commit: the job's notes are written, its files move in."""
        self._notes.pop(e.job_id, None)
        # Only now that the version is recorded do its files move in: a commit that failed
        # left them in staging for the next try (recovery finishes a move cut short).
        if e.artifacts is not None and e.status == JobStatus.completed:
            place_artifacts(e.staging, e.artifacts)
        if e.staging is not None:
            shutil.rmtree(e.staging, ignore_errors=True)
        self._on_end()

    # -- recovery -------------------------------------------------------------------------
