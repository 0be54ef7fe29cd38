"""What ran when: the deployments active at a moment, each with where it came from (the
version, the dataset and code it was trained from, who approved it, when, why and on which
numbers, who deployed it), and a project's timeline of approvals, deployments, retirements
and changes of who may approve. Read-only; plain frozen views out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core import convert, lookup
from core.clock import utc
from core.errors import ModelDeckError
from core.lifecycle import JobStatus, JobType
from core.models import (
    Approval,
    Dataset,
    Deployment,
    DeploymentEvent,
    Job,
    Model,
    ModelVersion,
    Project,
    ProjectEvent,
)
from core.store import Store
from core.team import POLICY_CHANGED
from core.text import quoted
from core.views import ApprovalView, _View


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-11-28T09:30``, ``2026-11-28 09:30:00+01:00``, ``...Z``, or a
    date: its midnight); without a zone it is UTC. Refused with one line otherwise."""
    given = (text or "").strip()
    try:
        when = datetime.fromisoformat(given)
        # In UTC it may fall outside the years 1-9999 (0001-01-01T00:00+01:00).
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ModelDeckError(
            f"--at takes an ISO 8601 time such as 2026-11-28T09:30Z or 2026-11-28T10:30+01:00 "
            f"(UTC when it has no zone) in the years 1 to 9999, not {quoted(given)}"
        ) from None


@dataclass(frozen=True)
class TrainedFrom(_View):
    """Where a version came from: its training (or import) job, who ran it, the dataset
    file it read (name, sha256 and rows as the job read them) and the code's fingerprint."""

    job_id: str | None
    by: str | None
    at: datetime | None
    how: str  # "trained" or "imported"
    dataset: str | None
    dataset_sha256: str | None
    dataset_rows: int | None
    code_fingerprint: str | None
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActiveDeployment(_View):
    """A deployment that was active at the moment asked about, and its provenance."""

    id: str
    project: str
    model: str
    version: str
    version_number: int
    scores: str | None  # the dataset its batch predictions score
    schedule: str | None
    timezone: str
    deployed_at: datetime
    deployed_by: str | None
    trained: TrainedFrom
    approval: ApprovalView | None  # the approval it was deployed on
    status: str  # now
    retired_at: datetime | None = None
    retired_by: str | None = None
    retire_reason: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version_number}"


@dataclass(frozen=True)
class TimelineEntry(_View):
    """One step of a project's history: ``approved``, ``rejected``, ``deployed``,
    ``retired`` or ``rules`` (who may approve changed)."""

    at: datetime
    kind: str
    by: str | None
    text: str  # the reason, or what changed
    model: str | None = None
    version: str | None = None
    version_number: int | None = None
    deployment: str | None = None
    job_id: str | None = None

    @property
    def target(self) -> str:
        if self.model is None:
            return "-"
        return f"{self.model} v{self.version_number}"


# The order of entries at the same instant: a version is approved before it is deployed.
_ORDER = {"rules": 0, "rejected": 1, "approved": 1, "retired": 2, "deployed": 3}


