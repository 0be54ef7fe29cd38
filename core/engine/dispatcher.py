"""Dispatch: claim queued jobs, start each on its executor (or run it here when it runs no
code), and give back what could not start."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, bindparam, insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from core import jobs, rawsql
from core.db import lock_keys, storage_full
from core.effects import apply_inline
from core.errors import ModelDeckError
from core.events import JobEventKind
from core.jobrow import JobRow
from core.lifecycle import ACTIVE_STATUSES, RULES, JobStatus, JobType
from core.models import Job, LogChunk
from core.procfs import HOST
from core.runner import CLEANUP_GRACE
from core.store import Store

from .common import describe, log
from .executor import LOCAL, Executors, JobSpec
from .follower import Follower, Running
from .outcome import Outcomes
from .spec import JOB_COLUMNS, CopyUnchecked, SpecRows, job_spec

_JOB = Job.__table__
# The oldest queued jobs, as each round looks for them (built once; values bound when run).
_QUEUED = (
    sa_select(_JOB.c.id, _JOB.c.type, _JOB.c.deployment_id)
    .where(_JOB.c.status == bindparam("queued"))
    .order_by(_JOB.c.created_at)
    .limit(bindparam("limit", type_=Integer))
)
_QUEUED_LOCKED = _QUEUED.with_for_update(skip_locked=True)
# A foreground command's engine: its one job only.
_QUEUED_ONE = _QUEUED.where(_JOB.c.id == bindparam("only_job"))
_QUEUED_ONE_LOCKED = _QUEUED_ONE.with_for_update(skip_locked=True)

# What a job's start may fail with that is the job's own failure ("could not start the job").
START_ERRORS = (OSError, ValueError, ModelDeckError)


@dataclass
class Claimed:
    """A job this engine claimed, and what it needs to start it."""

    job_id: str
    runs_code: bool
    deployment_id: str | None = None
    executor: str = LOCAL
    spec: JobSpec | None = None
    cwd: Path | None = None
    error: Exception | None = None  # reading its spec failed


SpecFn = Callable[[Store, SpecRows, Any], tuple[dict[str, Any], str, Any]]


class Dispatcher:
    """Starts queued jobs while workers are free."""

    def __init__(
        self,
        store: Store,
        engine_id: str,
        workers: int,
        grace: float,
        executors: Executors,
        follower: Follower,
        outcomes: Outcomes,
        only_job: str | None = None,
        spec: SpecFn = job_spec,
    ) -> None:
        self.store = store
        self.engine_id = engine_id
        self.workers = workers
        self.grace = grace
        self.executors = executors
        self.follower = follower
        self.outcomes = outcomes
        self.only_job = only_job
        self.spec = spec
        self._unclaim: set[str] = set()  # claimed by us, never started: back to the queue
        self._found_none = False  # the last claim took nothing (a shared queue)

    def queued_ids(self, limit: int) -> list[str]:
        return [job_id for job_id, _, _ in self._queued(None, limit)]

    def _queued(
        self, s: Session | None, limit: int, lock: bool = False
    ) -> list[tuple[str, str, str | None]]:
        """The oldest queued jobs (id, type, deployment): in ``s``'s transaction, or (None)
        as one read statement of its own; ``lock``: only rows no other claimer holds, locked
        until ``s`` ends (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). A Core statement built
        once (it runs every round): values bound when it runs."""
        params: dict[str, Any] = {"queued": JobStatus.queued.value, "limit": limit}
        stmt = _QUEUED_LOCKED if lock else _QUEUED
        if self.only_job:
            stmt = _QUEUED_ONE_LOCKED if lock else _QUEUED_ONE
            params["only_job"] = self.only_job
        rows = (
            self.store.read_rows(stmt, params)
            if s is None
            else rawsql.run(s.connection(), stmt, params)
        )
        return [(job_id, kind, dep) for job_id, kind, dep in rows]

    @staticmethod
    def _pick(
        queued: list[tuple[str, str, str | None]], free: int
    ) -> list[tuple[str, str, str | None]]:
        """The queued jobs to start now: every job that runs no code (it takes no worker),
        and as many others as there are ``free`` workers."""
        wanted: list[tuple[str, str, str | None]] = []
        workers = free
        for job_id, job_type, deployment_id in queued:
            if RULES[JobType(job_type)].runs_code:
                if workers <= 0:
                    continue  # no worker for it: do not take the write lock just to look
                workers -= 1
            wanted.append((job_id, job_type, deployment_id))
        return wanted

    def dispatch(self) -> None:
        for job_id in list(self._unclaim):
            self._requeue_unstarted(job_id)
            self._unclaim.discard(job_id)
        # Jobs that run no code do not take a worker: they go through with none free.
        # A job whose process ended frees its worker before its outcome is recorded.
        free = max(0, self.workers - self.follower.busy())
        wanted: list[tuple[str, str, str | None]] | None = None
        if not self.store.shared_queue or free == 0 or self._found_none:
            # One engine dispatches; or every worker is busy (only a job that runs no code
            # can start); or the last claim found nothing (an idle engine's rounds): look
            # first, unlocked. A shared queue's claim then picks again, among the rows no
            # other engine holds. A look is one statement; a claim that finds nothing is a
            # transaction of three on PostgreSQL.
            look = self._pick(self._queued(None, free + 16), free)
            if not look:
                return
            if not self.store.shared_queue:
                wanted = look
        try:
            claimed = self._claim(wanted, free)
            self._found_none = not claimed
        except Exception as exc:
            if storage_full(exc):
                raise  # nothing was claimed: try the queue again later, all of it
            # A job the batch cannot take (a broken row, say): one at a time, so that only
            # that one fails.
            log.debug("claiming a batch failed; one job at a time", exc_info=exc)
            if wanted is None:
                wanted = self._pick(self._queued(None, free + 16), free)
            self._dispatch_each([(job_id, job_type) for job_id, job_type, _ in wanted], free)
            return
        self._start_claimed(claimed)

    def _claim(self, wanted: list[tuple[str, str, str | None]] | None, free: int) -> list[Claimed]:
        """Claim the jobs ``wanted`` that can start now in one transaction, reading each
        one's spec in the same transaction: one write and no read per job.

        ``wanted`` None (a queue several engines share): the jobs are picked here, among
        the queued rows no other engine is claiming (locked until the commit), so engines
        claiming at once take different jobs and none waits for another."""
        batch = JobType.batch_predict.value
        with self.store.claimer() as s:
            if wanted is None:
                wanted = self._pick(self._queued(s, free + 16, lock=True), free)
                if not wanted:
                    # Not a rollback: on PostgreSQL that also drops the connection's
                    # prepared statements (psycopg), to be prepared again.
                    s.commit()
                    return []
            deployments = {dep for _, kind, dep in wanted if kind == batch and dep}
            busy = set()
            if deployments:  # a deployment runs one batch job at a time
                # Engines claiming the same deployment's jobs take turns (PostgreSQL).
                lock_keys(s, [f"modeldeck-deployment:{dep}" for dep in deployments])
                busy = set(
                    s.exec(
                        select(Job.deployment_id).where(
                            col(Job.deployment_id).in_(deployments),
                            Job.type == batch,
                            col(Job.status).in_(list(ACTIVE_STATUSES)),
                        )
                    ).all()
                )
            picked: list[str] = []
            for job_id, kind, dep in wanted:
                if kind == batch:
                    if dep in busy:
                        continue
                    busy.add(dep)
                picked.append(job_id)
            # The rows it took come back from the claim itself; what their specs read, in
            # one query a table (Core statements: no ORM objects).
            took = jobs.claim_many(
                s, picked, self.store.now(), self.engine_id, HOST, columns=JOB_COLUMNS
            )
            code_jobs = [job for job in took if RULES[JobType(job.type)].runs_code]
            rows = SpecRows(s.connection(), code_jobs, check_copies=False) if code_jobs else None
            claimed: list[Claimed] = []
            unchecked: list[tuple[Claimed, Any]] = []
            for job in took:
                c = Claimed(job.id, RULES[JobType(job.type)].runs_code, job.deployment_id)
                c.executor = job.executor or LOCAL
                if c.runs_code:
                    try:
                        assert rows is not None
                        self._read_spec(c, rows, job)
                    except CopyUnchecked:
                        unchecked.append((c, job))
                    except Exception as exc:  # said when it is started
                        c.error = exc
                claimed.append(c)
            failed = next((c.error for c in claimed if isinstance(c.error, DBAPIError)), None)
            if failed is not None:
                # A statement that failed may have aborted the transaction (PostgreSQL): its
                # commit would undo the claims, their jobs started all the same. Undone
                # here, said: the caller takes the jobs one at a time.
                raise failed
            s.commit()
        # Out of the claim: a version's missing copy, looked up in its training's events.
        for c, job in unchecked:
            try:
                with self.store.reader() as r:
                    self._read_spec(c, SpecRows(r.connection(), [job]), job)
            except Exception as exc:  # said when it is started
                c.error = exc
        return claimed

    def _read_spec(self, c: Claimed, rows: SpecRows, job: Any) -> None:
        """Fill in what the claimed code job ``c`` starts with: its spec, Python, working
        folder and executor."""
        runner_spec, python, c.cwd = self.spec(self.store, rows, job)
        c.executor = self._executor_of(runner_spec, c.executor)
        # How long what the job leaves running gets between SIGTERM and SIGKILL: well within
        # the engine's own grace, so a stopped job can still clean up after itself.
        runner_spec["grace"] = min(CLEANUP_GRACE, self.grace / 2)
        c.spec = JobSpec(runner_spec, python)

    def _start_claimed(self, claimed: list[Claimed]) -> None:
        """Start the jobs claimed, in order. Their ``started`` records are written by the
        round's following of jobs (``Follower.follow``), with the first end it records."""
        for i, c in enumerate(claimed):
            try:
                if c.runs_code:
                    self._launch(c)
                else:
                    self._run_inline(c.job_id)
            except Exception as exc:
                self._start_failed(c.job_id, exc)
                if storage_full(exc):
                    for rest in claimed[i + 1 :]:  # none of them ran: back to the queue
                        self._unclaim.add(rest.job_id)
                    raise  # the disk is full: try the queue again later, all of it

    def _dispatch_each(self, queued: list[tuple[str, str]], free: int) -> None:
        for job_id, job_type in queued:
            if free <= 0 and RULES[JobType(job_type)].runs_code:
                continue
            try:
                took = self._start(job_id, free)
            except Exception as exc:
                self._start_failed(job_id, exc)
                if storage_full(exc):
                    raise  # the disk is full: try the queue again later, all of it
                continue
            free -= took

    def _start(self, job_id: str, free: int) -> int:
        """Claim one queued job and start it; the workers it took (0 or 1)."""
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            if job is None or job.status != JobStatus.queued.value:
                return 0
            rule = RULES[JobType(job.type)]
            if rule.runs_code:
                if free <= 0:
                    return 0
                if job.type == JobType.batch_predict.value and self._deployment_busy(
                    s, job.deployment_id
                ):
                    return 0
            if not jobs.claim(s, job, self.store.now(), self.engine_id, HOST):
                s.rollback()
                return 0
            s.commit()
        if not rule.runs_code:
            self._run_inline(job_id)
            return 0
        c = Claimed(job_id, True)
        try:
            with self.store.reader() as s:
                conn = s.connection()
                job = conn.execute(select(*JOB_COLUMNS).where(JOB_COLUMNS[0] == job_id)).one()
                c.deployment_id, c.executor = job.deployment_id, job.executor or LOCAL
                self._read_spec(c, SpecRows(conn, [job]), job)
        except Exception as exc:
            c.error = exc
        run = self._launch(c)
        if run is not None:
            self.follower.record_started(run)
        return 1

    def _executor_of(self, runner_spec: dict[str, Any], row: str) -> str:
        """Where a code job runs: where its model's ``model.json`` says, else where its row
        says when that is not the default (``local``), else the engine's default executor."""
        named = runner_spec.pop("executor", None)
        return named or (row if row != LOCAL else None) or self.executors.default

    def _start_failed(self, job_id: str, exc: Exception) -> None:
        """Starting a job raised. A process that started is followed as usual. Otherwise a
        full disk puts the job back in the queue (nothing of it ran); any other error fails
        it, saying why."""
        if self.follower.follows(job_id):
            return
        if storage_full(exc):
            self._unclaim.add(job_id)
            try:
                self._requeue_unstarted(job_id)
                self._unclaim.discard(job_id)
            except Exception:
                pass  # still full: the next dispatch round tries again
            return
        log.error("modeldeck engine: starting job %s failed: %s", job_id, describe(exc))
        log.debug("starting job %s failed", job_id, exc_info=exc)
        try:
            self.outcomes.finish(
                job_id, JobStatus.failed, f"could not start: {describe(exc)}", None, {}
            )
        except Exception as again:
            if storage_full(again):
                self._unclaim.add(job_id)  # queued again once the disk has room
            else:
                log.error("modeldeck engine: job %s is left running: %s", job_id, describe(again))

    def _requeue_unstarted(self, job_id: str) -> None:
        """Give back a job this engine claimed but could not start: queued again, as if
        never claimed (its claim left no event)."""
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            if (
                job is None
                or job.status not in ACTIVE_STATUSES
                or job.engine_id != self.engine_id
                or job.pid is not None
                or job.handle is not None
                or self.follower.follows(job_id)
            ):
                return
            if job.stop_requested_at is not None:
                jobs.cancel_unstarted(s, job, self.store.now(), {})
            else:
                jobs.requeue(s, job, self.store.now(), None)
            s.commit()

    def _deployment_busy(self, s: Session, deployment_id: str | None) -> bool:
        return (
            s.exec(
                select(Job.id).where(
                    Job.deployment_id == deployment_id,
                    Job.type == JobType.batch_predict.value,
                    col(Job.status).in_(list(ACTIVE_STATUSES)),
                )
            ).first()
            is not None
        )

    def _run_inline(self, job_id: str) -> None:
        job_dir = self.store.job_dir(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        with self.store.writer() as s:
            conn = s.connection()
            job = JobRow.load(conn, job_id)
            if job is None or job.status not in ACTIVE_STATUSES:
                return  # ended meanwhile (recovery, another engine): nothing of it ran
            now = self.store.now()
            job.add_event(
                JobEventKind.started,
                f"{job.type} started",
                now,
                {"host": HOST, "pid": os.getpid(), "engine": self.engine_id},
            )
            mark = job.mark()
            try:
                with s.begin_nested():
                    apply_inline(s, job, now, lines)
            except ModelDeckError as exc:
                job.undo(mark)
                lines.append(f"error: {exc.message}")
                details = {"error": exc.message}
                ended = jobs.end(
                    conn, job, JobStatus.failed, now, exc.message, details, exc.message, 1
                )
            else:
                done = f"{job.type} completed"
                ended = jobs.end(
                    conn, job, JobStatus.completed, now, done, {"duration": 0.0}, None, 0
                )
            if not ended:
                return  # stopped meanwhile (the session rolls back): its stop says so
            # Its log, in the database too (other hosts read it there), with the outcome.
            data = "".join(line + "\n" for line in lines).encode("utf-8", "backslashreplace")
            if data:
                s.execute(
                    insert(LogChunk), [{"job_id": job_id, "seq": 0, "start": 0, "data": data}]
                )
            s.commit()
        # Only what happened goes to the log: after the commit (a commit that fails puts the
        # job back in the queue, and its next run writes the log).
        try:
            with open(job_dir / "log.txt", "ab") as fh:
                fh.write(data)
        except OSError as exc:  # its events say the same: the outcome stays recorded
            log.error(
                "modeldeck engine: writing the log of job %s failed: %s", job_id, describe(exc)
            )

    def _launch(self, c: Claimed) -> Running | None:
        """Start a claimed job on its executor and follow it; None when it could not start
        (it failed, saying why)."""
        job_dir = self.store.job_dir(c.job_id)
        # Made here: on a full disk this fails, and the job waits in the queue for space.
        job_dir.mkdir(parents=True, exist_ok=True)
        if c.error is not None and not isinstance(c.error, START_ERRORS):
            raise c.error
        try:
            if c.error is not None:
                raise c.error
            assert c.spec is not None
            handle = self.executors.get(c.executor).launch(
                c.spec,
                job_dir,
                c.cwd or job_dir,
                self.store.log_path(c.job_id),
                {"MODELDECK_JOB_ID": c.job_id},
            )
        except START_ERRORS as exc:
            if storage_full(exc):
                raise  # nothing of it ran: the job waits in the queue for space
            self.outcomes.finish(
                c.job_id, JobStatus.failed, f"could not start the job: {exc}", None, {}
            )
            return None
        python = c.spec.python
        run = Running(c.job_id, handle, deployment_id=c.deployment_id, unrecorded_python=python)
        self.follower.track(run, started=True)
        return run
