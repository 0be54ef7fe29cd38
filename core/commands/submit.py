"""The one door a job is queued through: a ``queued`` row and its ``created`` event in the
caller's write transaction, then the commit, the engines' wake-up and the job read back."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core import convert
from core.errors import ModelDeckError
from core.inputs import require_utf8_values
from core.jobs import queued_job_rows
from core.lifecycle import JobType, version_refusal
from core.models import Job, JobEvent, ModelVersion
from core.store import Store
from core.team import decision_refusal
from core.views import JobView

# What a job's view names besides its row: project, model, version number, dataset.
JobNames = tuple[str, str | None, int | None, str | None]


class Submitter:
    """Queues jobs in a store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def queue_job(self, s: Session, job_type: JobType, project_id: str, **fields: Any) -> Job:
        """Add a queued job and its ``created`` event to the session (see ``queued_job_rows``).
        Its parameters are the ones its kind takes, as the job-kind registry checks them."""
        from core.kinds import KINDS  # the registry imports the effects: only when queueing

        params = fields.get("params") or {}
        require_utf8_values(params)
        KINDS[job_type].check(params)
        job_row, event_row = queued_job_rows(
            job_type, project_id, at=self.store.now(), actor=self.store.actor(), **fields
        )
        job = Job(**job_row)
        s.add(job)
        s.add(JobEvent(**event_row))
        return job

    def submitted(self, s: Session, job: Job, names: JobNames | None = None) -> JobView:
        """Commit the queued ``job``, wake the engines, and return it: as it is now, read
        back; or, given the ``names`` its view shows, as it was committed (no read)."""
        announced = self.store.announce(s)
        s.commit()
        self.store.notify(job.id, announced=announced)
        if names is not None:
            return convert.job_view((job, *names))
        with self.store.reader() as r:  # reading it back needs no write lock
            return convert.job_view_by_id(r, job.id)

    @staticmethod
    def check_version(job_type: JobType, v: ModelVersion) -> None:
        """Refuse a job the version's lifecycle status does not allow."""
        refusal = version_refusal(job_type, v.status)
        if refusal:
            raise ModelDeckError(f"{refusal}: {v.id}")

    def check_decider(self, s: Session, job_type: JobType, v: ModelVersion) -> None:
        """Refuse a decision the project does not let this user make (its approvers, four
        eyes); other jobs pass."""
        refusal = decision_refusal(s, job_type, v, self.store.actor())
        if refusal:
            raise ModelDeckError(refusal)
