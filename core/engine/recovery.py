"""Recovery: jobs no engine follows. A live one is adopted; the outcome of one whose process
ended is recorded; a claimed one that never started goes back to the queue."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from core import jobs
from core.clock import iso, utc
from core.effects import place_artifacts
from core.events import JobEventKind
from core.hosts import LOST_AFTER, hosts_last_seen
from core.lifecycle import ACTIVE_STATUSES, FINAL_STATUSES, RULES, JobStatus, JobType
from core.models import Job, ModelVersion
from core.procfs import HOST, engine_alive, engine_pid, is_job_command
from core.records import add_event
from core.store import Store

from .common import RECOVER_EVERY, SERVING, Guard
from .executor import LOCAL, Executors, Handle
from .follower import Follower, Running
from .heartbeat import engines_beating
from .outcome import Outcomes

# How far back an engine looks for jobs of its host failed as lost whose process still runs.
LOST_PROCESSES_WITHIN = timedelta(days=7)


class Recovery:
    """Looks at the active jobs this engine does not follow, every RECOVER_EVERY seconds."""

    def __init__(
        self,
        store: Store,
        engine_id: str,
        executors: Executors,
        follower: Follower,
        outcomes: Outcomes,
        guard: Guard,
        only_job: str | None = None,
        lost_after: float = LOST_AFTER,
    ) -> None:
        self.store = store
        self.lost_after = lost_after
        self._hosts_seen: dict[str, datetime] | None = None  # None: judge no other host
        self._peers: set[str] = set()  # live engines of this host that follow their jobs
        self.engine_id = engine_id
        self.executors = executors
        self.follower = follower
        self.outcomes = outcomes
        self.guard = guard
        self.only_job = only_job
        self._last = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last > RECOVER_EVERY

    def reset(self) -> None:
        """Look again at the next round (the engine just took the lease)."""
        self._last = 0.0

    def recover(self, serving: bool, only: str | None = None, adopt: bool = True) -> None:
        """Adopt running jobs no engine follows; finish the ones whose process is gone.

        The lease holder (``serving``) adopts every live job of this host, even one a job
        command still follows (that command then lets go of it). Without the lease
        (``only``: a job command's own job; ``adopt=False``: a read while no engine serves)
        a job whose engine is alive on this host is left to that engine.
        """
        self._last = time.monotonic()
        with self.store.reader() as s:
            stmt = select(Job).where(
                col(Job.status).in_(list(ACTIVE_STATUSES)),
                col(Job.id).not_in(list(self.follower.running) or [""]),
            )
            if only is not None:
                stmt = stmt.where(Job.id == only)
            rows = s.exec(stmt).all()
        if only is None:  # dealt with: nothing of it to try again
            self.guard.forget("recovering job ", {job.id for job in rows})
        # Only a serving engine gives up the jobs of hosts that are gone.
        others = {job.host for job in rows if job.host not in (None, HOST)}
        judge = (serving or self.store.shared_queue) and adopt and only is None and bool(others)
        self._hosts_seen = hosts_last_seen(self.store, others) if judge else None
        # Engines sharing the queue each follow their own jobs: the live peers of this host.
        self._peers = set()
        peers = {job.engine_id for job in rows if job.host == HOST and job.engine_id}
        if serving and self.store.shared_queue and peers:
            self._peers = {p for p in engines_beating(self.store, peers) if _follows(p)}
        for job in rows:
            # One job that cannot be recovered (its records, a full disk) waits alone.
            self.guard.run(
                f"recovering job {job.id}", lambda j=job: self._recover_one(j, adopt, serving)
            )
        if only is None:
            self.guard.run("placing staged artifacts", self._place_staged)

    def end_lost(self) -> None:
        """Jobs of this host another host failed as lost while nothing here beat (this
        host's engines were gone): a process of one that still runs is its own no more (its
        outcome is decided), so it is killed, and said so; what its log gained meanwhile is
        copied to the database; and its staging folder goes. Run by each engine of the host
        as it starts, serving or standing by."""
        since = self.store.now() - LOST_PROCESSES_WITHIN
        with self.store.reader() as s:
            rows = s.exec(
                select(Job).where(
                    Job.host == HOST,
                    Job.status == JobStatus.failed.value,
                    Job.error == "lost",
                    col(Job.pid).is_not(None),
                    col(Job.finished_at) >= since,
                )
            ).all()
        for job in rows:
            executor = self.executors.get(job.executor or LOCAL)
            live = executor.adopt(job)
            killed = None if live is None else sorted(executor.stop(live))
            # What its log gained here since this host was last seen goes to the database,
            # where the other hosts read it (nothing when it had all of it); before the
            # kill is said, so that the timeline's last word comes with the whole log.
            self.follower.copy_rest(job.id)
            if killed is not None:
                self._say_killed(job, killed)
            # Left by the host that failed it, for its process to write to until now.
            shutil.rmtree(self.store.staging_dir(job.id), ignore_errors=True)

    def _say_killed(self, job: Job, killed: list[int]) -> None:
        """The timeline of a job failed as lost: its process, still running, was killed."""
        with self.store.writer() as s:
            row = s.get(Job, job.id)
            if row is None:
                return
            add_event(
                s,
                row,
                JobEventKind.processes_killed,
                f"its process, still running on {HOST} after the job was failed as lost, "
                "was killed with SIGKILL",
                self.store.now(),
                {"pids": killed, "engine": self.engine_id},
            )
            s.commit()

    def _place_staged(self) -> None:
        """Staging folders of ended jobs: a version recorded by a process that died before
        moving its files in gets them now; the rest were left over and go."""
        root = self.store.staging_dir("x").parent
        try:
            names = os.listdir(root)
        except OSError:
            return
        if not names:
            return
        since = self.store.now() - LOST_PROCESSES_WITHIN
        with self.store.reader() as s:
            rows = s.exec(
                select(Job, ModelVersion.artifact_dir)
                .join(ModelVersion, col(ModelVersion.job_id) == Job.id, isouter=True)
                .where(col(Job.id).in_(names), col(Job.status).in_(list(FINAL_STATUSES)))
            ).all()
        for job, artifact_dir in rows:
            if self._may_still_run(job, since):
                continue
            staging = root / job.id
            if job.status == JobStatus.completed.value and artifact_dir:
                place_artifacts(staging, Path(artifact_dir))
            shutil.rmtree(staging, ignore_errors=True)

    def _may_still_run(self, job: Job, since: datetime) -> bool:
        """A job failed as lost whose process may still run, writing to its staging folder:
        on another host, until an engine of that host has ended it (``end_lost``), or a
        week has passed (the host is not coming back); on this host, while it runs."""
        started = job.pid is not None or job.handle is not None  # a Ray job has no pid
        if job.error != "lost" or not started or (utc(job.finished_at) or since) < since:
            return False
        if job.host != HOST:
            return True
        return self.executors.get(job.executor or LOCAL).adopt(job) is not None

    def _recover_one(self, job: Job, adopt: bool, serving: bool) -> None:
        executor = self.executors.get(job.executor or LOCAL)
        # A CLI engine adopts only what it was asked about; others wait for a real engine.
        foreign = self.only_job and job.id != self.only_job and job.host == HOST
        if foreign and executor.adopt(job) is not None:
            return
        if job.host not in (None, HOST):
            # Another host's job: only an engine there can judge it, unless that host has
            # not been seen for ``lost_after`` (it is gone, and its jobs with it).
            self._lose_if_host_gone(job)
            return
        if job.engine_id == self.engine_id:
            return
        if engine_alive(job.engine_id) and (not serving or job.engine_id in self._peers):
            # Its engine still follows it. The lease holder takes over a job command's job,
            # or one of an engine that stopped; engines sharing a queue each keep their own.
            return
        if job.pid is None and job.handle is None and RULES[JobType(job.type)].runs_code:
            found = self._unrecorded_process(job)
            if found is None:
                return  # it never started: queued again, or cancelled if stopped
            job = found
        live = executor.adopt(job)
        if live is not None:
            if adopt:
                self._adopt(job, live)
            return
        result = self.outcomes.read_result(job.id)
        if job.pid is None and result is None and not RULES[JobType(job.type)].runs_code:
            self.outcomes.finish(
                job.id,
                JobStatus.failed,
                "lost",
                None,
                {},
                extra={"reason": "the engine died while running it"},
            )
            return
        handle = executor.recorded(job) or Handle(job.executor or LOCAL, job.id, "")
        run = Running(job.id, handle)
        # Recorded with the job's end: several readers may recover it at once, and only the
        # one that ends it says so.
        self.outcomes.note(
            job.id,
            JobEventKind.recovered,
            "the job's process ended while no engine followed it",
            {"engine": self.engine_id, "result_found": result is not None},
        )
        self.follower.collect(run, -1)  # its last records go in with its end

    def _lose_if_host_gone(self, job: Job) -> None:
        if self._hosts_seen is None:
            return
        now = self.store.now()
        seen = self._hosts_seen.get(job.host or "")
        since = seen or utc(job.started_at) or utc(job.created_at)
        if since is None or (now - since).total_seconds() < self.lost_after:
            return
        when = f"since {iso(seen)}" if seen else "ever"
        self.outcomes.finish(
            job.id,
            JobStatus.failed,
            "lost",
            None,
            {},
            extra={
                "reason": f"its host {job.host} has not been seen {when} (the host is gone)",
                "host": job.host,
                "host_last_seen": seen,
                "lost_after": self.lost_after,
                "engine": self.engine_id,
            },
        )

    def _adopt(self, job: Job, handle: Handle) -> None:
        """Follow a live job from here on: the job names this engine, so the one that ran it
        (a job command, an engine that lost the lease) lets go of it."""
        now = self.store.now()
        with self.store.writer() as s:
            row = s.get(Job, job.id)
            if row is None or row.status not in ACTIVE_STATUSES or row.engine_id != job.engine_id:
                return  # it changed meanwhile: look again at the next recovery
            row.engine_id = self.engine_id
            add_event(
                s,
                row,
                JobEventKind.reattached,
                f"engine {self.engine_id} re-attached to {handle.where}",
                now,
                {
                    "engine": self.engine_id,
                    "pid": job.pid,
                    "host": HOST,
                    "from": job.engine_id,
                    "executor": handle.executor,
                    **({"submission_id": handle.name} if handle.name else {}),
                },
            )
            s.add(row)
            s.commit()
        self.follower.track(Running(job.id, handle, deployment_id=job.deployment_id))

    def _unrecorded_process(self, job: Job) -> Job | None:
        """A claimed code job without a handle: its engine died around the launch.

        Its executor says whether it started; record it and return the job. Without one no
        code of the job ever ran, so it is safe to queue it again.
        """
        found = self.executors.get(job.executor or LOCAL).launched(job)
        if found is None and engine_alive(job.engine_id):
            return None  # its engine (a job command, say) is alive: it is starting it now
        now = self.store.now()
        with self.store.writer() as s:
            row = s.get(Job, job.id)
            if (
                row is None
                or row.status not in ACTIVE_STATUSES
                or row.pid is not None
                or row.handle is not None
            ):
                return None  # someone else dealt with it meanwhile
            if found is not None:
                row.pid, row.pgid, row.proc_start = found.pid, found.pgid, found.start
                row.executor, row.handle = found.executor, found.ref
                add_event(
                    s,
                    row,
                    JobEventKind.started,
                    f"{row.type} started on {HOST} ({found.where}), found by engine "
                    f"{self.engine_id}",
                    now,
                    {"host": HOST, "pid": found.pid, "pgid": found.pgid, "engine": self.engine_id},
                )
            elif row.stop_requested_at is not None:
                jobs.cancel_unstarted(s, row, now, {})
            else:
                requeued = "its engine stopped before starting the job's process: queued again"
                jobs.requeue(
                    s, row, now, (JobEventKind.requeued, requeued, {"engine": self.engine_id})
                )
            s.add(row)
            s.commit()
            return row if found is not None else None


def _follows(engine_id: str) -> bool:
    """Whether the engine ``engine_id``, beating, follows its jobs to their end: a whole
    engine (not a job command) of another process, or one of this process still serving."""
    if is_job_command(engine_id):
        return False
    return engine_pid(engine_id) != os.getpid() or engine_id in SERVING
