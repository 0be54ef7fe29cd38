"""Jobs on a version: evaluate, compute statistics, approve, reject and deploy. Each is
checked against the version's lifecycle (``core.lifecycle``) and, when it reads a dataset,
against the version's training columns (``core.fit``) before it is queued."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlmodel import Session

from core import lookup
from core import schedule as cron
from core.commands.submit import Submitter
from core.errors import ModelDeckError
from core.evaluations import evaluations, metrics_history
from core.fit import FIT_CHECKED, check_fit, fit_of
from core.inputs import checked_reason
from core.lifecycle import JobType
from core.models import Dataset, Model, ModelVersion, Project
from core.queries import judged as judged_now
from core.records import identical_deployment, identical_deployment_message
from core.views import JobView, MetricsView


class VersionJobs:
    """Queues the jobs on a version."""

    def __init__(self, submit: Submitter, warn: Callable[[str], None]) -> None:
        self.submit = submit
        self.store = submit.store
        self.warn = warn

    def version_job(
        self,
        job_type: JobType,
        version: str,
        dataset: str | None = None,
        params: dict[str, Any] | None = None,
        needs_dataset: bool = True,
        prepare: Callable[[Session, ModelVersion], dict[str, Any]] | None = None,
    ) -> JobView:
        """Queue a job on a version; ``prepare`` checks more and adds to the job's params.

        The version and dataset are resolved in a reader, their files' columns read with no
        lock held, then the writer checks again what may have changed meanwhile (the
        version's status, the dataset archived) and queues the job."""
        with self.store.reader() as s:
            v, m, p, ds = self._version_job_inputs(s, job_type, version, dataset, needs_dataset)
            fit = fit_of(s, v, m, ds) if ds is not None and job_type in FIT_CHECKED else None
            version_id, dataset_id = v.id, ds.id if ds else None
        if fit is not None:
            check_fit(job_type, fit)
        with self.store.writer() as s:
            v, m, p, ds = self._version_job_inputs(
                s, job_type, version_id, dataset_id, needs_dataset
            )
            if prepare is not None:
                params = {**(params or {}), **prepare(s, v)}
            job = self.submit.queue_job(
                s,
                job_type,
                p.id,
                model_id=m.id,
                version_id=v.id,
                dataset_id=ds.id if ds else None,
                params=params,
            )
            return self.submit.submitted(s, job)

    def _version_job_inputs(
        self,
        s: Session,
        job_type: JobType,
        version: str,
        dataset: str | None,
        needs_dataset: bool,
    ) -> tuple[ModelVersion, Model, Project, Dataset | None]:
        """The version, its model and project, and the dataset of a job on a version,
        refused when the lifecycle or the dataset does not allow the job."""
        v = lookup.version(s, version)
        m = s.get(Model, v.model_id)
        p = s.get(Project, m.project_id)
        self.submit.check_version(job_type, v)
        self.submit.check_decider(s, job_type, v)
        ds = lookup.dataset(s, p, dataset) if needs_dataset else None
        if job_type == JobType.evaluate and ds is not None and not ds.target:
            raise ModelDeckError(
                f"dataset {ds.name!r} has no target column: evaluation needs one "
                f"(register it with --target COL)"
            )
        return v, m, p, ds

    def evaluate(self, version: str, dataset: str) -> JobView:
        return self.version_job(JobType.evaluate, version, dataset)

    def compute_stats(self, version: str, dataset: str) -> JobView:
        return self.version_job(JobType.compute_stats, version, dataset)

    def approve(
        self, version: str, reason: str, evaluations: Sequence[str] | None = None
    ) -> JobView:
        """Approve an evaluated version on the evaluations given (job ids or prefixes), by
        default the one it is judged on (``evaluation``); the approval records them."""
        return self.decide(JobType.approve, version, reason, evaluations)

    def reject(
        self, version: str, reason: str, evaluations: Sequence[str] | None = None
    ) -> JobView:
        return self.decide(JobType.reject, version, reason, evaluations)

    def decide(
        self,
        job_type: JobType,
        version: str,
        reason: str,
        chosen: Sequence[str] | None = None,
    ) -> JobView:
        reason = checked_reason(reason)
        if not reason:
            raise ModelDeckError(f"a reason is required to {job_type.value} a version")

        training_only: list[str] = []  # the datasets, when every evaluation is on training data

        def note(v: ModelVersion, picked: list[MetricsView]) -> None:
            if job_type == JobType.approve and picked and all(m.training for m in picked):
                names = ", ".join(sorted({str(m.dataset) for m in picked}))
                training_only.append(f"{v.id} ({names})")

        def seen(s: Session, v: ModelVersion) -> dict[str, Any]:
            # Fixed now, at submission: the evaluations the approver was shown, not whatever
            # lands before the job runs.
            if not chosen:
                judged = judged_now(s, v)
                note(v, [judged] if judged and judged.job_type == JobType.evaluate.value else [])
                return {"evaluations": [judged.job_id] if judged and judged.job_id else []}
            history = {m.job_id: m for m in evaluations(metrics_history(s, v))}
            ids: list[str] = []
            for ref in chosen:
                job = lookup.job(s, ref)
                if job.version_id != v.id or job.type != JobType.evaluate.value:
                    raise ModelDeckError(
                        f"job {job.id} is a {job.type} job, not an evaluation of version {v.id}"
                        if job.version_id == v.id
                        else f"job {job.id} is not an evaluation of version {v.id}"
                    )
                if job.id not in history:
                    raise ModelDeckError(
                        f"evaluation {job.id} of version {v.id} recorded no metrics "
                        f"(it is {job.status})"
                    )
                if job.id not in ids:
                    ids.append(job.id)
            note(v, [history[i] for i in ids])
            return {"evaluations": ids}

        view = self.version_job(
            job_type, version, params={"reason": reason}, needs_dataset=False, prepare=seen
        )
        for what in training_only:
            self.warn(
                f"version {what} is approved on an evaluation of its training data only: "
                "numbers on data it learnt from say little; evaluate it on held-out data"
            )
        return view

    def deploy(
        self,
        version: str,
        dataset: str,
        schedule: str | None = None,
        timezone: str | None = None,
    ) -> JobView:
        expr = cron.validate_cron(schedule) if schedule else None
        tz = timezone or "UTC"
        cron.zone(tz)
        if timezone and not schedule:
            raise ModelDeckError("--timezone goes with --schedule")

        def not_twice(s: Session, v: ModelVersion) -> dict[str, Any]:
            ds = lookup.dataset(s, s.get(Project, s.get(Model, v.model_id).project_id), dataset)
            same = identical_deployment(s, v.id, ds.id, expr, tz)
            if same is not None:
                raise ModelDeckError(identical_deployment_message(same))
            return {}

        return self.version_job(
            JobType.deploy,
            version,
            dataset,
            params={"schedule": expr, "timezone": tz},
            prepare=not_twice,
        )
