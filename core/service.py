"""The one door into modeldeck: verbs that the CLI and the TUI call, returning plain views.

Every verb that changes something either refuses with a ModelDeckError (nothing changed) or
queues a job; the engine does the work. Rules come from ``core.lifecycle``.

``Deck`` is a facade: it owns the store's plumbing, the warnings and the settling of ended
jobs, and hands each verb to the module that has one reason to change for it:

- ``core.queries`` / ``core.job_queries``: what is read (registry views; jobs, logs);
- ``core.commands``: what changes (catalog, job verbs by subject, job control);
- ``core.lookup`` (references to rows), ``core.convert`` (rows to views), ``core.fit``
  (dataset columns against a version), ``core.repo`` (repository and file facts) and
  ``core.inputs`` (text rules), which those share.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from core.alerts.service import Alerts
from core.clock import Clock
from core.commands.build import IMPORT_FORMATS, Build
from core.commands.catalog import Catalog
from core.commands.control import Control
from core.commands.deployments import Deployments
from core.commands.submit import Submitter
from core.commands.version_jobs import VersionJobs
from core.history import History
from core.home import writable
from core.hosts import Hosts
from core.inputs import (
    MAX_OVERRIDE_DEPTH,
    NAME_RULE,
    check_name,
    is_utf8,
    name_problem,
    parse_overrides,
    require_utf8,
)
from core.job_queries import JobQueries
from core.lifecycle import ACTIVE_STATUSES, FINAL_STATUSES, JobType
from core.logs import LogIndex
from core.models import Job
from core.monitoring.service import Monitoring
from core.queries import Queries
from core.repo import code_fingerprint, dataset_columns, dataset_shape, file_sha256, git_diff
from core.store import Store
from core.team import TeamService
from core.views import (
    DatasetView,
    DeploymentEventView,
    DeploymentView,
    EventView,
    JobView,
    LastChoice,
    LeaseView,
    MetricsView,
    ModelView,
    PredictionsView,
    ProjectView,
    VersionDetail,
    VersionView,
)

__all__ = [  # what other modules have imported from here, kept importable
    "IMPORT_FORMATS",
    "MAX_OVERRIDE_DEPTH",
    "NAME_RULE",
    "Deck",
    "check_name",
    "code_fingerprint",
    "dataset_columns",
    "dataset_shape",
    "file_sha256",
    "git_diff",
    "is_utf8",
    "name_problem",
    "parse_overrides",
    "require_utf8",
]


class Deck:
    """modeldeck's service API over one database and data home."""

    def __init__(
        self,
        home: str | Path | None = None,
        db: str | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        create: bool = True,
    ) -> None:
        """``create=False``: refuse a data home without a database instead of making one
        (see ``Store``)."""
        self.store = store or Store(home, db, clock, create=create)
        self._warning_listeners: list[Callable[[str], None]] = []
        self.warnings: list[str] = []
        self._settle_lock = threading.Lock()
        self._settled_at: float | None = None
        self._settler: Any = None
        self._catalog = Catalog(self.store, self.warn)
        self._queries = Queries(self.store, self._catalog)
        self._job_queries = JobQueries(self.store)
        self._submit = Submitter(self.store)
        self._build = Build(self._submit, self._catalog)
        self._version_jobs = VersionJobs(self._submit, self.warn)
        self._deployments = Deployments(self._submit)
        self._control = Control(self.store, self.settle)
        self.alerts = Alerts(self.store)  # deck.alerts.add/list/remove/test/log
        self.team = TeamService(self.store)  # who is asking, who may approve
        self.history = History(self.store)  # what ran when
        self.hosts = Hosts(self.store)  # engines, shared settings, logs across hosts
        self.monitoring = Monitoring(self.store, self.settle)  # drift, baselines, performance

    # -- plumbing: the store's ---------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.store.home

    @property
    def db_url(self) -> str:
        return self.store.db_url

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (not modeldeck's job engine)."""
        return self.store.engine

    @property
    def clock(self) -> Clock:
        return self.store.clock

    @property
    def jobs_dir(self) -> Path:
        return self.store.jobs_dir

    @property
    def artifacts_dir(self) -> Path:
        return self.store.artifacts_dir

    def now(self) -> datetime:
        return self.store.now()

    def reader(self) -> Session:
        return self.store.reader()

    def writer(self) -> Session:
        return self.store.writer()

    def on_warning(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(message)`` for each warning (once per message): something was
        skipped that the user should know about. Warnings are also kept in ``warnings``."""
        self._warning_listeners.append(callback)

    def warn(self, message: str) -> None:
        if message in self.warnings:
            return
        self.warnings.append(message)
        for listener in list(self._warning_listeners):
            listener(message)

    def close(self) -> None:
        self.store.close()

    def job_dir(self, job_id: str) -> Path:
        return self.store.job_dir(job_id)

    def log_path(self, job_id: str) -> Path:
        return self.store.log_path(job_id)

    # -- projects and datasets: core.commands.catalog, core.queries -------------------------

    def projects(self, include_archived: bool = False) -> list[ProjectView]:
        """The projects; archived ones only with ``include_archived``."""
        self.settle()
        return self._queries.projects(include_archived)

    def project(self, ref: str) -> ProjectView:
        self.settle()
        return self._queries.project(ref)

    def add_project(self, name: str, repo: str | Path) -> ProjectView:
        return self.project(self._catalog.add_project(name, repo))

    def archive_project(self, project: str, archived: bool = True) -> ProjectView:
        """Take a project out of the lists (``archived=False`` puts it back). Its history,
        models, datasets and deployments stay as they are; it is still found by name."""
        return self._catalog.archive_project(project, archived)

    def datasets(self, project: str, include_archived: bool = False) -> list[DatasetView]:
        """A project's datasets; archived ones only with ``include_archived``."""
        return self._queries.datasets(project, include_archived)

    def add_dataset(
        self,
        project: str,
        name: str,
        path: str | Path,
        target: str | None = None,
        id_column: str | None = None,
    ) -> DatasetView:
        return self._catalog.add_dataset(project, name, path, target, id_column)

    def archive_dataset(self, project: str, name: str, archived: bool = True) -> DatasetView:
        """Take a dataset out of the lists and out of new jobs (``archived=False`` puts it
        back). Jobs that read it keep it; deployments already scoring it go on."""
        return self._catalog.archive_dataset(project, name, archived)

    def training_datasets(self, project: str) -> list[str]:
        """The names of the project's datasets a training can learn from."""
        return self._queries.training_datasets(project)

    def fitting_datasets(self, version: str, job_type: str | JobType) -> list[str]:
        """The names of the datasets a ``job_type`` job on the version would be given."""
        return self._queries.fitting_datasets(version, job_type)

    def last_choice(self, project: str, model: str, job_type: str | JobType) -> LastChoice:
        """What was chosen for the model's latest ``job_type`` job (any outcome)."""
        return self._queries.last_choice(project, model, job_type)

    # -- models, versions, deployments: core.queries ----------------------------------------

    def models(self, project: str) -> list[ModelView]:
        self.settle()
        return self._queries.models(project)

    def model_defaults(self, project: str, model: str) -> dict[str, Any]:
        """The default hyperparameters of a code model (its config.json); {} when none."""
        return self._queries.model_defaults(project, model)

    def versions(self, project: str, model: str | None = None) -> list[VersionView]:
        self.settle()
        return self._queries.versions(project, model)

    def version(self, ref: str) -> VersionView:
        self.settle()
        return self._queries.version(ref)

    def version_detail(self, ref: str) -> VersionDetail:
        self.settle()
        return self._queries.version_detail(ref)

    def evaluation(self, version: str) -> MetricsView | None:
        """The evaluation a version is judged on now: what approve and reject refer to
        when they are given none."""
        return self._queries.evaluation(version)

    def deployments(self, project: str) -> list[DeploymentView]:
        self.settle()
        return self._queries.deployments(project)

    def deployment(self, ref: str) -> DeploymentView:
        self.settle()
        return self._queries.deployment(ref)

    def deployment_events(self, ref: str, limit: int = 200) -> list[DeploymentEventView]:
        return self._queries.deployment_events(ref, limit)

    def change_marker(self) -> tuple[int, ...]:
        """A cheap marker that changes whenever anything a screen shows may have changed."""
        return self._queries.change_marker()

    # -- submitting jobs: core.commands ------------------------------------------------------

    def queue_job(self, s: Session, job_type: JobType, project_id: str, **fields: Any) -> Job:
        """Add a queued job and its ``created`` event to the session (see ``queued_job_rows``)."""
        return self._submit.queue_job(s, job_type, project_id, **fields)

    def train(
        self,
        project: str,
        model: str,
        dataset: str,
        overrides: dict[str, Any] | None = None,
    ) -> JobView:
        return self._build.train(project, model, dataset, overrides)

    def import_model(
        self,
        project: str,
        model: str,
        source: str,
        fmt: str | None = None,
        again: bool = False,
    ) -> JobView:
        """Queue an import of a BYOM file (see ``Build.import_model``)."""
        return self._build.import_model(project, model, source, fmt, again)

    def evaluate(self, version: str, dataset: str) -> JobView:
        return self._version_jobs.evaluate(version, dataset)

    def compute_stats(self, version: str, dataset: str) -> JobView:
        return self._version_jobs.compute_stats(version, dataset)

    def approve(
        self, version: str, reason: str, evaluations: Sequence[str] | None = None
    ) -> JobView:
        """Approve an evaluated version on the evaluations given (job ids or prefixes), by
        default the one it is judged on (``evaluation``); the approval records them."""
        return self._version_jobs.approve(version, reason, evaluations)

    def reject(
        self, version: str, reason: str, evaluations: Sequence[str] | None = None
    ) -> JobView:
        return self._version_jobs.reject(version, reason, evaluations)

    def deploy(
        self,
        version: str,
        dataset: str,
        schedule: str | None = None,
        timezone: str | None = None,
    ) -> JobView:
        return self._version_jobs.deploy(version, dataset, schedule, timezone)

    def retire(self, deployment: str, reason: str | None = None) -> JobView:
        """Retire a deployment; the reason (optional) is kept on it and in its events."""
        return self._deployments.retire(deployment, reason)

    def predict(self, deployment: str) -> JobView:
        """Run now: queue a manual batch prediction of an active deployment."""
        return self._deployments.predict(deployment)

    def rerun(self, job_id: str) -> JobView:
        """Queue a job of the same type with the same inputs."""
        from core import kinds  # the registry knows each kind's verb (and imports the effects)

        return kinds.rerun(self, self.job(job_id))

    # -- schedules: core.commands.deployments -------------------------------------------------

    def set_schedule(
        self,
        deployment: str,
        cron_expr: str | None = None,
        timezone: str | None = None,
        paused: bool | None = None,
    ) -> DeploymentView:
        """Change, pause or resume a deployment's schedule; the next run is recomputed."""
        return self._deployments.set_schedule(deployment, cron_expr, timezone, paused)

    def preview_schedule(
        self, expr: str, timezone: str | None, n: int = 5, after: datetime | None = None
    ) -> list[datetime]:
        return self._deployments.preview_schedule(expr, timezone, n, after)

    # -- jobs: core.job_queries, core.commands.control ----------------------------------------

    def jobs(
        self,
        project: str | None = None,
        status: str | Iterable[str] | None = None,
        job_type: str | None = None,
        limit: int = 50,
        offset: int = 0,
        text: str | None = None,
        deployment: str | None = None,
    ) -> list[JobView]:
        """Jobs, newest first, a window at a time."""
        self.settle()
        return self._job_queries.jobs(project, status, job_type, limit, offset, text, deployment)

    def count_jobs(
        self,
        project: str | None = None,
        status: str | Iterable[str] | None = None,
        job_type: str | None = None,
        text: str | None = None,
        deployment: str | None = None,
    ) -> int:
        self.settle()
        return self._job_queries.count_jobs(project, status, job_type, text, deployment)

    def job(self, ref: str) -> JobView:
        self.settle()
        return self._job_queries.job(ref)

    def events(self, job: str, after_seq: int = 0) -> list[EventView]:
        self.settle()
        return self._job_queries.events(job, after_seq)

    def predictions(self, job: str, rows: int = 10) -> PredictionsView:
        """The head of a batch prediction's ``predictions.csv`` and its scorer's summary."""
        return self._job_queries.predictions(job, rows)

    def stop(self, job: str, reason: str = "stopped by user") -> JobView:
        """Cancel a queued job at once; ask the engine to stop a running one."""
        return self._control.stop(job, reason)

    def stop_all(self, project: str) -> list[JobView]:
        """Stop every queued or running job of a project."""
        return self._control.stop_all(project)

    def wait(self, job: str, timeout: float | None = None, poll: float = 0.1) -> JobView:
        """Block until the job is final (or ``timeout`` passes); the job as it is then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        view = self.job(job)
        while view.status not in FINAL_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(poll)
            view = self.job(view.id)
        return view

    def tail_log(self, job_id: str, offset: int = 0, final: bool = False) -> tuple[list[str], int]:
        """Complete log lines from byte ``offset`` on, and the offset after them."""
        return self._job_queries.tail_log(job_id, offset, final)

    def log_index(self, job_id: str) -> LogIndex:
        """A line index of a job's log for reading any window of it (kept per job)."""
        return self._job_queries.log_index(job_id)

    def read_log(self, job_id: str, start: int = 0, count: int = 1000) -> list[str]:
        return self._job_queries.read_log(job_id, start, count)

    # -- engine lease ---------------------------------------------------------------------

    def settle(self, every: float = 1.0) -> None:
        """While no engine serves the database, record the outcome of this host's jobs whose
        process has ended and whose engine has gone: the recovery an engine does when it
        takes the lease, so that no read shows a finished job as still running. Jobs still
        running are left alone (the next engine adopts them). Reads call it, at most once
        every ``every`` seconds."""
        if not self._settle_lock.acquire(blocking=False):
            return  # another thread (or this one, further up) is at it
        try:
            mono = time.monotonic()
            if self._settled_at is not None and mono - self._settled_at < every:
                return
            self._settled_at = mono
            if self.serving_engine() is not None:
                return  # its engine records outcomes
            if not writable(self.home):
                return  # a read-only data home (or database) is only read
            with self.store.reader() as s:
                active = s.exec(
                    select(Job.id).where(col(Job.status).in_(list(ACTIVE_STATUSES))).limit(1)
                ).first()
            if active is None:
                return
            if self._settler is None:
                from core.engine import Engine  # the engine's own recovery, not a copy of it

                self._settler = Engine(self, lease=False, schedules=False, fork_server=False)
            # One reader's recovery at a time across processes: two at once could each end
            # part of a job (one kill its leftovers, the other record its end) and the
            # timeline would miss what was killed. The next one finds the job recorded.
            with open(self.home / "recovery.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._settler.recover_ended()
        finally:
            self._settle_lock.release()

    def serving_engine(self) -> LeaseView | None:
        """The engine that holds the lease now, or None when no live engine serves."""
        return self.store.serving_engine()
