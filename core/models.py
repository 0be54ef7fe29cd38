"""The tables. Only the service and the engine touch these; everyone else gets views."""

from datetime import datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

# Every table's pydantic schema is built when first needed (a validation, a dump), never at
# import: rows are made and read through SQLAlchemy only, so most processes never need it, and
# building the schemas of all 22 tables was a tenth of every command's start.
DEFERRED = ConfigDict(defer_build=True)


def _json(default: Any = None) -> Any:
    return Field(
        default_factory=(lambda: default.copy()) if default is not None else lambda: None,
        sa_column=Column(JSON, nullable=default is None),
    )


class Project(SQLModel, table=True):
    model_config = DEFERRED
    id: str = Field(primary_key=True)
    name: str = Field(unique=True, index=True)
    repo: str
    created_at: datetime
    archived_at: datetime | None = None  # out of the lists (``--all`` shows it); history kept
    # Who may approve or reject its versions: these users only (None: anyone), and never the
    # one who trained or imported the version when ``four_eyes``.
    approvers: list | None = _json()
    four_eyes: bool = False


class ProjectEvent(SQLModel, table=True):
    """A project's own timeline (who changed who may approve, when): append-only."""

    model_config = DEFERRED

    __tablename__ = "project_event"
    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    at: datetime
    by: str
    kind: str
    message: str
    details: dict = _json({})


class Dataset(SQLModel, table=True):
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    name: str
    path: str
    format: str
    target: str | None = None
    rows: int | None = None
    columns: int | None = None
    created_at: datetime
    # The file as it was last seen (registered, or read by a job): rows and columns above.
    sha256: str | None = None
    id_column: str | None = None  # passed through to predictions (else a column named "id")
    archived_at: datetime | None = None  # out of the lists (``--all`` shows it); history kept


class Model(SQLModel, table=True):
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    name: str
    kind: str  # "code" or "byom"
    created_at: datetime


class ModelVersion(SQLModel, table=True):
    model_config = DEFERRED
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "number"),)
    id: str = Field(primary_key=True)
    model_id: str = Field(foreign_key="model.id", index=True)
    number: int
    status: str
    artifact_dir: str
    job_id: str | None = None
    dataset_id: str | None = None
    hyperparameters: dict = _json({})
    code_fingerprint: str | None = None
    source: dict = _json({})
    # The columns it was trained on: {"features": [...], "target": name or None}.
    columns: dict | None = _json()
    created_at: datetime
    updated_at: datetime


class MetricsRecord(SQLModel, table=True):
    """One evaluation's metrics: append-only history of a version."""

    model_config = DEFERRED

    __tablename__ = "metrics_record"
    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_version.id", index=True)
    job_id: str | None = None
    dataset_id: str | None = None
    at: datetime
    metrics: dict = _json({})


class Approval(SQLModel, table=True):
    """An approval or rejection: append-only, kept for audit."""

    model_config = DEFERRED

    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_version.id", index=True)
    job_id: str | None = None
    decision: str
    reason: str
    by: str
    at: datetime
    metrics: dict | None = _json()
    # The evaluations the decision was made on: [{job_id, dataset_id, dataset, at, metrics}].
    evaluations: list | None = _json()


class StatisticsRecord(SQLModel, table=True):
    """One statistics run of a dataset for a version: append-only, never overwritten."""

    model_config = DEFERRED

    __tablename__ = "statistics_record"
    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_version.id", index=True)
    job_id: str | None = None
    dataset_id: str | None = None
    at: datetime
    rows: int | None = None
    statistics: dict = _json({})


class Deployment(SQLModel, table=True):
    model_config = DEFERRED
    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    version_id: str = Field(foreign_key="model_version.id", index=True)
    dataset_id: str = Field(foreign_key="dataset.id")
    status: str
    schedule: str | None = None
    timezone: str = "UTC"
    paused: bool = False
    grace_seconds: int = 3600
    next_run_at: datetime | None = Field(default=None, index=True)
    created_at: datetime
    retired_at: datetime | None = None
    retire_reason: str | None = None
    job_id: str | None = None
    # Drift thresholds of its batch runs' PSI (None: core.monitoring.views' defaults).
    warn_psi: float | None = None
    alert_psi: float | None = None


class DeploymentEvent(SQLModel, table=True):
    """A deployment's own timeline: schedule fires, skips and misses that have no job."""

    model_config = DEFERRED

    __tablename__ = "deployment_event"
    id: int | None = Field(default=None, primary_key=True)
    deployment_id: str = Field(foreign_key="deployment.id", index=True)
    at: datetime
    kind: str
    message: str
    details: dict = _json({})


class Job(SQLModel, table=True):
    model_config = DEFERRED
    __table_args__ = (
        Index("ix_job_project_created", "project_id", "created_at"),
        Index("ix_job_status_created", "status", "created_at"),
        Index("ix_job_project_status", "project_id", "status"),
        Index("ix_job_model_created", "model_id", "created_at"),  # a model's last job
    )
    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id")
    type: str
    status: str
    trigger: str = "manual"
    actor: str
    model_id: str | None = None
    version_id: str | None = Field(default=None, index=True)
    deployment_id: str | None = Field(default=None, index=True)
    dataset_id: str | None = None
    params: dict = _json({})
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    outputs: list = _json([])
    exit_code: int | None = None
    host: str | None = None
    pid: int | None = None
    pgid: int | None = None
    proc_start: float | None = None
    # Where its code runs (core.engine.executor.EXECUTORS) and what that executor needs to
    # find it again after an engine restart.
    executor: str = Field(default="local", sa_column_kwargs={"server_default": "local"})
    handle: str | None = None
    engine_id: str | None = None
    stop_requested_at: datetime | None = None
    next_seq: int = 1
    events_offset: int = 0


class JobEvent(SQLModel, table=True):
    """Append-only timeline of a job."""

    model_config = DEFERRED

    __tablename__ = "job_event"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True)
    seq: int
    at: datetime
    kind: str
    message: str
    details: dict = _json({})


class EngineLease(SQLModel, table=True):
    """Who dispatches jobs and fires schedules for this database."""

    model_config = DEFERRED

    __tablename__ = "engine_lease"
    name: str = Field(primary_key=True)
    owner: str
    host: str
    pid: int
    heartbeat_at: datetime
    expires_at: datetime


class EngineHeartbeat(SQLModel, table=True):
    """An engine's heartbeat: a row per engine process, renewed every few seconds."""

    model_config = DEFERRED

    __tablename__ = "engine_heartbeat"
    id: str = Field(primary_key=True)
    host: str = Field(index=True)
    pid: int
    workers: int
    running: int
    version: str
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None = None


class LogChunk(SQLModel, table=True):
    """A piece of a job's log copied from its host's file: append-only, in byte order."""

    model_config = DEFERRED

    __tablename__ = "log_chunk"
    job_id: str = Field(foreign_key="job.id", primary_key=True)
    seq: int = Field(primary_key=True)
    start: int = Field(sa_column=Column(BigInteger, nullable=False))  # its first byte's offset
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Setting(SQLModel, table=True):
    """A setting of the whole database (every host reads it): ``artifacts``, ..."""

    model_config = DEFERRED

    key: str = Field(primary_key=True)
    value: str
    updated_at: datetime


# The alert tables live with the alerts (``core.alerts.tables``); imported here so that the
# schema is whole wherever the tables are.
from core.alerts import tables as _alert_tables  # noqa: E402, F401
from core.monitoring import tables as _monitoring_tables  # noqa: E402, F401  (its tables)