class History:
    """``deck.history``: a project's past, as of a moment or as a timeline."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def at(self, project: str, when: datetime) -> list[ActiveDeployment]:
        """The project's deployments active at ``when`` (deployed at or before it, not
        retired by then), oldest first; to the millisecond, as times are shown (JSON's
        ``...26.690Z`` is a deployment's time, kept to the microsecond: it is active then)."""
        when = utc(when) or when
        # The first moment of the next millisecond: what happened before it happened "at" it.
        try:
            edge = when.replace(microsecond=when.microsecond // 1000 * 1000)
            edge += timedelta(milliseconds=1)
        except OverflowError:  # the calendar's last millisecond
            edge = datetime.max.replace(tzinfo=UTC)
        with self.store.reader() as s:
            p = lookup.project(s, project)
            rows = s.exec(
                select(Deployment)
                .where(
                    Deployment.project_id == p.id,
                    col(Deployment.created_at) < edge,
                    or_(col(Deployment.retired_at).is_(None), col(Deployment.retired_at) >= edge),
                )
                .order_by(col(Deployment.created_at), col(Deployment.id))
            ).all()
            return [self._active(s, p, d, when) for d in rows]

    def _active(self, s: Session, p: Project, d: Deployment, when: datetime) -> ActiveDeployment:
        v = s.get(ModelVersion, d.version_id)
        m = s.get(Model, v.model_id)
        deploy_job = s.get(Job, d.job_id) if d.job_id else None
        scores = s.get(Dataset, d.dataset_id)
        approval = s.exec(
            select(Approval)
            .where(
                Approval.version_id == v.id,
                Approval.decision == "approved",
                col(Approval.at) <= d.created_at,
            )
            .order_by(col(Approval.id).desc())
        ).first()
        schedule, timezone = _schedule_at(s, d, when)  # as it was then
        retire_job = s.exec(
            select(Job).where(
                Job.deployment_id == d.id,
                Job.type == JobType.retire.value,
                Job.status == JobStatus.completed.value,
            )
        ).first()
        return ActiveDeployment(
            id=d.id,
            project=p.name,
            model=m.name,
            version=v.id,
            version_number=v.number,
            scores=scores.name if scores else None,
            schedule=schedule,
            timezone=timezone,
            deployed_at=d.created_at,
            deployed_by=deploy_job.actor if deploy_job else None,
            trained=self._trained(s, v, m),
            approval=convert.approval_view(approval) if approval else None,
            status=d.status,
            retired_at=d.retired_at,
            retired_by=retire_job.actor if retire_job and d.retired_at else None,
            retire_reason=d.retire_reason,
        )

    @staticmethod
    def _trained(s: Session, v: ModelVersion, m: Model) -> TrainedFrom:
        job = s.get(Job, v.job_id) if v.job_id else None
        read = dict((job.params or {}).get("dataset_file") or {}) if job else {}
        ds = s.get(Dataset, v.dataset_id) if v.dataset_id else None
        return TrainedFrom(
            job_id=v.job_id,
            by=job.actor if job else None,
            at=(job.finished_at or job.created_at) if job else v.created_at,
            how="imported" if m.kind == "byom" else "trained",
            dataset=ds.name if ds else None,
            dataset_sha256=read.get("sha256"),
            dataset_rows=read.get("rows"),
            code_fingerprint=v.code_fingerprint or (v.source or {}).get("sha256"),
            hyperparameters=dict(v.hyperparameters or {}),
        )

    def timeline(self, project: str) -> list[TimelineEntry]:
        """The project's approvals and rejections, deployments, retirements and changes of
        who may approve, oldest first."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
            out = self._decisions(s, p) + self._deployments(s, p) + self._rules(s, p)
        return sorted(out, key=lambda e: (utc(e.at), _ORDER.get(e.kind, 9)))

    @staticmethod
    def _decisions(s: Session, p: Project) -> list[TimelineEntry]:
        rows = s.exec(
            select(Approval, ModelVersion, Model)
            .join(ModelVersion, col(ModelVersion.id) == Approval.version_id)
            .join(Model, col(Model.id) == ModelVersion.model_id)
            .where(Model.project_id == p.id)
        ).all()
        return [
            TimelineEntry(
                at=a.at,
                kind=a.decision,
                by=a.by,
                text=a.reason,
                model=m.name,
                version=v.id,
                version_number=v.number,
                job_id=a.job_id,
            )
            for a, v, m in rows
        ]

    @staticmethod
    def _deployments(s: Session, p: Project) -> list[TimelineEntry]:
        rows = s.exec(
            select(Deployment, ModelVersion, Model)
            .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
            .join(Model, col(Model.id) == ModelVersion.model_id)
            .where(Deployment.project_id == p.id)
        ).all()
        jobs = {
            j.id: j
            for j in s.exec(
                select(Job).where(
                    Job.project_id == p.id,
                    col(Job.type).in_([JobType.deploy.value, JobType.retire.value]),
                    Job.status == JobStatus.completed.value,
                )
            ).all()
        }
        retired_by = {j.deployment_id: j for j in jobs.values() if j.type == JobType.retire.value}
        out: list[TimelineEntry] = []
        for d, v, m in rows:
            ds = s.get(Dataset, d.dataset_id)
            deploy = jobs.get(d.job_id or "")
            cron, zone = _schedule_at(s, d, d.created_at)  # as deployed: later changes aside
            schedule = f", schedule {cron} ({zone})" if cron else ""
            common = {
                "model": m.name,
                "version": v.id,
                "version_number": v.number,
                "deployment": d.id,
            }
            out.append(
                TimelineEntry(
                    at=d.created_at,
                    kind="deployed",
                    by=deploy.actor if deploy else None,
                    text=f"scores {ds.name if ds else d.dataset_id}{schedule}",
                    job_id=d.job_id,
                    **common,
                )
            )
            if d.retired_at is not None:
                retire = retired_by.get(d.id)
                out.append(
                    TimelineEntry(
                        at=d.retired_at,
                        kind="retired",
                        by=retire.actor if retire else None,
                        text=d.retire_reason or "",
                        job_id=retire.id if retire else None,
                        **common,
                    )
                )
        return out

    @staticmethod
    def _rules(s: Session, p: Project) -> list[TimelineEntry]:
        rows = s.exec(
            select(ProjectEvent)
            .where(ProjectEvent.project_id == p.id, ProjectEvent.kind == POLICY_CHANGED)
            .order_by(col(ProjectEvent.id))
        ).all()
        return [TimelineEntry(at=r.at, kind="rules", by=r.by, text=r.message) for r in rows]


def _schedule_at(s: Session, d: Deployment, when: datetime) -> tuple[str | None, str]:
    """The deployment's schedule and zone as they were at ``when``: as it was created, then
    changed by ``schedule`` (its timeline's events); its present ones when it has no
    timeline to read them from."""
    events = s.exec(
        select(DeploymentEvent)
        .where(
            DeploymentEvent.deployment_id == d.id,
            col(DeploymentEvent.kind).in_(["created", "schedule_changed"]),
            col(DeploymentEvent.at) <= when,
        )
        .order_by(col(DeploymentEvent.at), col(DeploymentEvent.id))
    ).all()
    if not events or events[0].kind != "created":
        return d.schedule, d.timezone or "UTC"
    cron, zone = events[0].details.get("schedule"), events[0].details.get("timezone") or "UTC"
    for e in events[1:]:
        cron = e.details.get("schedule", cron)
        zone = e.details.get("timezone", zone)
    return cron, zone
