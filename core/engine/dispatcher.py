"""Dispatch: claim queued jobs, start each on its executor (or run it here when it runs no
code), and give back what could not start."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from core import jobs
from core.db import storage_full
from core.effects import apply_inline
from core.errors import ModelDeckError
from core.lifecycle import ACTIVE_STATUSES, RULES, JobStatus, JobType
from core.models import Job
from core.procfs import HOST
from core.records import add_event
from core.runner import CLEANUP_GRACE
from core.store import Store

from .common import describe, log
from .executor import LOCAL, Executors, JobSpec
from .follower import Follower, Running
from .outcome import Outcomes
from .spec import job_spec

SpecFn = Callable[[Store, Session, Job], tuple[dict[str, Any], str, Any]]


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

    def queued_ids(self, limit: int) -> list[str]:
        with self.store.reader() as s:
            stmt = select(Job.id).where(Job.status == JobStatus.queued.value)
            if self.only_job:
                stmt = stmt.where(Job.id == self.only_job)
            return list(s.exec(stmt.order_by(col(Job.created_at)).limit(limit)).all())

    def dispatch(self) -> None:
        for job_id in list(self._unclaim):
            self._requeue_unstarted(job_id)
            self._unclaim.discard(job_id)
        # Jobs that run no code do not take a worker: they go through with none free.
        free = max(0, self.workers - len(self.follower.running))
        with self.store.reader() as s:
            stmt = select(Job.id, Job.type).where(Job.status == JobStatus.queued.value)
            if self.only_job:
                stmt = stmt.where(Job.id == self.only_job)
            queued = s.exec(stmt.order_by(col(Job.created_at)).limit(free + 16)).all()
        for job_id, job_type in queued:
            if free <= 0 and RULES[JobType(job_type)].runs_code:
                continue  # no worker for it: do not take the write lock just to look
            try:
                took = self._start(job_id, free)
            except Exception as exc:
                self._start_failed(job_id, exc)
                if storage_full(exc):
                    raise  # the disk is full: try the queue again later, all of it
                continue
            free -= took

    def _start(self, job_id: str, free: int) -> int:
        """Claim a queued job and start it; the workers it took (0 or 1)."""
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
        if rule.runs_code:
            self._launch(job_id)
            return 1
        self._run_inline(job_id)
        return 0

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
            job = s.get(Job, job_id)
            now = self.store.now()
            add_event(
                s,
                job,
                "started",
                f"{job.type} started",
                now,
                {"host": HOST, "pid": os.getpid(), "engine": self.engine_id},
            )
            try:
                with s.begin_nested():
                    apply_inline(s, job, now, lines)
            except ModelDeckError as exc:
                lines.append(f"error: {exc.message}")
                details = {"error": exc.message}
                jobs.finish(s, job, JobStatus.failed, now, exc.message, details, exc.message, 1)
            else:
                done = f"{job.type} completed"
                jobs.finish(s, job, JobStatus.completed, now, done, {"duration": 0.0}, None, 0)
            s.commit()
        # Only what happened goes to the log: after the commit (a commit that fails puts the
        # job back in the queue, and its next run writes the log).
        try:
            with open(job_dir / "log.txt", "a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines))
        except OSError as exc:  # its events say the same: the outcome stays recorded
            log.error(
                "modeldeck engine: writing the log of job %s failed: %s", job_id, describe(exc)
            )

    def _launch(self, job_id: str) -> None:
        job_dir = self.store.job_dir(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            with self.store.reader() as s:
                job = s.get(Job, job_id)
                runner_spec, python, code_dir = self.spec(self.store, s, job)
                deployment_id = job.deployment_id
                executor = self.executors.get(job.executor or LOCAL)
            # How long what the job leaves running gets between SIGTERM and SIGKILL: well
            # within the engine's own grace, so a stopped job can still clean up after itself.
            runner_spec["grace"] = min(CLEANUP_GRACE, self.grace / 2)
            handle = executor.launch(
                JobSpec(runner_spec, python),
                job_dir,
                code_dir or job_dir,
                self.store.log_path(job_id),
                {"MODELDECK_JOB_ID": job_id},
            )
        except (OSError, ValueError, ModelDeckError) as exc:
            if storage_full(exc):
                raise  # nothing of it ran: the job waits in the queue for space
            self.outcomes.finish(
                job_id, JobStatus.failed, f"could not start the job: {exc}", None, {}
            )
            return
        run = Running(job_id, handle, deployment_id=deployment_id, unrecorded_python=python)
        self.follower.track(run)
        self.follower.record_started(run)
