"""Cron schedules: fire the deployments that are due, a batch per write transaction."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy import select as core_select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from core import schedule as cron
from core.clock import iso
from core.db import storage_full
from core.events import DeploymentEventKind
from core.jobs import queued_job_rows
from core.lifecycle import ACTIVE_STATUSES, DeploymentStatus, JobStatus, JobType, Trigger
from core.models import Deployment, DeploymentEvent, Job, JobEvent, ModelVersion
from core.records import add_deployment_event, add_event
from core.store import Store

from .common import FIRE_BATCH, MISSED_COUNTED, MISSED_LISTED, describe, log

EPSILON = timedelta(microseconds=1)
_DEP = Deployment.__table__
# The earliest fire time of the active schedules: asked every round, so built once.
_NEXT_FIRE = (
    core_select(_DEP.c.next_run_at)
    .where(
        _DEP.c.status == DeploymentStatus.active.value,
        _DEP.c.paused.is_(False),
        _DEP.c.next_run_at.is_not(None),
    )
    .order_by(_DEP.c.next_run_at)
    .limit(1)
)


class UnfirableSchedule(Exception):
    """A due deployment whose schedule cannot fire (its time zone is unknown here, say)."""


def _not_the_schedule(exc: BaseException) -> bool:
    """Whether firing failed for a reason no deployment is to blame for: a full disk, a
    database that cannot be written or reached (locked, read-only, gone)."""
    return storage_full(exc) or isinstance(exc, OperationalError | OSError)


class Scheduler:
    """Fires due schedules; ``next_fire`` is the earliest fire time as of the last round."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.next_fire: datetime | None = None

    def next_fire_at(self) -> datetime | None:
        rows = self.store.read_rows(_NEXT_FIRE)
        return rows[0][0] if rows else None

    def fire(self) -> None:
        now = self.store.now()
        self.next_fire = self.next_fire_at()
        if self.next_fire is None or self.next_fire > now:
            return  # the common round: one indexed lookup, nothing due
        with self.store.reader() as s:
            due = s.exec(
                select(Deployment.id).where(
                    Deployment.status == DeploymentStatus.active.value,
                    col(Deployment.paused).is_(False),
                    col(Deployment.next_run_at).is_not(None),
                    col(Deployment.next_run_at) <= now,
                )
            ).all()
        # A batch of deployments per write transaction: a thousand schedules due at the same
        # minute must not each wait for their own commit (and lookups). The burst makes
        # thousands of ORM objects; full collections of the whole heap in the middle of it
        # cost a third of its time, so the collector waits until the burst is over.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._fire_due(list(due))
        finally:
            if collecting:
                gc.enable()
        self.next_fire = self.next_fire_at()

    def _fire_due(self, due: list[str]) -> None:
        """Fire the due deployments. One that cannot fire does not hold back the others: it
        gets a ``schedule_failed`` event saying why (once), and the round then raises, so
        the part is logged once and backs off instead of trying again at once, forever."""
        broken: list[str] = []
        first: Exception | None = None
        for i in range(0, len(due), FIRE_BATCH):
            batch = list(due[i : i + FIRE_BATCH])
            try:
                self._fire_batch(batch)
            except Exception as exc:  # find the broken schedule: fire them one by one
                if _not_the_schedule(exc):
                    raise
                for dep_id in batch:
                    try:
                        self._fire_batch([dep_id])
                    except Exception as one:
                        if _not_the_schedule(one):
                            raise
                        broken.append(dep_id)
                        first = first or one
                        self._schedule_failed(dep_id, one)
        if first is not None:
            more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
            raise UnfirableSchedule(
                f"the schedule of deployment {broken[0]}{more} cannot fire: {describe(first)}"
            ) from first

    def _schedule_failed(self, dep_id: str, exc: Exception) -> None:
        """Say in the deployment's timeline why its schedule cannot fire, once: not again
        while its latest event already says the same."""
        reason = describe(exc)
        message = f"its schedule cannot fire: {reason}"
        try:
            with self.store.writer() as s:
                last = s.exec(
                    select(DeploymentEvent.kind, DeploymentEvent.message)
                    .where(DeploymentEvent.deployment_id == dep_id)
                    .order_by(col(DeploymentEvent.id).desc())
                    .limit(1)
                ).first()
                if last is not None and tuple(last) == (
                    DeploymentEventKind.schedule_failed,
                    message,
                ):
                    return
                add_deployment_event(
                    s,
                    dep_id,
                    DeploymentEventKind.schedule_failed,
                    message,
                    self.store.now(),
                    {"error": reason},
                )
                s.commit()
        except Exception as again:  # the round's error says it anyway
            log.debug("recording why %s cannot fire failed", dep_id, exc_info=again)

    def _fire_batch(self, dep_ids: list[str]) -> None:
        with self.store.writer() as s:
            # Load the batch's deployments and its busy batch jobs in two queries; _fire's
            # s.get then hits the session, and no per-deployment query flushes the session.
            # (The session's identity map is weak: keep the loaded rows referenced.)
            # Exactly once across engines: each due deployment is locked (PostgreSQL; SQLite's
            # write transaction is the lock) and fired only when still due once locked. One
            # another engine is firing now is skipped: that engine fires it.
            deps = s.exec(
                select(Deployment)
                .where(col(Deployment.id).in_(dep_ids))
                .with_for_update(skip_locked=True)
            ).all()
            dep_ids = [d.id for d in deps]
            version_ids = {d.version_id for d in deps}
            loaded = [
                *deps,
                *s.exec(select(ModelVersion).where(col(ModelVersion.id).in_(version_ids))),
            ]
            busy: dict[str, Job] = {}
            for job in s.exec(
                select(Job).where(
                    col(Job.deployment_id).in_(dep_ids),
                    Job.type == JobType.batch_predict.value,
                    col(Job.status).in_([JobStatus.queued.value, *ACTIVE_STATUSES]),
                )
            ):
                busy.setdefault(job.deployment_id, job)
            # New jobs and their events go in as rows, in bulk: building and flushing ORM
            # objects one by one was most of a big burst's time.
            rows: dict[str, list[dict[str, Any]]] = {"jobs": [], "events": [], "fired": []}
            for dep_id in dep_ids:
                self._fire(s, dep_id, self.store.now(), busy, rows)
            if rows["jobs"]:
                s.execute(insert(Job), rows["jobs"])
                s.execute(insert(JobEvent), rows["events"])
                s.execute(insert(DeploymentEvent), rows["fired"])
            s.commit()
            del loaded

    def _fire(
        self,
        s: Session,
        dep_id: str,
        now: datetime,
        busy_jobs: dict[str, Job],
        rows: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Fire one due deployment inside the caller's write transaction; a new job and its
        events are added to ``rows`` for the caller to insert."""
        d = s.get(Deployment, dep_id)
        if (
            d is None
            or d.status != DeploymentStatus.active.value
            or d.paused
            or d.next_run_at is None
            or d.next_run_at > now
        ):
            return
        # Walk the grace window and what lies before it apart: after a long outage the fires
        # within the grace are the last ones, far beyond any list of the first.
        start = d.next_run_at - timedelta(seconds=1)
        horizon = now - timedelta(seconds=d.grace_seconds)  # fires from here on are in grace
        within, n_within, upcoming = cron.due_fires(
            d.schedule, d.timezone, max(start, horizon - EPSILON), now, limit=1, keep_last=True
        )
        beyond = 0
        if start < horizon - EPSILON:
            missed, beyond, _ = cron.due_fires(
                d.schedule,
                d.timezone,
                start,
                horizon - EPSILON,
                limit=MISSED_LISTED,
                cap=MISSED_COUNTED,
            )
        if beyond:
            capped = beyond >= MISSED_COUNTED
            add_deployment_event(
                s,
                d.id,
                DeploymentEventKind.schedule_missed,
                f"{beyond}{'+' if capped else ''} fire time(s) missed beyond the "
                f"{d.grace_seconds}s grace (from {missed[0]:%Y-%m-%d %H:%M} UTC)",
                now,
                {
                    "count": beyond,
                    "count_capped": capped,
                    "first": missed[0],
                    "last": missed[-1] if len(missed) == beyond else None,
                    "fire_times": missed,
                },
            )
        if within:
            fire_time = within[-1]
            busy = busy_jobs.get(d.id)
            if busy is not None:
                add_deployment_event(
                    s,
                    d.id,
                    DeploymentEventKind.schedule_skipped,
                    f"fire at {fire_time:%Y-%m-%d %H:%M} UTC skipped: "
                    f"job {busy.id} is still {busy.status}",
                    now,
                    {"fire_time": fire_time, "running_job": busy.id},
                )
                add_event(
                    s,
                    busy,
                    DeploymentEventKind.schedule_skipped,
                    f"scheduled fire at {fire_time:%H:%M} UTC skipped while this job runs",
                    now,
                    {"fire_time": fire_time, "deployment": d.id},
                )
            else:
                v = s.get(ModelVersion, d.version_id)
                details = {
                    "fire_time": fire_time,
                    "lateness": (now - fire_time).total_seconds(),
                    "schedule": d.schedule,
                    "timezone": d.timezone,
                }
                if n_within > 1:
                    details["coalesced"] = n_within - 1
                job_row, event_row = queued_job_rows(
                    JobType.batch_predict,
                    d.project_id,
                    at=now,
                    model_id=v.model_id,
                    version_id=v.id,
                    deployment_id=d.id,
                    dataset_id=d.dataset_id,
                    params={"fire_time": iso(fire_time)},
                    trigger=Trigger.schedule,
                    details=details,
                )
                job_id = job_row["id"]
                rows["jobs"].append(job_row)
                rows["events"].append(event_row)
                rows["fired"].append(
                    {
                        "deployment_id": d.id,
                        "at": now,
                        "kind": DeploymentEventKind.schedule_fired,
                        "message": f"fire at {fire_time:%Y-%m-%d %H:%M} UTC queued job {job_id}",
                        "details": {"job": job_id, **details},
                    }
                )
        d.next_run_at = upcoming
        s.add(d)
