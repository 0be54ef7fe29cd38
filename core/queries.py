"""What the screens and the CLI read about the registry: projects, datasets, models, versions
and deployments, and the choices a form offers. Read-only, except that a list of a project's
models (or the project itself) registers a model folder that is new in its repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from core import convert, lookup, rawsql
from core.commands.catalog import Catalog
from core.errors import NotFound
from core.evaluations import evaluations, judged_evaluation, metrics_history, model_meta
from core.events import JobEventKind
from core.fit import FIT_CHECKED, fit_of, fit_problem
from core.inputs import require_utf8
from core.lifecycle import DeploymentStatus, JobType
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
    ProjectEvent,
    StatisticsRecord,
)
from core.monitoring.store import drifting_counts, latest_statuses
from core.repo import model_defaults
from core.store import Store
from core.views import (
    DatasetView,
    DeploymentEventView,
    DeploymentView,
    JobBrief,
    LastChoice,
    MetricsView,
    ModelView,
    ProjectView,
    StatisticsView,
    VersionDetail,
    VersionView,
)


def judged(s: Session, v: ModelVersion) -> MetricsView | None:
    """The evaluation a version is judged on now (see ``judged_evaluation``)."""
    model = s.get(Model, v.model_id)
    project = s.get(Project, model.project_id)
    meta = model_meta(project.repo, model.name) if model.kind == "code" else {}
    return judged_evaluation(metrics_history(s, v), meta.get("judged_on"))


_EVENT = JobEvent.__table__
_CODE_USED = sa_select(_EVENT.c.details).where(
    _EVENT.c.job_id == bindparam("job"), _EVENT.c.kind == JobEventKind.code_used.value
)


def kept_its_code(conn: Connection, version: Any) -> bool:
    """Whether the version's training copied its code into the version's files (its
    ``code_used`` event says so). One trained before versions kept theirs has no copy."""
    if not version.job_id:
        return False
    for (details,) in rawsql.run(conn, _CODE_USED, {"job": version.job_id}):
        if isinstance(details, dict) and details.get("pinned"):
            return True
    return False


def version_code(s: Session, v: ModelVersion) -> tuple[str, str | None]:
    """Which code a version's jobs run, as the engine chooses it: its own copy (``code/``
    in its artifacts), else its model's folder in the repository; none for BYOM. A copy
    that is gone is ``gone``: the engine fails its jobs (``core.engine.spec``)."""
    from core.runner import CODE_COPY

    model = s.get(Model, v.model_id)
    if model is None or model.kind != "code":
        return "builtin", None
    own = Path(v.artifact_dir) / CODE_COPY
    if own.is_dir():
        return "version", str(own)
    if kept_its_code(s.connection(), v):
        return "gone", str(own)
    project = s.get(Project, model.project_id)
    return "repository", str(Path(project.repo) / "models" / model.name)


class Queries:
    """Read-only views of a store's registry (the caller settles ended jobs first)."""

    def __init__(self, store: Store, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog

    def projects(self, include_archived: bool = False) -> list[ProjectView]:
        """The projects; archived ones only with ``include_archived``."""
        with self.store.reader() as s:
            stmt = select(Project).order_by(Project.name)
            if not include_archived:
                stmt = stmt.where(col(Project.archived_at).is_(None))
            rows = s.exec(stmt).all()
            drifting = drifting_counts(s, [p.id for p in rows])
            return [self._project_view(s, p, drifting.get(p.id, 0)) for p in rows]

    def project(self, ref: str) -> ProjectView:
        with self.store.reader() as s:
            return self._project_view(s, lookup.project(s, ref))

    def _project_view(self, s: Session, p: Project, drifting: int | None = None) -> ProjectView:
        self.catalog.sync_code_models_read(p)  # a new model folder counts at once
        return convert.project_view(s, p, drifting)

    def datasets(self, project: str, include_archived: bool = False) -> list[DatasetView]:
        """A project's datasets; archived ones only with ``include_archived``."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
            stmt = select(Dataset).where(Dataset.project_id == p.id).order_by(Dataset.name)
            if not include_archived:
                stmt = stmt.where(col(Dataset.archived_at).is_(None))
            return [convert.dataset_view(d, p) for d in s.exec(stmt)]

    def models(self, project: str) -> list[ModelView]:
        """A project's models, each with its versions, the deployed ones and its last job:
        the same few statements for the whole project, however many models it has."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
        self.catalog.sync_code_models_read(p)
        with self.store.reader() as s:
            models = s.exec(
                select(Model).where(Model.project_id == p.id).order_by(Model.name)
            ).all()
            latest = {
                model_id: (int(count), number, status)
                for model_id, count, number, status in s.exec(_latest_versions(p.id))
            }
            deployed: dict[str, list[int]] = {}
            for model_id, number in s.exec(_deployed_numbers(p.id)):
                deployed.setdefault(model_id, []).append(int(number))
            last = {row[0]: JobBrief(*row[1:]) for row in s.exec(_newest_jobs(p.id))}
            out = []
            for m in models:
                count, number, status = latest.get(m.id, (0, None, None))
                out.append(
                    ModelView(
                        id=m.id,
                        project=p.name,
                        name=m.name,
                        kind=m.kind,
                        versions=count,
                        latest_version=number,
                        latest_status=status,
                        deployed_versions=deployed.get(m.id, []),
                        last_job=last.get(m.id),
                    )
                )
            return out

    def model_defaults(self, project: str, model: str) -> dict[str, Any]:
        """The default hyperparameters of a code model (its config.json); {} when none."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
        folder = self.catalog.model_dirs(p.repo).get(model)
        if folder is None:
            return {}
        return model_defaults(folder)

    def versions(self, project: str, model: str | None = None) -> list[VersionView]:
        with self.store.reader() as s:
            p = lookup.project(s, project)
            stmt = select(ModelVersion, Model).join(Model).where(Model.project_id == p.id)
            if model:
                require_utf8(model, "model")
                m = s.exec(
                    select(Model).where(Model.project_id == p.id, Model.name == model)
                ).first()
                if m is None:
                    raise NotFound(f"unknown model {model!r} in project {p.name}")
                stmt = stmt.where(Model.id == m.id)
            stmt = stmt.order_by(Model.name, col(ModelVersion.number).desc())
            return convert.version_views(s, s.exec(stmt).all())

    def version(self, ref: str) -> VersionView:
        with self.store.reader() as s:
            return convert.version_view(s, lookup.version(s, ref))

    def version_detail(self, ref: str) -> VersionDetail:
        with self.store.reader() as s:
            v = lookup.version(s, ref)
            view = convert.version_view(s, v)
            history = metrics_history(s, v)
            stats = [
                StatisticsView(
                    job_id=r.job_id,
                    dataset_id=r.dataset_id,
                    dataset=name,
                    at=r.at,
                    rows=r.rows,
                    columns=dict((r.statistics or {}).get("columns") or {}),
                )
                for r, name in s.exec(
                    select(StatisticsRecord, Dataset.name)
                    .outerjoin(Dataset, col(Dataset.id) == StatisticsRecord.dataset_id)
                    .where(StatisticsRecord.version_id == v.id)
                    .order_by(col(StatisticsRecord.id))
                )
            ]
            approvals = [
                convert.approval_view(a)
                for a in s.exec(
                    select(Approval).where(Approval.version_id == v.id).order_by(col(Approval.id))
                )
            ]
            deployments = s.exec(select(Deployment).where(Deployment.version_id == v.id)).all()
            dep_ids = [d.id for d in deployments]
            conds = [Job.version_id == v.id]
            if v.job_id:
                conds.append(Job.id == v.job_id)
            if dep_ids:
                conds.append(col(Job.deployment_id).in_(dep_ids))
            lineage = [
                convert.job_view(r)
                for r in s.exec(
                    convert.job_select().where(or_(*conds)).order_by(col(Job.created_at))
                )
            ]
            code_source, code_dir = version_code(s, v)
            return VersionDetail(
                version=view,
                metrics_history=history,
                approvals=approvals,
                lineage=lineage,
                artifact_dir=v.artifact_dir,
                deployments=[
                    convert.deployment_view(s, d, drift)
                    for drift in [latest_statuses(s, [d.id for d in deployments])]
                    for d in deployments
                ],
                evaluations=evaluations(history),
                statistics=stats,
                code_source=code_source,
                code_dir=code_dir,
            )

    def deployments(self, project: str) -> list[DeploymentView]:
        with self.store.reader() as s:
            p = lookup.project(s, project)
            rows = s.exec(
                select(Deployment)
                .where(Deployment.project_id == p.id)
                .order_by(Deployment.status, col(Deployment.created_at).desc())
            ).all()
            drift = latest_statuses(s, [d.id for d in rows])
            return [convert.deployment_view(s, d, drift) for d in rows]

    def deployment(self, ref: str) -> DeploymentView:
        with self.store.reader() as s:
            return convert.deployment_view(s, lookup.deployment(s, ref))

    def deployment_events(self, ref: str, limit: int = 200) -> list[DeploymentEventView]:
        with self.store.reader() as s:
            d = lookup.deployment(s, ref)
            rows = s.exec(
                select(DeploymentEvent)
                .where(DeploymentEvent.deployment_id == d.id)
                .order_by(col(DeploymentEvent.id).desc())
                .limit(limit)
            ).all()
            return [convert.deployment_event_view(r) for r in reversed(rows)]

    def fitting_datasets(self, version: str, job_type: str | JobType) -> list[str]:
        """The names of the datasets of the version's project (in name order) that a job of
        ``job_type`` on it would be given, by the checks its submission makes: those whose
        columns fit the version (``evaluate``, ``compute_stats``, ``deploy``), and that have a
        target column (``evaluate``)."""
        job_type = JobType(job_type)
        with self.store.reader() as s:
            v = lookup.version(s, version)
            m = s.get(Model, v.model_id)
            rows = s.exec(
                select(Dataset)
                .where(Dataset.project_id == m.project_id, col(Dataset.archived_at).is_(None))
                .order_by(Dataset.name)
            ).all()
            if job_type not in FIT_CHECKED:
                return [d.name for d in rows]
            fits = [fit_of(s, v, m, d) for d in rows if d.target or job_type != JobType.evaluate]
        # The files are read with the session closed.
        return [f.name for f in fits if Path(f.path).exists() and fit_problem(job_type, f) is None]

    def training_datasets(self, project: str) -> list[str]:
        """The names of the project's datasets a training can learn from: those with a
        target column, in name order."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
            rows = s.exec(
                select(Dataset.name)
                .where(
                    Dataset.project_id == p.id,
                    col(Dataset.target).is_not(None),
                    col(Dataset.archived_at).is_(None),
                )
                .order_by(Dataset.name)
            )
            return list(rows)

    def last_choice(self, project: str, model: str, job_type: str | JobType) -> LastChoice:
        """What was chosen for the model's latest ``job_type`` job (any outcome): its
        dataset; for ``deploy``, the time zone of the latest deploy with a schedule, as its
        deployment has it now. Empty when there is no such job (or model)."""
        job_type = JobType(job_type)
        with self.store.reader() as s:
            p = lookup.project(s, project)
            m = s.exec(select(Model).where(Model.project_id == p.id, Model.name == model)).first()
            if m is None:
                return LastChoice()
            recent = s.exec(
                select(Job)
                .where(Job.model_id == m.id, Job.type == job_type.value)
                .order_by(col(Job.created_at).desc(), col(Job.id).desc())
                .limit(200)
            ).all()
            dataset = next((j.dataset_id for j in recent if j.dataset_id), None)
            ds = s.get(Dataset, dataset) if dataset else None
            zone = None
            scheduled = next(
                (
                    j
                    for j in recent
                    if job_type == JobType.deploy and (j.params or {}).get("schedule")
                ),
                None,
            )
            if scheduled is not None:
                d = s.exec(select(Deployment).where(Deployment.job_id == scheduled.id)).first()
                zone = d.timezone if d is not None else scheduled.params.get("timezone")
            return LastChoice(dataset=ds.name if ds else None, timezone=zone or None)

    def evaluation(self, version: str) -> MetricsView | None:
        """The evaluation a version is judged on now: what approve and reject refer to
        when they are given none."""
        with self.store.reader() as s:
            return judged(s, lookup.version(s, version))

    def change_marker(self) -> tuple[int, ...]:
        """A cheap marker that changes whenever anything a screen shows may have changed:
        job events (every status change makes one), deployment events (schedules), project
        events (who may approve), datasets
        and projects (and how many of them are archived). Polling UIs compare it before they
        fetch anything else."""
        with self.store.reader() as s:
            row = s.exec(
                select(
                    select(func.max(JobEvent.id)).scalar_subquery(),
                    select(func.max(DeploymentEvent.id)).scalar_subquery(),
                    # Who may approve changed (a project's rules): the keys it dims change.
                    select(func.max(ProjectEvent.id)).scalar_subquery(),
                    select(func.count()).select_from(Dataset).scalar_subquery(),
                    select(func.count()).select_from(Project).scalar_subquery(),
                    # Archiving or unarchiving changes which of them the lists show.
                    select(func.count())
                    .select_from(Dataset)
                    .where(col(Dataset.archived_at).is_not(None))
                    .scalar_subquery(),
                    select(func.count())
                    .select_from(Project)
                    .where(col(Project.archived_at).is_not(None))
                    .scalar_subquery(),
                )
            ).one()
            return tuple(int(x or 0) for x in row)


def _latest_versions(project_id: str) -> Any:
    """Per model of the project: its number of versions, and its latest version's number
    and status."""
    counts = (
        select(
            ModelVersion.model_id,
            func.count().label("versions"),
            func.max(ModelVersion.number).label("latest"),
        )
        .where(col(ModelVersion.model_id).in_(_model_ids(project_id)))
        .group_by(col(ModelVersion.model_id))
        .subquery()
    )
    return select(
        counts.c.model_id, counts.c.versions, ModelVersion.number, ModelVersion.status
    ).join(
        ModelVersion,
        (col(ModelVersion.model_id) == counts.c.model_id)
        & (col(ModelVersion.number) == counts.c.latest),
    )


def _deployed_numbers(project_id: str) -> Any:
    """The numbers of the project's versions with an active deployment, by model, in
    order."""
    return (
        select(ModelVersion.model_id, ModelVersion.number)
        .join(Deployment, col(Deployment.version_id) == ModelVersion.id)
        .where(
            col(ModelVersion.model_id).in_(_model_ids(project_id)),
            Deployment.status == DeploymentStatus.active.value,
        )
        .distinct()
        .order_by(ModelVersion.number)
    )


def _newest_jobs(project_id: str) -> Any:
    """Per model of the project: its newest job (id, type, status, error, created). Not a
    window over all of them, as ``convert._last_jobs`` takes for a version's few jobs: a
    model's history can be long, so each model's newest is one look into
    ``ix_job_model_created`` (a correlated subquery)."""
    newest = (
        select(Job.id)
        .where(Job.model_id == Model.id)
        .order_by(col(Job.created_at).desc())
        .limit(1)
        .correlate(Model)
        .scalar_subquery()
    )
    return select(Job.model_id, Job.id, Job.type, Job.status, Job.error, Job.created_at).where(
        col(Job.id).in_(select(newest).where(Model.project_id == project_id))
    )


def _model_ids(project_id: str) -> Any:
    return select(Model.id).where(Model.project_id == project_id)
