"""Following running jobs: their records in, a stop's SIGTERM, grace and SIGKILL, their end
collected."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from core import rawsql
from core.events import JobEventKind
from core.lifecycle import ACTIVE_STATUSES, JobStatus
from core.logchunks import LogCopy
from core.models import Job, JobEvent
from core.procfs import HOST
from core.store import Store

from .common import Guard, describe, log, out_of_space, signal_name
from .executor import Executors, Handle
from .ingest import Ingest, job_event
from .outcome import Before, Ending, Outcomes


@dataclass
class Running:
    """A job this engine follows: one it started, or one it re-attached to."""

    job_id: str
    handle: Handle
    deployment_id: str | None = None
    term_sent_at: float | None = None
    kill_sent: bool = False
    ended: int | None = None  # its exit status once seen: poll() may tell it only once
    unrecorded_python: str | None = None  # started, its handle not in the database yet
    # Its events.jsonl is read into its timeline no sooner than this (monotonic), while it
    # runs: a job that ends before has its records read with its end, in one transaction.
    ingest_after: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.handle.pid


@dataclass(frozen=True)
class Seen:
    """A followed job's row as this round read it."""

    status: str | None
    offset: int
    owner: str | None
    stop_requested: bool


GONE = Seen(None, 0, None, False)
_JOB = Job.__table__
# A started process's handle, and the number of its ``started`` event (built once).
_STARTED = (
    update(_JOB)
    .where(
        _JOB.c.id == bindparam("run_id"),
        _JOB.c.pid.is_(None),
        _JOB.c.handle.is_(None),
        _JOB.c.engine_id == bindparam("run_engine"),
    )
    .values(next_seq=_JOB.c.next_seq + 1)
    .returning(_JOB.c.next_seq, _JOB.c.type)
)
_INSERT_EVENTS = insert(JobEvent.__table__)
# What each round reads of the jobs it follows (built once).
_SEEN = select(
    _JOB.c.id, _JOB.c.status, _JOB.c.events_offset, _JOB.c.engine_id, _JOB.c.stop_requested_at
).where(_JOB.c.id.in_(bindparam("ids", expanding=True)))


