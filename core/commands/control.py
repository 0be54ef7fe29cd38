"""Stopping jobs: a queued job is cancelled at once, a running one is asked to stop (the
engine following it sends the signals). Status moves go through ``core.jobs``."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import col, select

from core import convert, jobs, lookup
from core.errors import ModelDeckError
from core.events import JobEventKind
from core.lifecycle import FINAL_STATUSES, JobStatus
from core.models import Job
from core.records import add_event
from core.store import Store
from core.views import JobView


class Control:
    """Stops jobs. ``settle`` records first the jobs whose process has ended (a job that
    finished is recorded, not cancelled)."""

    def __init__(self, store: Store, settle: Callable[..., None]) -> None:
        self.store = store
        self.settle = settle

    def stop(self, job: str, reason: str = "stopped by user") -> JobView:
        """Cancel a queued job at once; ask the engine to stop a running one."""
        self.settle(every=0)  # a job whose process has ended is recorded, not cancelled
        with self.store.writer() as s:
            j = lookup.job(s, job)
            now = self.store.now()
            if j.status in FINAL_STATUSES:
                raise ModelDeckError(f"job {j.id} is already {j.status}")
            if j.status == JobStatus.stopping.value:
                return convert.job_view_by_id(s, j.id)
            who = self.store.actor()
            add_event(
                s,
                j,
                JobEventKind.stop_requested,
                f"stop requested by {who}",
                now,
                {"by": who, "reason": reason},
            )
            if j.status == JobStatus.queued.value:
                jobs.cancel_unstarted(s, j, now, {"by": who})
            else:
                jobs.request_stop(s, j, now)
            s.commit()
            self.store.notify(j.id)
            return convert.job_view_by_id(s, j.id)

    def stop_all(self, project: str) -> list[JobView]:
        """Stop every queued or running job of a project."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
            ids = s.exec(
                select(Job.id).where(
                    Job.project_id == p.id,
                    col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]),
                )
            ).all()
        out = []
        for jid in ids:
            try:
                out.append(self.stop(jid))
            except ModelDeckError:
                pass  # it finished meanwhile
        return out
