"""Rows to views: the plain frozen data (``core.views``) that the CLI and the TUI are given.

Functions over an open session; they read what a view shows and change nothing. A list of
versions is converted in a few queries for the whole list (``version_views``), not a few
per version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.errors import NotFound
from core.evaluations import evaluation_from_ref, judged_evaluation, metrics_histories, model_meta
from core.events import JobEventKind
from core.lifecycle import ACTIVE_STATUSES, JobStatus, JobType
from core.models import (
    Approval,
    Dataset,
    Deployment,
    DeploymentEvent,
    Job,
    JobEvent,
    Model,
    ModelVersion,
    Project,
    StatisticsRecord,
)
from core.monitoring.store import drifting_counts, latest_statuses
from core.views import (
    ApprovalView,
    DatasetView,
    DeploymentEventView,
    DeploymentView,
    EventView,
    JobBrief,
    JobView,
    ProjectView,
    StatisticsRunView,
    VersionView,
)

BATCH = 500  # versions per round of queries: well under any database's limit of parameters


def project_view(s: Session, p: Project, drifting: int | None = None) -> ProjectView:
    def count(stmt: Any) -> int:
        return int(s.exec(stmt).one())

    return ProjectView(
        id=p.id,
        name=p.name,
        repo=p.repo,
        created_at=p.created_at,
        archived_at=p.archived_at,
        models=count(select(func.count()).select_from(Model).where(Model.project_id == p.id)),
        active_deployments=count(
            select(func.count())
            .select_from(Deployment)
            .where(Deployment.project_id == p.id, Deployment.status == "active")
        ),
        running_jobs=count(
            select(func.count())
            .select_from(Job)
            .where(Job.project_id == p.id, col(Job.status).in_(list(ACTIVE_STATUSES)))
        ),
        failed_jobs=count(
            select(func.count())
            .select_from(Job)
            .where(Job.project_id == p.id, Job.status == JobStatus.failed.value)
        ),
        approvers=list(p.approvers or []),
        four_eyes=bool(p.four_eyes),
        drifting=drifting if drifting is not None else drifting_counts(s, [p.id]).get(p.id, 0),
    )


def dataset_view(d: Dataset, p: Project) -> DatasetView:
    return DatasetView(
        id=d.id,
        project=p.name,
        name=d.name,
        path=d.path,
        format=d.format,
        target=d.target,
        rows=d.rows,
        columns=d.columns,
        created_at=d.created_at,
        sha256=d.sha256,
        id_column=d.id_column,
        archived_at=d.archived_at,
    )


def approval_view(a: Approval) -> ApprovalView:
    return ApprovalView(
        decision=a.decision,
        reason=a.reason,
        by=a.by,
        at=a.at,
        metrics=a.metrics,
        evaluations=[evaluation_from_ref(r) for r in a.evaluations or [] if isinstance(r, dict)],
    )


# -- versions ---------------------------------------------------------------------------------


def version_view(s: Session, v: ModelVersion, model: Model | None = None) -> VersionView:
    return version_views(s, [(v, model or s.get(Model, v.model_id))])[0]


def version_views(s: Session, rows: Sequence[tuple[ModelVersion, Model]]) -> list[VersionView]:
    """The views of versions (each with its model), in the order given."""
    out: list[VersionView] = []
    for start in range(0, len(rows), BATCH):
        out.extend(_version_batch(s, rows[start : start + BATCH]))
    return out


def _version_batch(s: Session, rows: Sequence[tuple[ModelVersion, Model]]) -> list[VersionView]:
    versions = [v for v, _ in rows]
    ids = [v.id for v in versions]
    project_ids = {m.project_id for _, m in rows}
    projects = {
        p.id: p for p in s.exec(select(Project).where(col(Project.id).in_(project_ids))).all()
    }
    dataset_ids = {v.dataset_id for v in versions if v.dataset_id}
    datasets = {
        d.id: d.name for d in s.exec(select(Dataset).where(col(Dataset.id).in_(dataset_ids))).all()
    }
    histories = metrics_histories(s, versions)
    runs = _statistics_runs(s, ids)
    last_jobs = _last_jobs(s, ids)
    job_ids = [v.job_id for v in versions if v.job_id]
    makers = dict(s.exec(select(Job.id, Job.actor).where(col(Job.id).in_(job_ids))).all())
    dirty = [
        v.job_id for v in versions if v.job_id and (v.code_fingerprint or "").endswith("+dirty")
    ]
    diffs = _code_diffs(s, dirty)
    approvals = {
        a.version_id: a
        for a in s.exec(
            select(Approval).where(
                col(Approval.id).in_(
                    select(func.max(Approval.id))
                    .where(col(Approval.version_id).in_(ids))
                    .group_by(Approval.version_id)
                )
            )
        ).all()
    }
    metas: dict[str, dict[str, Any]] = {}
    out = []
    for v, model in rows:
        project = projects[model.project_id]
        if model.id not in metas:
            metas[model.id] = model_meta(project.repo, model.name) if model.kind == "code" else {}
        meta = metas[model.id]
        history = histories[v.id]
        # Judged on an evaluation (not on whatever was recorded last); before any, the
        # training's own metrics show, with the dataset they came from.
        shown = judged_evaluation(history, meta.get("judged_on")) or (
            history[-1] if history else None
        )
        metric_name = meta.get("metric")
        approval = approvals.get(v.id)
        out.append(
            VersionView(
                id=v.id,
                project=project.name,
                model=model.name,
                number=v.number,
                status=v.status,
                metrics=dict(shown.metrics) if shown else {},
                statistics=runs.get(v.id, []),
                approval=approval_view(approval) if approval else None,
                created_at=v.created_at,
                job_id=v.job_id,
                dataset=datasets.get(v.dataset_id) if v.dataset_id else None,
                hyperparameters=dict(v.hyperparameters or {}),
                code_fingerprint=v.code_fingerprint,
                source=dict(v.source or {}),
                model_kind=model.kind,
                metrics_from=shown,
                metric=metric_name if isinstance(metric_name, str) and metric_name else None,
                last_job=last_jobs.get(v.id),
                columns=dict(v.columns) if v.columns else None,
                made_by=makers.get(v.job_id) if v.job_id else None,
                code_diff=diffs.get(v.job_id) if v.job_id else None,
            )
        )
    return out


def _code_diffs(s: Session, job_ids: list[str]) -> dict[str, str]:
    """Where the trainings ``job_ids`` kept their model folder's uncommitted changes (the
    path their ``code_diff`` event names), by job."""
    if not job_ids:
        return {}
    rows = s.exec(
        select(JobEvent.job_id, JobEvent.details).where(
            col(JobEvent.job_id).in_(job_ids), JobEvent.kind == JobEventKind.code_diff.value
        )
    ).all()
    return {job_id: str(details["path"]) for job_id, details in rows if details.get("path")}


def _statistics_runs(s: Session, ids: list[str]) -> dict[str, list[StatisticsRunView]]:
    runs: dict[str, list[StatisticsRunView]] = {}
    for version_id, job_id, dataset_id, at, n, name in s.exec(
        select(
            StatisticsRecord.version_id,
            StatisticsRecord.job_id,
            StatisticsRecord.dataset_id,
            StatisticsRecord.at,
            StatisticsRecord.rows,
            Dataset.name,
        )
        .outerjoin(Dataset, col(Dataset.id) == StatisticsRecord.dataset_id)
        .where(col(StatisticsRecord.version_id).in_(ids))
        .order_by(col(StatisticsRecord.id))
    ).all():
        runs.setdefault(version_id, []).append(
            StatisticsRunView(job_id=job_id, dataset_id=dataset_id, dataset=name, at=at, rows=n)
        )
    return runs


def _last_jobs(s: Session, ids: list[str]) -> dict[str, JobBrief]:
    """Each version's newest job (by creation, then id)."""
    newest = (
        func.row_number()
        .over(
            partition_by=col(Job.version_id),
            order_by=(col(Job.created_at).desc(), col(Job.id).desc()),
        )
        .label("newest")
    )
    ranked = (
        select(Job.version_id, Job.id, Job.type, Job.status, Job.error, Job.created_at, newest)
        .where(col(Job.version_id).in_(ids))
        .subquery()
    )
    c = ranked.c
    return {
        row[0]: JobBrief(*row[1:])
        for row in s.exec(
            select(c.version_id, c.id, c.type, c.status, c.error, c.created_at).where(c.newest == 1)
        ).all()
    }