class Follower:
    """The jobs this engine follows, each round: records, stops, ends."""

    def __init__(
        self,
        store: Store,
        engine_id: str,
        grace: float,
        executors: Executors,
        guard: Guard,
        outcomes: Outcomes,
        ingest: Ingest,
        logcopy: LogCopy | None = None,
        ingest_every: float = 0.5,
    ) -> None:
        """``ingest_every``: how often a running job's new progress records go into its
        timeline (seconds), the first time that long after its start."""
        self.store = store
        self.ingest_every = ingest_every
        self.logcopy = logcopy
        self.engine_id = engine_id
        self.grace = grace
        self.executors = executors
        self.guard = guard
        self.outcomes = outcomes
        self.ingest = ingest
        self.running: dict[str, Running] = {}

    def track(self, run: Running, started: bool = False) -> None:
        """Follow ``run``; ``started``: just now (a re-attached one's records are read at
        once)."""
        if started:
            run.ingest_after = time.monotonic() + self.ingest_every
        self.running[run.job_id] = run

    def follows(self, job_id: str) -> bool:
        return job_id in self.running

    def busy(self) -> int:
        """How many of the jobs it follows still have a process running (a worker each)."""
        return sum(1 for run in self.running.values() if run.ended is None)

    def see_exits(self) -> None:
        """Note which followed processes have ended (no database): their workers are free
        for the next jobs before their outcomes are recorded."""
        for run in list(self.running.values()):
            with contextlib.suppress(Exception):  # else seen, and said, in _follow_one
                self._see_exit(run)

    def follow(self, only: Collection[str] | None = None) -> None:
        """One round of following the jobs (``only``: of these). The jobs started since the
        last round (not among ``only``) are not followed yet, but their ``started`` records
        are written: with the first end this round writes, in its transaction, else alone."""
        self.guard.forget("following job ", self.running)  # ended: nothing to try again
        runs = [r for r in self.running.values() if only is None or r.job_id in only]
        this_round = {r.job_id for r in runs}
        fresh = [r for r in _unrecorded(self.running.values()) if r.job_id not in this_round]
        try:
            self._follow(runs, fresh)
        finally:
            left = _unrecorded(fresh)
            if left:  # no end this round took them in
                self.record_started(*left)

    def _follow(self, runs: list[Running], fresh: list[Running]) -> None:
        if not runs:
            return
        rows = self.store.read_rows(_SEEN, {"ids": [run.job_id for run in runs]})
        state = {r[0]: Seen(r[1], r[2], r[3], r[4] is not None) for r in rows}
        ended: list[tuple[Running, Ending]] = []  # ends this round saw: written together
        for run in runs:
            job_id = run.job_id
            # One job that cannot be followed (its records, a full disk) waits alone.
            seen = state.get(job_id, GONE)
            with contextlib.suppress(Exception):  # else seen, and said, in _follow_one
                self._see_exit(run)  # every round, even while following it backs off
            what = f"following job {job_id}"
            # A job whose following failed before is followed alone, as the guard says.
            batch = ended if self.guard.retry_at(what) is None else None
            self.guard.run(what, lambda r=run, w=seen, b=batch: self._follow_one(r, w, b))
        if len(ended) > 1 and self.outcomes.finish_many(
            [e for _, e in ended], self._started_first(fresh)
        ):
            self._started_kept(fresh)
            for run, _ in ended:
                self.outcomes.no_space.discard(run.job_id)
            return
        for run, e in ended:  # one at a time: one that cannot be recorded waits alone
            left = _unrecorded(fresh)
            what = f"following job {run.job_id}"
            self.guard.run(what, lambda r=run, x=e, f=left: self._finish(r, x, f))

    def _finish(self, run: Running, e: Ending, started: list[Running] | None = None) -> None:
        """End a job, with the ``started`` records of ``started`` in its transaction."""
        try:
            kept = self.outcomes.end(e, self._started_first(started))
        except BaseException:
            self.running.setdefault(run.job_id, run)  # not recorded yet: again next round
            raise
        self.outcomes.no_space.discard(run.job_id)
        if kept and started:
            self._started_kept(started)

    def _see_exit(self, run: Running) -> None:
        """Note when a followed process has ended (it is told once), and whether the disk was
        full then with no result written: by the time the database takes the outcome, space
        may have been freed. No database here: this works on a full disk, every round."""
        if run.ended is not None:
            return
        code = self.executors.of(run.handle).poll(run.handle)
        if code is None:
            return
        run.ended = code
        job_dir = self.store.job_dir(run.job_id)
        if not (job_dir / "result.json").exists() and out_of_space(job_dir):
            self.outcomes.no_space.add(run.job_id)

    def _follow_one(
        self, run: Running, seen: Seen, ended: list[tuple[Running, Ending]] | None = None
    ) -> None:
        """One round of following one job. A process that has ended: its outcome is read
        and, with ``ended``, added to it for the round to write (else written here)."""
        job_id = run.job_id
        if seen.status not in ACTIVE_STATUSES or seen.owner != self.engine_id:
            # Someone else finalised it (another engine after a lease change), or another
            # engine adopted it (a real engine took over from a job command) and follows it
            # now; its process runs on untouched.
            self.running.pop(job_id, None)
            self.outcomes.no_space.discard(job_id)
            return
        self._see_exit(run)
        if run.unrecorded_python is not None:
            self.record_started(run)
        for kind, message, details in self.executors.of(run.handle).news(run.handle):
            job_event(self.store, job_id, kind, message, details)
        # Exit first, signal after: a group that has ended may have a reused id by now.
        code = run.ended
        if code is None:
            now = time.monotonic()
            stopping = seen.status == JobStatus.stopping.value
            if now >= run.ingest_after or stopping:  # its records before the signal's event
                run.ingest_after = now + self.ingest_every
                self.ingest.ingest(job_id, seen.offset)
            if stopping:
                self._signal(run)
            if self.logcopy is not None:  # a failing copy does not hold back the rest
                copy = self.logcopy.copy
                self.guard.run(f"copying the log of {job_id}", lambda: copy(job_id))
            return
        try:
            e = self.ending(run, code, seen.stop_requested)
        except BaseException:
            self.running.setdefault(job_id, run)  # not recorded yet: again next round
            raise
        if ended is not None:
            ended.append((run, e))  # its last records go in with its end
        else:
            self._finish(run, e)

    def record_started(self, *runs: Running) -> None:
        """Record started processes' handles and their ``started`` events, in one write
        transaction of Core statements. Until that works (a full disk), following a job
        tries again first."""
        with self.store.writer(rows=True) as s:  # each row's UPDATE locks it
            self._write_started(s.connection(), runs)
            s.commit()
        self._started_kept(runs)

    def _started_first(self, runs: list[Running] | None) -> Before | None:
        """Writing ``runs``' ``started`` records first in another transaction (None: none)."""
        if not runs:
            return None
        return lambda conn: self._write_started(conn, runs)

    @staticmethod
    def _started_kept(runs: Collection[Running]) -> None:
        for run in runs:
            run.unrecorded_python = None

    def _write_started(self, conn: Connection, runs: Collection[Running]) -> None:
        """The ``started`` records of ``runs`` written in ``conn``'s transaction."""
        now = self.store.now()
        events: list[dict[str, Any]] = []
        for run in runs:
            h = run.handle
            row = rawsql.run(
                conn,
                _STARTED,
                {
                    "run_id": run.job_id,
                    "run_engine": self.engine_id,
                    "pid": h.pid,
                    "pgid": h.pgid,
                    "proc_start": h.start,
                    "executor": h.executor,
                    "handle": h.ref,
                },
            ).first()
            if row is None:
                continue  # a real engine found the process first and follows it now
            seq, kind = row
            events.append(
                {
                    "job_id": run.job_id,
                    "seq": seq - 1,
                    "at": now,
                    "kind": JobEventKind.started,
                    "message": f"{kind} started "
                    + (f"on {HOST} ({h.where})" if h.pid else f"as {h.where}"),
                    "details": {
                        "host": HOST,
                        "pid": h.pid,
                        "pgid": h.pgid,
                        "python": run.unrecorded_python,
                        "engine": self.engine_id,
                        "executor": h.executor,
                        **({"submission_id": h.name} if h.name else {}),
                    },
                }
            )
        if events:  # all in one statement
            rawsql.run(conn, _INSERT_EVENTS, events)

    def _signal(self, run: Running) -> None:
        mono = time.monotonic()
        executor = self.executors.of(run.handle)
        pgid = run.handle.pgid
        if run.term_sent_at is None:
            executor.signal(run.handle, signal.SIGTERM)
            run.term_sent_at = mono
            job_event(
                self.store,
                run.job_id,
                JobEventKind.signal_sent,
                f"SIGTERM sent to {run.handle.target}",
                {"signal": "SIGTERM", "pgid": pgid, "grace": self.grace},
            )
        elif not run.kill_sent and mono - run.term_sent_at >= self.grace:
            killed = executor.stop(run.handle)
            run.kill_sent = True
            others = len(killed - {run.handle.pid})
            job_event(
                self.store,
                run.job_id,
                JobEventKind.signal_sent,
                f"still running after {self.grace:g}s: SIGKILL sent to {run.handle.target}"
                + (f" and {others} other process(es) of the job" if others else ""),
                {"signal": "SIGKILL", "pgid": pgid, "pids": sorted(killed)},
            )

    def collect(self, run: Running, code: int, stop_requested: bool | None = None) -> None:
        """A followed process ended: read its result and finish the job (``stop_requested``:
        whether a stop was asked for, when the caller knows)."""
        e = self.ending(run, code, stop_requested)
        self.outcomes.end(e)

    def ending(self, run: Running, code: int, stop_requested: bool | None = None) -> Ending:
        """A followed process ended: no longer followed, what it left running ended, the
        rest of its log copied, and its outcome as its result says (not written yet)."""
        self.running.pop(run.job_id, None)
        self._end_leftovers(run)
        self.copy_rest(run.job_id)
        result = self.outcomes.read_result(run.job_id)
        if result is not None and code == -1:
            code = int(result.get("exit_code", 1))
        if stop_requested is None:
            with self.store.reader() as s:
                stop_requested = s.get(Job, run.job_id).stop_requested_at is not None
        details: dict[str, Any] = {"exit_code": code}
        if code is not None and code < 0 and code != -1:
            details["signal"] = signal_name(-code)
        job_id = run.job_id
        if stop_requested:
            how = "SIGKILL" if run.kill_sent else "SIGTERM"
            extra = {**details, "stopped_by": how}
            return Ending(job_id, JobStatus.cancelled, "stopped", code, result or {}, extra)
        if result is None:
            if code == -1:
                why = {"reason": "the job's process vanished without an outcome"}
                return Ending(job_id, JobStatus.failed, "lost", None, {}, extra=why)
            error = (
                f"killed by {signal_name(-code)}"
                if code < 0
                else f"exited with status {code} before reporting"
            )
            return Ending(job_id, JobStatus.failed, error, code, {}, extra=details)
        if result.get("status") == "completed":
            return Ending(job_id, JobStatus.completed, None, code, result, extra=details)
        if result.get("status") == "cancelled":
            return Ending(job_id, JobStatus.cancelled, "stopped", code, result, extra=details)
        error = result.get("error") or "failed"
        return Ending(job_id, JobStatus.failed, error, code, result, extra=details)

    def copy_rest(self, job_id: str) -> None:
        """The rest of an ended job's log into the database, before its end is recorded (a
        follower of its log elsewhere then reads every line). A copy that fails (a full
        disk) is said once and left: the job's end is recorded all the same."""
        if self.logcopy is None:
            return
        try:
            self.logcopy.copy(job_id, final=True)
        except IntegrityError:
            pass  # another engine of this host copied the same bytes at the same time
        except Exception as exc:
            log.error("modeldeck engine: copying the log of %s failed: %s", job_id, describe(exc))
        self.logcopy.forget(job_id)

    def _end_leftovers(self, run: Running) -> None:
        """The job's process has ended: kill whatever it started that is still running (it
        ends its own leftovers when it can; not when it was killed or died abruptly)."""
        cleaned = (self.store.job_dir(run.job_id) / "result.json").exists()
        killed = self.executors.of(run.handle).leftovers(run.handle, cleaned)
        if killed:
            self.outcomes.note(
                run.job_id,
                JobEventKind.processes_killed,
                f"{len(killed)} process(es) the job left running killed with SIGKILL",
                {"pids": sorted(killed), "signal": "SIGKILL"},
            )


def _unrecorded(runs: Collection[Running]) -> list[Running]:
    """Those of ``runs`` whose ``started`` record is not written yet."""
    return [r for r in runs if r.unrecorded_python is not None]
