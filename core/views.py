"""Plain frozen data handed to the CLI and the TUI; never ORM rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.clock import iso


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _View:
    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class ProjectView(_View):
    id: str
    name: str
    repo: str
    created_at: datetime
    archived_at: datetime | None = None
    models: int = 0
    active_deployments: int = 0
    running_jobs: int = 0
    failed_jobs: int = 0
    approvers: list[str] = field(default_factory=list)  # who may decide (empty: anyone)
    four_eyes: bool = False  # nobody decides on a version they trained or imported
    drifting: int = 0  # active deployments whose latest drift run is warn or alert


@dataclass(frozen=True)
class WhoView(_View):
    """The authenticated user and what vouches for them: ``os`` (this machine's login, on
    SQLite) or ``database`` (the role a database server authenticated)."""

    user: str
    via: str


@dataclass(frozen=True)
class TeamView(_View):
    """Who may approve or reject a project's versions."""

    project: str
    approvers: list[str] = field(default_factory=list)  # empty: anyone
    four_eyes: bool = False

    def describe(self) -> str:
        """``four eyes; approvers ana, bo`` / ``no four eyes; approvers anyone`` (the short
        part first: a narrow column cuts the end of a long list of names)."""
        who = ", ".join(self.approvers) if self.approvers else "anyone"
        return f"{'four eyes' if self.four_eyes else 'no four eyes'}; approvers {who}"


@dataclass(frozen=True)
class DatasetView(_View):
    id: str
    project: str
    name: str
    path: str
    format: str
    target: str | None
    rows: int | None
    columns: int | None
    created_at: datetime
    sha256: str | None = None  # of the file as last seen (registered or read by a job)
    id_column: str | None = None
    archived_at: datetime | None = None


@dataclass(frozen=True)
class ModelView(_View):
    id: str
    project: str
    name: str
    kind: str
    versions: int
    latest_version: int | None
    latest_status: str | None
    deployed_versions: list[int] = field(default_factory=list)  # with an active deployment
    last_job: JobBrief | None = None  # its latest job, of any of its versions or none


@dataclass(frozen=True)
class MetricsView(_View):
    """One metrics record: the job that made it (an evaluation, or the training), the
    dataset it ran on, when, and the numbers."""

    at: datetime
    job_id: str | None
    dataset: str | None
    metrics: dict[str, Any]
    dataset_id: str | None = None
    job_type: str | None = None
    training: bool = False  # on the dataset the version was trained on


@dataclass(frozen=True)
class ApprovalView(_View):
    decision: str
    reason: str
    by: str
    at: datetime
    metrics: dict[str, Any] | None = None
    # The evaluations the decision was made on (empty for decisions recorded before they
    # were kept).
    evaluations: list[MetricsView] = field(default_factory=list)


@dataclass(frozen=True)
class StatisticsRunView(_View):
    """One statistics run of a dataset for a version (the numbers are in StatisticsView)."""

    job_id: str | None
    dataset_id: str | None
    dataset: str | None
    at: datetime
    rows: int | None


@dataclass(frozen=True)
class StatisticsView(StatisticsRunView):
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobBrief(_View):
    id: str
    type: str
    status: str
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class VersionView(_View):
    id: str
    project: str
    model: str
    number: int
    status: str
    metrics: dict[str, Any]
    statistics: list[StatisticsRunView]
    approval: ApprovalView | None
    created_at: datetime
    job_id: str | None
    dataset: str | None
    hyperparameters: dict[str, Any]
    code_fingerprint: str | None
    source: dict[str, Any] = field(default_factory=dict)
    model_kind: str = "code"
    # Where ``metrics`` come from: the evaluation it is judged on, else its training.
    metrics_from: MetricsView | None = None
    metric: str | None = None  # the headline metric its model.json names
    last_job: JobBrief | None = None
    columns: dict[str, Any] | None = None  # {"features": [...], "target": ...} it trained on
    made_by: str | None = None  # who trained or imported it (its job's actor)
    code_diff: str | None = None  # a +dirty training's kept diff: its path (artifact store)

    @property
    def label(self) -> str:
        return f"{self.model} v{self.number}"

    def headline_metric(self) -> tuple[str, float] | None:
        return headline_of(self.metrics, self.metric)


HEADLINE_METRICS = ("accuracy", "f1", "r2", "roc_auc", "rmse", "mae")


def headline_of(metrics: dict[str, Any], preferred: str | None = None) -> tuple[str, float] | None:
    """The headline metric of a metrics record: ``preferred`` (model.json's ``metric``) when
    it is a number there, else the first of accuracy, f1, r2, roc_auc, rmse, mae, else the
    first number."""
    value = metrics.get(preferred) if preferred else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(preferred), float(value)
    for key in HEADLINE_METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float):
            return key, float(value)
    for key, value in metrics.items():
        if isinstance(value, int | float):
            return key, float(value)
    return None