# -- deployments and jobs ---------------------------------------------------------------------


def deployment_view(
    s: Session, d: Deployment, drift: dict[str, str] | None = None
) -> DeploymentView:
    """A deployment as a view; ``drift`` is the latest drift statuses of a batch of
    deployments (``core.monitoring.store.latest_statuses``), else read for this one."""
    v = s.get(ModelVersion, d.version_id)
    m = s.get(Model, v.model_id)
    p = s.get(Project, d.project_id)
    ds = s.get(Dataset, d.dataset_id)
    last = s.exec(
        select(Job)
        .where(Job.deployment_id == d.id, Job.type == JobType.batch_predict.value)
        .order_by(col(Job.created_at).desc())
        .limit(1)
    ).first()
    last_run = (
        {
            "job": last.id,
            "status": last.status,
            "trigger": last.trigger,
            "at": last.finished_at or last.started_at or last.created_at,
        }
        if last
        else None
    )
    return DeploymentView(
        id=d.id,
        project=p.name,
        version=v.id,
        model=m.name,
        version_number=v.number,
        status=d.status,
        dataset=ds.name if ds else d.dataset_id,
        schedule=d.schedule,
        timezone=d.timezone,
        paused=d.paused,
        next_run_at=d.next_run_at,
        last_run=last_run,
        created_at=d.created_at,
        retired_at=d.retired_at,
        retire_reason=d.retire_reason,
        drift_status=(drift if drift is not None else latest_statuses(s, [d.id])).get(d.id),
    )