@dataclass(frozen=True)
class VersionDetail(_View):
    version: VersionView
    metrics_history: list[MetricsView]
    approvals: list[ApprovalView]
    lineage: list[JobView]
    artifact_dir: str
    deployments: list[DeploymentView]
    evaluations: list[MetricsView] = field(default_factory=list)
    statistics: list[StatisticsView] = field(default_factory=list)
    # The code its jobs run: "version" (its own copy, made by its training), "repository"
    # (the model folder: trained before versions kept their code) or "builtin" (imported).
    code_source: str = "builtin"
    code_dir: str | None = None


@dataclass(frozen=True)
class DeploymentView(_View):
    id: str
    project: str
    version: str
    model: str
    version_number: int
    status: str
    dataset: str
    schedule: str | None
    timezone: str
    paused: bool
    next_run_at: datetime | None
    last_run: dict[str, Any] | None
    created_at: datetime
    retired_at: datetime | None = None
    retire_reason: str | None = None
    drift_status: str | None = None  # its latest drift run's (ok, warn, alert), if any

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version_number}"

    def unserved_mark(self, serving: bool) -> str:
        """`` (no engine)`` after a next run that will not happen: no engine serves, and
        only an engine fires schedules."""
        active = self.status == "active" and not self.paused and self.next_run_at is not None
        return " (no engine)" if active and not serving else ""

    @property
    def short_id(self) -> str:
        """The prefix and 8 of the 12 hex digits (``dep-3f9a0c1b``), like a job's."""
        prefix, _, digits = self.id.partition("-")
        return f"{prefix}-{digits[:8]}" if digits else self.id


@dataclass(frozen=True)
class JobView(_View):
    id: str
    type: str
    status: str
    trigger: str
    project: str
    model: str | None
    version: str | None
    deployment: str | None
    actor: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    outputs: list[str]
    dataset: str | None = None
    version_number: int | None = None
    exit_code: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    pid: int | None = None
    executor: str = "local"
    submission_id: str | None = None  # its id on its executor (a Ray submission id)
    resources: dict[str, Any] = field(default_factory=dict)  # what it asked its cluster for

    @property
    def short_id(self) -> str:
        """The prefix and 8 of the 12 hex digits: unique enough to read and to type."""
        return self.id[:10]

    @property
    def target(self) -> str:
        if self.type in ("retire", "batch_predict") and self.deployment:
            base = f"{self.model} v{self.version_number}" if self.model else ""
            return f"{base} @{self.deployment[:8]}".strip()
        if self.model and self.version_number is not None:
            return f"{self.model} v{self.version_number}"
        return self.model or "-"

    def duration(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or now) - self.started_at).total_seconds()


@dataclass(frozen=True)
class EventView(_View):
    job_id: str
    seq: int
    at: datetime
    kind: str
    message: str
    details: dict[str, Any]


@dataclass(frozen=True)
class DeploymentEventView(_View):
    deployment_id: str
    at: datetime
    kind: str
    message: str
    details: dict[str, Any]


@dataclass(frozen=True)
class LeaseView(_View):
    owner: str
    host: str
    pid: int
    heartbeat_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class EngineStatus(_View):
    """What an engine in this process is doing, as plain data (the TUI reads only this)."""

    serving: bool  # holds the database's engine lease (dispatches and fires schedules)
    workers: int
    running: tuple[str, ...]  # ids of the jobs it follows


@dataclass(frozen=True)
class PredictionsView(_View):
    """What a batch prediction wrote: the head of ``predictions.csv`` and a summary."""

    job_id: str
    path: str | None  # predictions.csv, or None when the job wrote none
    columns: list[str]
    rows: list[list[str]]  # the first rows, as text
    summary: dict[str, Any] | None  # class counts, or the mean and quantiles
    summary_text: str


@dataclass(frozen=True)
class LastChoice(_View):
    """What was chosen for a model's latest job of a kind: the dataset, and for a deploy
    with a schedule, the time zone (as its deployment has it now)."""

    dataset: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class EngineView(_View):
    """An engine process serving the database, as its heartbeat row tells."""

    id: str
    host: str
    pid: int
    workers: int
    running: int  # jobs it follows that still have a process
    version: str
    started_at: datetime
    last_seen: datetime
    stale: bool  # not seen for a while: stopped without saying so, hung, or its host gone
    # serving, standing by (SQLite: another holds the lease), job command, or stale
    state: str = "serving"


@dataclass(frozen=True)
class EnginesSummary(_View):
    """What the TUI's top bar shows: how many engines serve, and how busy they are."""

    serving: int
    workers: int
    running: int
    stale: int


@dataclass(frozen=True)
class SettingView(_View):
    key: str
    value: str
    updated_at: datetime | None  # None: the default, never set
    default: bool = False