def deployment_event_view(r: DeploymentEvent) -> DeploymentEventView:
    return DeploymentEventView(
        deployment_id=r.deployment_id,
        at=r.at,
        kind=r.kind,
        message=r.message,
        details=dict(r.details),
    )


def job_select() -> Any:
    """The rows ``job_view`` converts: a job with its project, model, version number and
    dataset names."""
    return (
        select(Job, Project.name, Model.name, ModelVersion.number, Dataset.name)
        .join(Project, col(Project.id) == Job.project_id)
        .outerjoin(Model, col(Model.id) == Job.model_id)
        .outerjoin(ModelVersion, col(ModelVersion.id) == Job.version_id)
        .outerjoin(Dataset, col(Dataset.id) == Job.dataset_id)
    )


def job_view(row: Any) -> JobView:
    job, project, model, number, dataset = row
    return JobView(
        id=job.id,
        type=job.type,
        status=job.status,
        trigger=job.trigger,
        project=project,
        # An import names its model before the model exists (and when it never does).
        model=model if model or job.type != "import" else (job.params or {}).get("model"),
        version=job.version_id,
        deployment=job.deployment_id,
        actor=job.actor,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        outputs=list(job.outputs or []),
        dataset=dataset,
        version_number=number,
        exit_code=job.exit_code,
        params=dict(job.params or {}),
        host=job.host,
        pid=job.pid,
        **placement(job.executor, job.handle),
    )


def placement(executor: str | None, handle: str | None) -> dict[str, Any]:
    """Where a job runs, from its row: the executor, and for one that is not local its id
    there (``submission_id``) and the resources it asked for (the handle's JSON)."""
    out: dict[str, Any] = {"executor": executor or "local"}
    if out["executor"] == "local" or not handle:
        return out
    try:
        ref = json.loads(handle)
    except ValueError:
        return out
    if isinstance(ref, dict):
        sid = ref.get("submission_id")
        out["submission_id"] = sid if isinstance(sid, str) else None
        asked = ref.get("resources")
        out["resources"] = dict(asked) if isinstance(asked, dict) else {}
    return out


def job_view_by_id(s: Session, job_id: str) -> JobView:
    row = s.exec(job_select().where(Job.id == job_id)).first()
    if row is None:
        raise NotFound(f"unknown job {job_id!r}")
    return job_view(row)


def event_view(e: JobEvent) -> EventView:
    return EventView(
        job_id=e.job_id,
        seq=e.seq,
        at=e.at,
        kind=e.kind,
        message=e.message,
        details=dict(e.details),
    )
