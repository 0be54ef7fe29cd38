"""The one door into modeldeck: verbs that the CLI and the TUI call, returning plain views.

Every verb that changes something either refuses with a ModelDeckError (nothing changed) or
queues a job; the engine does the work. Rules come from ``core.lifecycle``.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from core import jobs
from core import schedule as cron
from core.clock import Clock
from core.errors import ModelDeckError, NotFound
from core.evaluations import (
    evaluation_from_ref,
    evaluations,
    judged_evaluation,
    metrics_history,
    model_meta,
)
from core.home import new_id
from core.jobs import queued_job_rows
from core.lifecycle import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    DeploymentStatus,
    JobStatus,
    JobType,
    version_refusal,
)
from core.logs import LogIndex, tail
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
from core.records import (
    actor,
    add_event,
    identical_deployment,
    identical_deployment_message,
    identical_message,
    identical_version,
)
from core.store import Store
from core.text import has_controls, printable
from core.views import (
    ApprovalView,
    DatasetView,
    DeploymentEventView,
    DeploymentView,
    EventView,
    JobBrief,
    JobView,
    LastChoice,
    LeaseView,
    MetricsView,
    ModelView,
    PredictionsView,
    ProjectView,
    StatisticsRunView,
    StatisticsView,
    VersionDetail,
    VersionView,
)

IMPORT_FORMATS = ("joblib", "pickle", "onnx")
MAX_OVERRIDE_DEPTH = 32
NAME_RULE = (
    "non-empty UTF-8 text without spaces, control characters, '/' or '\\', and not '.' or '..'"
)


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored: no lone surrogates (the stand-ins Python uses for
    bytes of a command line or a file name that are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_utf8(text: str, what: str) -> str:
    if not is_utf8(text):
        raise ModelDeckError(f"{what} '{printable(text)}' is not valid UTF-8")
    return text


def _require_utf8_values(params: dict[str, Any]) -> None:
    """Refuse a job whose inputs (a reason, a path, an override) hold text that is not
    UTF-8: the database could not store it, and the job would fail late and obscurely."""
    stack: list[tuple[str, Any]] = list(params.items())
    while stack:
        key, value = stack.pop()
        if isinstance(value, str):
            require_utf8(value, str(key))
        elif isinstance(value, dict):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((key, v) for v in value)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a project, model or dataset, or None. One rule for every
    name: it is shown on screens and never becomes a path."""
    if not name:
        return "is empty"
    if not is_utf8(name):
        return "is not valid UTF-8"
    if name in (".", ".."):
        return "is a path, not a name"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if has_controls(name):
        return "holds a control character"
    if any(c.isspace() for c in name):
        return "holds whitespace"
    return None


def check_name(kind: str, name: str) -> str:
    """``name`` stripped, or a refusal that says which part of the name rule it breaks."""
    name = (name or "").strip()
    problem = name_problem(name)
    if problem:
        raise ModelDeckError(
            f"{kind} name '{printable(name)}' {problem}: a name must be {NAME_RULE}"
        )
    return name


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as standard JSON where they parse, else kept as
    text (so ``NaN``, ``Infinity`` and ``1e999``, which are no JSON numbers, stay text)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ModelDeckError(f"--set wants key=value, got '{printable(pair[:80])}'")
        require_utf8(key, "--set key")
        require_utf8(value, f"--set {key}: the value")
        try:
            parsed = json.loads(value, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise ModelDeckError(
                f"--set {key}: the value nests too deeply "
                f"(at most {MAX_OVERRIDE_DEPTH} levels of lists and objects)"
            ) from None
        except ValueError:  # not JSON (JSONDecodeError is a ValueError): the text itself
            parsed = value
        if _depth(parsed) > MAX_OVERRIDE_DEPTH:
            raise ModelDeckError(
                f"--set {key}: the value nests too deeply "
                f"(at most {MAX_OVERRIDE_DEPTH} levels of lists and objects)"
            )
        out[key] = parsed
    return out


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDeckError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelDeckError(f"{path} must hold a JSON object")
    return data


def code_fingerprint(repo: Path, model_dir: Path) -> str:
    """The git commit when the repo is a git checkout (``+dirty`` when the model has local
    changes), else a sha256 of the model folder's files."""
    return _git_fingerprint(repo, model_dir) or _files_fingerprint(model_dir)


def _git_fingerprint(repo: Path, model_dir: Path) -> str | None:
    if not any((d / ".git").exists() for d in (repo, *repo.parents)):
        return None  # not a checkout: do not pay for starting git

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--", str(model_dir)).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return f"git:{head.stdout.strip()}" + ("+dirty" if dirty else "")


def git_diff(repo: Path, model_dir: Path) -> bytes:
    """The local changes of a model folder in a git checkout: ``git diff HEAD`` of the
    folder, then each untracked file as a new file. Empty when there are none (or no git)."""

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=30)

    try:
        diff = git("diff", "--no-color", "--no-ext-diff", "HEAD", "--", str(model_dir)).stdout
        listed = git("ls-files", "-z", "--others", "--exclude-standard", "--", str(model_dir))
        for name in sorted(n for n in listed.stdout.split(b"\0") if n):
            new = git("diff", "--no-color", "--no-index", "--", os.devnull, os.fsdecode(name))
            diff += new.stdout
    except (OSError, subprocess.TimeoutExpired):
        return b""
    return diff


def _files_fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            # The name's bytes as they are: a file name need not be UTF-8.
            digest.update(os.fsencode(path.relative_to(model_dir)) + b"\0")
            digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def _version_code(s: Session, v: ModelVersion) -> tuple[str, str | None]:
    """Which code a version's jobs run, as the engine chooses it: its own copy (``code/``
    in its artifacts), else its model's folder in the repository; none for BYOM."""
    from core.runner import CODE_COPY

    model = s.get(Model, v.model_id)
    if model is None or model.kind != "code":
        return "builtin", None
    own = Path(v.artifact_dir) / CODE_COPY
    if own.is_dir():
        return "version", str(own)
    project = s.get(Project, model.project_id)
    return "repository", str(Path(project.repo) / "models" / model.name)


def _requirements(model_dir: Path) -> list[str]:
    """The model's requirements.txt, recorded with the job (installing them comes later)."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read a chunk at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _import_sha256(path: Path, whole: bool = True) -> str | None:
    """The sha256 of a model file to import (None unless ``whole``: then only its first
    bytes are read); one that cannot be read is refused."""
    try:
        if not whole:
            with open(path, "rb") as fh:
                fh.read(1)
            return None
        return file_sha256(path)
    except OSError as exc:
        raise ModelDeckError(
            f"cannot read model file '{printable(str(path))}': {exc.strerror or exc}"
        ) from None


def dataset_shape(path: Path, fmt: str) -> tuple[list[str], int]:
    """Column names and row count of a dataset file, read without pandas."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path)
        return list(meta.schema_arrow.names), meta.metadata.num_rows
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise ModelDeckError(f"{path.name} is empty: a CSV dataset needs a header row")
            rows = 0
            for row in reader:
                if not row:
                    continue  # a blank line is no row (pandas skips them too)
                rows += 1
                if len(row) > len(header):
                    raise ModelDeckError(
                        f"{path.name} is not a CSV table: row {rows} has {len(row)} fields, "
                        f"the header {len(header)}"
                    )
    except UnicodeDecodeError:
        raise ModelDeckError(f"{path.name} is not a CSV file: it is not UTF-8 text") from None
    except csv.Error as exc:
        raise ModelDeckError(f"{path.name} is not a CSV file: {exc}") from None
    return header, rows


def dataset_columns(path: str | Path, fmt: str) -> list[str] | None:
    """A dataset file's column names (its header only), or None when it cannot be read."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            return next(csv.reader(fh), None)  # as pandas reads it: a BOM is no part of it
    except Exception:
        return None


def _require_file(name: str, path: str) -> None:
    """Refuse a dataset whose file is gone: a job reading it could only fail."""
    if not Path(path).exists():
        raise ModelDeckError(
            f"the file of dataset {name!r} is missing: {printable(path)} does not exist "
            "(moved or deleted?)"
        )


@dataclass(frozen=True)
class _Fit:
    """A version's training columns (or where to read them) and a dataset to check."""

    model: str
    number: int
    trained: dict[str, Any] | None  # the columns kept with the version
    training: tuple[str, str, str | None] | None  # else its training dataset's path, format, target
    name: str
    path: str
    format: str
    target: str | None
    id_column: str | None


def _check_fit(job_type: JobType, fit: _Fit) -> None:
    """Refuse a dataset whose columns do not fit the version's training columns: the job
    would only fail later, in the model's code. Reads files: call it holding no lock."""
    _require_file(fit.name, fit.path)
    problem = _fit_problem(job_type, fit)
    if problem:
        raise ModelDeckError(problem)


def _fit_problem(job_type: JobType, fit: _Fit) -> str | None:
    """Why the dataset of ``fit`` does not fit its version (None: it fits, or the training
    columns are not known and the job will tell). Reads files: call it holding no lock."""
    trained = fit.trained
    if trained is None and fit.training is not None:
        # A version from before the columns were kept: its training dataset's header now.
        path, fmt, target = fit.training
        header = dataset_columns(path, fmt)
        if header is not None:
            trained = {"features": [c for c in header if c != target], "target": target}
    if trained is None:
        return None  # not known (a model imported without feature names): the job will tell
    have = dataset_columns(fit.path, fit.format)
    if have is None:
        return f"cannot read the columns of dataset {fit.name!r} ({printable(fit.path)})"
    features = list(trained["features"])
    # An id column is passed through to predictions, not fed to the model.
    allowed = set(features) | {fit.target, fit.id_column, "id"}
    if job_type == JobType.compute_stats:
        allowed.add(trained.get("target"))
    missing = [c for c in features if c not in have]
    extra = [c for c in have if c not in allowed]
    if not (missing or extra):
        return None
    problems = []
    if missing:
        problems.append(f"missing column(s) {_names(missing)}")
    if extra:
        problems.append(f"extra column(s) {_names(extra)}")
    return (
        f"dataset {fit.name!r} does not fit {fit.model} v{fit.number}: {'; '.join(problems)} "
        f"(it was trained on {_names(features)})"
    )


def _names(names: Iterable[str], most: int = 8) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


class Deck:
    """modeldeck's service API over one database and data home."""

    def __init__(
        self,
        home: str | Path | None = None,
        db: str | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
    ) -> None:
        self.store = store or Store(home, db, clock)
        self._warning_listeners: list[Callable[[str], None]] = []
        self.warnings: list[str] = []
        self._indexes: dict[str, LogIndex] = {}
        self._index_lock = threading.Lock()
        self._settle_lock = threading.Lock()
        self._settled_at: float | None = None
        self._settler: Any = None

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

    # -- lookups --------------------------------------------------------------------------

    def _by_id_or_prefix(self, s: Session, table: Any, ref: str, what: str) -> Any:
        ref = (ref or "").strip()
        if not ref:
            raise ModelDeckError(f"no {what} given")
        require_utf8(ref, f"{what} id")
        row = s.get(table, ref)
        if row is not None:
            return row
        if len(ref) >= 4:
            # A prefix, not a pattern: `%` and `_` in it are the characters themselves.
            prefix = col(table.id).startswith(ref, autoescape=True)
            rows = s.exec(select(table).where(prefix).limit(2)).all()
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise ModelDeckError(f"{what} id {ref!r} is ambiguous: give more characters")
        raise NotFound(f"unknown {what} {ref!r}")

    def _project(self, s: Session, ref: str) -> Project:
        require_utf8(ref or "", "project")
        row = s.exec(select(Project).where(Project.name == ref)).first()
        if row is None:
            row = s.get(Project, ref)
        if row is None:
            raise NotFound(f"unknown project {ref!r} (see `modeldeck projects`)")
        return row

    def _dataset(
        self, s: Session, project: Project, ref: str | None, archived_ok: bool = False
    ) -> Dataset:
        """A dataset of a project by name or id; an archived one only with ``archived_ok``
        (no new job reads an archived dataset)."""
        if not ref:
            raise ModelDeckError("a dataset is required (--dataset NAME)")
        require_utf8(ref, "dataset")
        row = s.exec(
            select(Dataset).where(Dataset.project_id == project.id, Dataset.name == ref)
        ).first() or s.get(Dataset, ref)
        if row is None or row.project_id != project.id:
            raise NotFound(
                f"unknown dataset {ref!r} in project {project.name} "
                f"(see `modeldeck datasets {project.name}`)"
            )
        if row.archived_at is not None and not archived_ok:
            raise ModelDeckError(
                f"dataset {row.name!r} of {project.name} is archived: no new job reads it "
                f"(`modeldeck dataset unarchive {project.name} {row.name}` brings it back)"
            )
        return row

    def _version(self, s: Session, ref: str) -> ModelVersion:
        """A version by id, unique id prefix, ``MODEL:N`` or ``PROJECT/MODEL:N``."""
        ref = (ref or "").strip()
        head, colon, number = ref.rpartition(":")
        if colon and head and number.isascii() and number.isdigit():  # ids hold no colon
            return self._version_by_number(s, ref, head, int(number))
        return self._by_id_or_prefix(s, ModelVersion, ref, "version")

    def _version_by_number(self, s: Session, ref: str, head: str, number: int) -> ModelVersion:
        project_name, slash, model_name = head.rpartition("/")
        stmt = (
            select(ModelVersion, Project.name)
            .join(Model, col(Model.id) == ModelVersion.model_id)
            .join(Project, col(Project.id) == Model.project_id)
            .where(Model.name == model_name, ModelVersion.number == number)
        )
        if slash:
            stmt = stmt.where(Project.id == self._project(s, project_name).id)
        found = s.exec(stmt).all()
        if len(found) == 1:
            return found[0][0]
        if found:
            names = ", ".join(sorted(f"{p}/{model_name}:{number}" for _, p in found))
            raise ModelDeckError(
                f"version {ref!r} is ambiguous: model {model_name!r} is in several projects; "
                f"name one: {names}"
            )
        where = f" {project_name}" if slash else " PROJECT"
        raise NotFound(
            f"unknown version {ref!r} (see `modeldeck versions{where} --model {model_name}`)"
        )

    def _deployment(self, s: Session, ref: str) -> Deployment:
        return self._by_id_or_prefix(s, Deployment, ref, "deployment")

    def _job(self, s: Session, ref: str) -> Job:
        return self._by_id_or_prefix(s, Job, ref, "job")

    # -- converters -----------------------------------------------------------------------

    def _version_view(self, s: Session, v: ModelVersion, model: Model | None = None) -> VersionView:
        model = model or s.get(Model, v.model_id)
        project = s.get(Project, model.project_id)
        meta = model_meta(project.repo, model.name) if model.kind == "code" else {}
        history = metrics_history(s, v)
        # Judged on an evaluation (not on whatever was recorded last); before any, the
        # training's own metrics show, with the dataset they came from.
        shown = judged_evaluation(history, meta.get("judged_on")) or (
            history[-1] if history else None
        )
        runs = [
            StatisticsRunView(job_id=r[0], dataset_id=r[1], dataset=r[4], at=r[2], rows=r[3])
            for r in s.exec(
                select(
                    StatisticsRecord.job_id,
                    StatisticsRecord.dataset_id,
                    StatisticsRecord.at,
                    StatisticsRecord.rows,
                    Dataset.name,
                )
                .outerjoin(Dataset, col(Dataset.id) == StatisticsRecord.dataset_id)
                .where(StatisticsRecord.version_id == v.id)
                .order_by(col(StatisticsRecord.id))
            ).all()
        ]
        last = s.exec(
            select(Job.id, Job.type, Job.status, Job.error, Job.created_at)
            .where(Job.version_id == v.id)
            .order_by(col(Job.created_at).desc(), col(Job.id).desc())
            .limit(1)
        ).first()
        metric_name = meta.get("metric")
        approval = s.exec(
            select(Approval).where(Approval.version_id == v.id).order_by(col(Approval.id).desc())
        ).first()
        ds = s.get(Dataset, v.dataset_id) if v.dataset_id else None
        return VersionView(
            id=v.id,
            project=project.name,
            model=model.name,
            number=v.number,
            status=v.status,
            metrics=dict(shown.metrics) if shown else {},
            statistics=runs,
            approval=_approval_view(approval) if approval else None,
            created_at=v.created_at,
            job_id=v.job_id,
            dataset=ds.name if ds else None,
            hyperparameters=dict(v.hyperparameters or {}),
            code_fingerprint=v.code_fingerprint,
            source=dict(v.source or {}),
            model_kind=model.kind,
            metrics_from=shown,
            metric=metric_name if isinstance(metric_name, str) and metric_name else None,
            last_job=JobBrief(*last) if last else None,
            columns=dict(v.columns) if v.columns else None,
        )

    def _deployment_view(self, s: Session, d: Deployment) -> DeploymentView:
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
        )

    def _job_select(self) -> Any:
        return (
            select(Job, Project.name, Model.name, ModelVersion.number, Dataset.name)
            .join(Project, col(Project.id) == Job.project_id)
            .outerjoin(Model, col(Model.id) == Job.model_id)
            .outerjoin(ModelVersion, col(ModelVersion.id) == Job.version_id)
            .outerjoin(Dataset, col(Dataset.id) == Job.dataset_id)
        )

    @staticmethod
    def _job_view(row: Any) -> JobView:
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
        )

    def _job_view_by_id(self, s: Session, job_id: str) -> JobView:
        row = s.exec(self._job_select().where(Job.id == job_id)).first()
        if row is None:
            raise NotFound(f"unknown job {job_id!r}")
        return self._job_view(row)

    # -- projects -------------------------------------------------------------------------

    def projects(self, include_archived: bool = False) -> list[ProjectView]:
        """The projects; archived ones only with ``include_archived``."""
        self.settle()
        with self.reader() as s:
            stmt = select(Project).order_by(Project.name)
            if not include_archived:
                stmt = stmt.where(col(Project.archived_at).is_(None))
            return [self._project_view(s, p) for p in s.exec(stmt)]

    def archive_project(self, project: str, archived: bool = True) -> ProjectView:
        """Take a project out of the lists (``archived=False`` puts it back). Its history,
        models, datasets and deployments stay as they are; it is still found by name."""
        with self.writer() as s:
            p = self._project(s, project)
            self._set_archived(s, p, archived, f"project {p.name}")
            return self._project_view(s, p)

    def project(self, ref: str) -> ProjectView:
        self.settle()
        with self.reader() as s:
            return self._project_view(s, self._project(s, ref))

    def _project_view(self, s: Session, p: Project) -> ProjectView:
        def count(stmt: Any) -> int:
            return int(s.exec(stmt).one())

        self._sync_code_models_read(p)
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
        )

    def add_project(self, name: str, repo: str | Path) -> ProjectView:
        name = check_name("project", name)
        path = Path(repo).expanduser().resolve()
        if not path.is_dir():
            raise ModelDeckError(f"repository folder '{printable(str(repo))}' does not exist")
        require_utf8(str(path), "the repository folder")
        with self.writer() as s:
            if s.exec(select(Project).where(Project.name == name)).first():
                raise ModelDeckError(f"a project named {name!r} already exists")
            p = Project(id=new_id("p"), name=name, repo=str(path), created_at=self.now())
            s.add(p)
            s.commit()
        self._sync_code_models(p.name)
        return self.project(name)

    # -- datasets -------------------------------------------------------------------------

    def datasets(self, project: str, include_archived: bool = False) -> list[DatasetView]:
        """A project's datasets; archived ones only with ``include_archived``."""
        with self.reader() as s:
            p = self._project(s, project)
            stmt = select(Dataset).where(Dataset.project_id == p.id).order_by(Dataset.name)
            if not include_archived:
                stmt = stmt.where(col(Dataset.archived_at).is_(None))
            return [_dataset_view(d, p) for d in s.exec(stmt)]

    def archive_dataset(self, project: str, name: str, archived: bool = True) -> DatasetView:
        """Take a dataset out of the lists and out of new jobs (``archived=False`` puts it
        back). Jobs that read it keep it; deployments already scoring it go on."""
        with self.writer() as s:
            p = self._project(s, project)
            d = self._dataset(s, p, name, archived_ok=True)
            self._set_archived(s, d, archived, f"dataset {d.name} of {p.name}")
            return _dataset_view(d, p)

    def _set_archived(self, s: Session, row: Project | Dataset, archived: bool, what: str) -> None:
        """Archive ``row`` (or put it back) and commit; refused when it already is so."""
        if (row.archived_at is not None) == archived:
            raise ModelDeckError(f"{what} is already {'archived' if archived else 'not archived'}")
        row.archived_at = self.now() if archived else None
        s.add(row)
        s.commit()

    def add_dataset(
        self,
        project: str,
        name: str,
        path: str | Path,
        target: str | None = None,
        id_column: str | None = None,
    ) -> DatasetView:
        name = check_name("dataset", name)
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ModelDeckError(f"dataset file '{printable(str(path))}' does not exist")
        require_utf8(str(file), "the dataset path")
        suffix = file.suffix.lower()
        if suffix in (".parquet", ".pq"):
            fmt = "parquet"
        elif suffix in (".csv", ".txt"):
            fmt = "csv"
        else:
            raise ModelDeckError(f"{file.name}: a dataset must be a .csv or .parquet file")
        try:
            columns, rows = dataset_shape(file, fmt)
        except ModelDeckError:
            raise
        except Exception as exc:
            raise ModelDeckError(f"cannot read {file.name}: {exc}") from None
        if target and target not in columns:
            raise ModelDeckError(
                f"target column {target!r} is not in {file.name} (columns: {', '.join(columns)})"
            )
        if id_column is not None:
            id_column = id_column.strip()
            if id_column not in columns:
                raise ModelDeckError(
                    f"id column '{printable(id_column)}' is not in {file.name} "
                    f"(columns: {', '.join(columns)})"
                )
            if id_column == target:
                raise ModelDeckError(f"column {id_column!r} cannot be both the target and the id")
        sha = file_sha256(file)
        with self.writer() as s:
            p = self._project(s, project)
            same = s.exec(
                select(Dataset).where(Dataset.project_id == p.id, Dataset.name == name)
            ).first()
            if same:
                archived = " (archived: see `datasets --all`)" if same.archived_at else ""
                raise ModelDeckError(
                    f"project {p.name} already has a dataset named {name!r}{archived}"
                )
            d = Dataset(
                id=new_id("d"),
                project_id=p.id,
                name=name,
                path=str(file),
                format=fmt,
                target=target or None,
                rows=rows,
                columns=len(columns),
                created_at=self.now(),
                sha256=sha,
                id_column=id_column or None,
            )
            s.add(d)
            s.commit()
            return _dataset_view(d, p)

    # -- models and versions --------------------------------------------------------------

    def _code_model_dirs(self, repo: str) -> dict[str, Path]:
        """The model folders of a repository: ``<repo>/models/<name>/training.py``. A folder
        whose name breaks the name rule (bytes that are not UTF-8, control characters,
        spaces) is skipped with a warning that names it."""
        root = Path(repo) / "models"
        if not root.is_dir():
            return {}
        found = {}
        for d in sorted(root.iterdir()):
            if d.name.startswith((".", "_")) or not (d / "training.py").is_file():
                continue
            problem = name_problem(d.name)
            if problem:
                self.warn(
                    f"skipping model folder '{printable(d.name)}' in {printable(str(root))}: "
                    f"its name {problem} (a name must be {NAME_RULE})"
                )
                continue
            found[d.name] = d
        return found

    def _sync_code_models_read(self, p: Project) -> None:
        with self.reader() as s:
            known = set(s.exec(select(Model.name).where(Model.project_id == p.id)).all())
        if set(self._code_model_dirs(p.repo)) - known:
            self._sync_code_models(p.name)

    def _sync_code_models(self, project: str) -> None:
        """Register the model folders of the project's repository that have no row yet.
        The folder is looked through before the write transaction (a slow disk holds no
        lock); a project's repository never changes."""
        with self.reader() as s:
            repo = self._project(s, project).repo
        found = self._code_model_dirs(repo)
        with self.writer() as s:
            p = self._project(s, project)
            known = set(s.exec(select(Model.name).where(Model.project_id == p.id)).all())
            for name in found:
                if name not in known:
                    s.add(
                        Model(
                            id=new_id("m"),
                            project_id=p.id,
                            name=name,
                            kind="code",
                            created_at=self.now(),
                        )
                    )
            s.commit()

    def models(self, project: str) -> list[ModelView]:
        self.settle()
        with self.reader() as s:
            p = self._project(s, project)
        self._sync_code_models_read(p)
        with self.reader() as s:
            out = []
            for m in s.exec(select(Model).where(Model.project_id == p.id).order_by(Model.name)):
                latest = s.exec(
                    select(ModelVersion)
                    .where(ModelVersion.model_id == m.id)
                    .order_by(col(ModelVersion.number).desc())
                ).first()
                n = s.exec(
                    select(func.count())
                    .select_from(ModelVersion)
                    .where(ModelVersion.model_id == m.id)
                ).one()
                deployed = s.exec(
                    select(ModelVersion.number)
                    .join(Deployment, col(Deployment.version_id) == ModelVersion.id)
                    .where(
                        ModelVersion.model_id == m.id,
                        Deployment.status == DeploymentStatus.active.value,
                    )
                    .distinct()
                    .order_by(ModelVersion.number)
                ).all()
                last = s.exec(
                    select(Job.id, Job.type, Job.status, Job.error, Job.created_at)
                    .where(Job.model_id == m.id)  # ix_job_model_created
                    .order_by(col(Job.created_at).desc())
                    .limit(1)
                ).first()
                out.append(
                    ModelView(
                        id=m.id,
                        project=p.name,
                        name=m.name,
                        kind=m.kind,
                        versions=int(n),
                        latest_version=latest.number if latest else None,
                        latest_status=latest.status if latest else None,
                        deployed_versions=[int(x) for x in deployed],
                        last_job=JobBrief(*last) if last else None,
                    )
                )
            return out

    def model_defaults(self, project: str, model: str) -> dict[str, Any]:
        """The default hyperparameters of a code model (its config.json); {} when none."""
        with self.reader() as s:
            p = self._project(s, project)
        folder = self._code_model_dirs(p.repo).get(model)
        if folder is None:
            return {}
        defaults = _read_json(folder / "config.json").get("hyperparameters", {})
        return dict(defaults) if isinstance(defaults, dict) else {}

    def versions(self, project: str, model: str | None = None) -> list[VersionView]:
        self.settle()
        with self.reader() as s:
            p = self._project(s, project)
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
            return [self._version_view(s, v, m) for v, m in s.exec(stmt)]

    def version(self, ref: str) -> VersionView:
        self.settle()
        with self.reader() as s:
            return self._version_view(s, self._version(s, ref))

    def version_detail(self, ref: str) -> VersionDetail:
        self.settle()
        with self.reader() as s:
            v = self._version(s, ref)
            view = self._version_view(s, v)
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
                _approval_view(a)
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
                self._job_view(r)
                for r in s.exec(self._job_select().where(or_(*conds)).order_by(col(Job.created_at)))
            ]
            code_source, code_dir = _version_code(s, v)
            return VersionDetail(
                version=view,
                metrics_history=history,
                approvals=approvals,
                lineage=lineage,
                artifact_dir=v.artifact_dir,
                deployments=[self._deployment_view(s, d) for d in deployments],
                evaluations=evaluations(history),
                statistics=stats,
                code_source=code_source,
                code_dir=code_dir,
            )

    def deployments(self, project: str) -> list[DeploymentView]:
        self.settle()
        with self.reader() as s:
            p = self._project(s, project)
            rows = s.exec(
                select(Deployment)
                .where(Deployment.project_id == p.id)
                .order_by(Deployment.status, col(Deployment.created_at).desc())
            )
            return [self._deployment_view(s, d) for d in rows]

    def deployment(self, ref: str) -> DeploymentView:
        self.settle()
        with self.reader() as s:
            return self._deployment_view(s, self._deployment(s, ref))

    def deployment_events(self, ref: str, limit: int = 200) -> list[DeploymentEventView]:
        with self.reader() as s:
            d = self._deployment(s, ref)
            rows = s.exec(
                select(DeploymentEvent)
                .where(DeploymentEvent.deployment_id == d.id)
                .order_by(col(DeploymentEvent.id).desc())
                .limit(limit)
            ).all()
            return [
                DeploymentEventView(
                    deployment_id=r.deployment_id,
                    at=r.at,
                    kind=r.kind,
                    message=r.message,
                    details=dict(r.details),
                )
                for r in reversed(rows)
            ]

    # -- submitting jobs ------------------------------------------------------------------

    def queue_job(self, s: Session, job_type: JobType, project_id: str, **fields: Any) -> Job:
        """Add a queued job and its ``created`` event to the session (see ``queued_job_rows``)."""
        _require_utf8_values(fields.get("params") or {})
        job_row, event_row = queued_job_rows(job_type, project_id, at=self.now(), **fields)
        job = Job(**job_row)
        s.add(job)
        s.add(JobEvent(**event_row))
        return job

    def _submitted(self, s: Session, job: Job) -> JobView:
        s.commit()
        self.store.notify(job.id)
        with self.reader() as r:  # reading it back needs no write lock
            return self._job_view_by_id(r, job.id)

    def _check_version(self, job_type: JobType, v: ModelVersion) -> None:
        refusal = version_refusal(job_type, v.status)
        if refusal:
            raise ModelDeckError(f"{refusal}: version {v.id} is {v.status}")

    def train(
        self,
        project: str,
        model: str,
        dataset: str,
        overrides: dict[str, Any] | None = None,
    ) -> JobView:
        with self.reader() as s:
            p = self._project(s, project)
            ds = self._dataset(s, p, dataset)
            ds_id, ds_name, ds_path, ds_format, ds_target = (
                ds.id,
                ds.name,
                ds.path,
                ds.format,
                ds.target,
            )
        dirs = self._code_model_dirs(p.repo)
        if model not in dirs:
            raise NotFound(
                f"unknown model {model!r} in project {p.name}: no "
                f"{Path(p.repo) / 'models' / model / 'training.py'}"
            )
        self._sync_code_models_read(p)  # writes only when the repo has a new model folder
        model_dir = dirs[model]
        config = _read_json(model_dir / "config.json")
        defaults = config.get("hyperparameters", {})
        if not isinstance(defaults, dict):
            raise ModelDeckError(f"{model_dir / 'config.json'}: hyperparameters must be an object")
        hyper = {**defaults, **(overrides or {})}
        fingerprint = code_fingerprint(Path(p.repo), model_dir)
        # Outside the write transaction: git may take a moment, and so may a dataset's file.
        diff = git_diff(Path(p.repo), model_dir) if fingerprint.endswith("+dirty") else None
        _require_file(ds_name, ds_path)
        header = dataset_columns(ds_path, ds_format)
        columns = (
            {"features": [c for c in header if c != ds_target], "target": ds_target}
            if header is not None
            else None
        )
        with self.writer() as s:
            # Re-checked: the project and the dataset may have been archived meanwhile.
            p = self._project(s, project)
            m = s.exec(select(Model).where(Model.project_id == p.id, Model.name == model)).one()
            ds = self._dataset(s, p, ds_id)
            job = self.queue_job(
                s,
                JobType.train,
                p.id,
                model_id=m.id,
                dataset_id=ds.id,
                params={
                    "hyperparameters": hyper,
                    "overrides": overrides or {},
                    "code_fingerprint": fingerprint,
                    "requirements": _requirements(model_dir),
                    "columns": columns,
                },
            )
            if diff is not None:
                self._keep_diff(s, job, diff)
            return self._submitted(s, job)

    def _keep_diff(self, s: Session, job: Job, diff: bytes) -> None:
        """A ``+dirty`` training keeps what is not committed: the model folder's ``git
        diff`` in the job's folder (``code.diff``), named by a ``code_diff`` event."""
        path = self.job_dir(job.id) / "code.diff"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(diff)
        files = sorted(
            {
                line[6:].decode("utf-8", "backslashreplace")
                for line in diff.splitlines()
                if line.startswith(b"+++ b/")
            }
        )
        add_event(
            s,
            job,
            "code_diff",
            f"the model folder has local changes: {len(files)} file(s), "
            f"{len(diff)} bytes of diff kept in code.diff",
            self.now(),
            {"path": str(path), "bytes": len(diff), "files": files},
        )

    def _version_job(
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
        with self.reader() as s:
            v, m, p, ds = self._version_job_inputs(s, job_type, version, dataset, needs_dataset)
            fit = (
                self._fit(s, v, m, ds)
                if ds is not None
                and job_type in (JobType.evaluate, JobType.compute_stats, JobType.deploy)
                else None
            )
            version_id, dataset_id = v.id, ds.id if ds else None
        if fit is not None:
            _check_fit(job_type, fit)
        with self.writer() as s:
            v, m, p, ds = self._version_job_inputs(
                s, job_type, version_id, dataset_id, needs_dataset
            )
            if prepare is not None:
                params = {**(params or {}), **prepare(s, v)}
            job = self.queue_job(
                s,
                job_type,
                p.id,
                model_id=m.id,
                version_id=v.id,
                dataset_id=ds.id if ds else None,
                params=params,
            )
            return self._submitted(s, job)

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
        v = self._version(s, version)
        m = s.get(Model, v.model_id)
        p = s.get(Project, m.project_id)
        self._check_version(job_type, v)
        ds = self._dataset(s, p, dataset) if needs_dataset else None
        if job_type == JobType.evaluate and ds is not None and not ds.target:
            raise ModelDeckError(
                f"dataset {ds.name!r} has no target column: evaluation needs one "
                f"(register it with --target COL)"
            )
        return v, m, p, ds

    def fitting_datasets(self, version: str, job_type: str | JobType) -> list[str]:
        """The names of the datasets of the version's project (in name order) that a job of
        ``job_type`` on it would be given, by the checks its submission makes: those whose
        columns fit the version (``evaluate``, ``compute_stats``, ``deploy``), and that have a
        target column (``evaluate``)."""
        job_type = JobType(job_type)
        with self.reader() as s:
            v = self._version(s, version)
            m = s.get(Model, v.model_id)
            rows = s.exec(
                select(Dataset)
                .where(Dataset.project_id == m.project_id, col(Dataset.archived_at).is_(None))
                .order_by(Dataset.name)
            ).all()
            if job_type not in (JobType.evaluate, JobType.compute_stats, JobType.deploy):
                return [d.name for d in rows]
            fits = [self._fit(s, v, m, d) for d in rows if d.target or job_type != JobType.evaluate]
        # The files are read with the session closed.
        return [f.name for f in fits if Path(f.path).exists() and _fit_problem(job_type, f) is None]

    def training_datasets(self, project: str) -> list[str]:
        """The names of the project's datasets a training can learn from: those with a
        target column, in name order."""
        with self.reader() as s:
            p = self._project(s, project)
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
        with self.reader() as s:
            p = self._project(s, project)
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

    def _fit(self, s: Session, v: ModelVersion, m: Model, ds: Dataset) -> _Fit:
        """What checking that a dataset fits a version needs, as plain data: the files
        are read after the session is closed."""
        trained = v.columns if v.columns and isinstance(v.columns.get("features"), list) else None
        training = s.get(Dataset, v.dataset_id) if trained is None and v.dataset_id else None
        return _Fit(
            model=m.name,
            number=v.number,
            trained=dict(trained) if trained else None,
            training=(training.path, training.format, training.target) if training else None,
            name=ds.name,
            path=ds.path,
            format=ds.format,
            target=ds.target,
            id_column=ds.id_column,
        )

    def evaluate(self, version: str, dataset: str) -> JobView:
        return self._version_job(JobType.evaluate, version, dataset)

    def compute_stats(self, version: str, dataset: str) -> JobView:
        return self._version_job(JobType.compute_stats, version, dataset)

    def approve(
        self, version: str, reason: str, evaluations: Sequence[str] | None = None
    ) -> JobView:
        """Approve an evaluated version on the evaluations given (job ids or prefixes), by
        default the one it is judged on (``evaluation``); the approval records them."""
        return self._decide(JobType.approve, version, reason, evaluations)

    def reject(
        self, version: str, reason: str, evaluations: Sequence[str] | None = None
    ) -> JobView:
        return self._decide(JobType.reject, version, reason, evaluations)

    def evaluation(self, version: str) -> MetricsView | None:
        """The evaluation a version is judged on now: what approve and reject refer to
        when they are given none."""
        with self.reader() as s:
            return self._judged(s, self._version(s, version))

    def _judged(self, s: Session, v: ModelVersion) -> MetricsView | None:
        model = s.get(Model, v.model_id)
        project = s.get(Project, model.project_id)
        meta = model_meta(project.repo, model.name) if model.kind == "code" else {}
        return judged_evaluation(metrics_history(s, v), meta.get("judged_on"))

    def _decide(
        self,
        job_type: JobType,
        version: str,
        reason: str,
        chosen: Sequence[str] | None = None,
    ) -> JobView:
        reason = (reason or "").strip()
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
                judged = self._judged(s, v)
                note(v, [judged] if judged and judged.job_type == JobType.evaluate.value else [])
                return {"evaluations": [judged.job_id] if judged and judged.job_id else []}
            history = {m.job_id: m for m in evaluations(metrics_history(s, v))}
            ids: list[str] = []
            for ref in chosen:
                job = self._job(s, ref)
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

        view = self._version_job(
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
            ds = self._dataset(s, s.get(Project, s.get(Model, v.model_id).project_id), dataset)
            same = identical_deployment(s, v.id, ds.id, expr, tz)
            if same is not None:
                raise ModelDeckError(identical_deployment_message(same))
            return {}

        return self._version_job(
            JobType.deploy,
            version,
            dataset,
            params={"schedule": expr, "timezone": tz},
            prepare=not_twice,
        )

    def _deployment_job(self, job_type: JobType, deployment: str, **kw: Any) -> JobView:
        with self.writer() as s:
            d = self._deployment(s, deployment)
            if d.status != DeploymentStatus.active.value:
                verb = "retire" if job_type == JobType.retire else "run a batch prediction of"
                raise ModelDeckError(f"cannot {verb} deployment {d.id}: it is {d.status}")
            v = s.get(ModelVersion, d.version_id)
            job = self.queue_job(
                s,
                job_type,
                d.project_id,
                model_id=v.model_id,
                version_id=v.id,
                deployment_id=d.id,
                dataset_id=d.dataset_id if job_type == JobType.batch_predict else None,
                **kw,
            )
            return self._submitted(s, job)

    def retire(self, deployment: str, reason: str | None = None) -> JobView:
        """Retire a deployment; the reason (optional) is kept on it and in its events."""
        reason = (reason or "").strip()
        params = {"reason": reason} if reason else None
        return self._deployment_job(JobType.retire, deployment, params=params)

    def predict(self, deployment: str) -> JobView:
        """Run now: queue a manual batch prediction of an active deployment."""
        return self._deployment_job(JobType.batch_predict, deployment)

    def import_model(
        self,
        project: str,
        model: str,
        source: str,
        fmt: str | None = None,
        again: bool = False,
    ) -> JobView:
        """Queue an import of a BYOM file. A local file identical (by sha256) to a version
        of the model already is refused unless ``again``; a download is checked when it is
        in (the job then fails, and nothing of it is kept)."""
        model = check_name("model", model)
        source = (source or "").strip()
        if "://" in source:
            if not source.lower().startswith(("http://", "https://")):
                raise ModelDeckError(
                    f"{source!r}: only http(s) URLs and local files can be imported"
                )
        else:
            path = Path(source).expanduser().resolve()
            if not path.exists():
                raise ModelDeckError(f"model file {source!r} does not exist")
            if not path.is_file():
                raise ModelDeckError(f"model file {source!r} is not a regular file")
            source = str(path)
        if fmt is None:
            name = source.rsplit("/", 1)[-1].lower()
            fmt = (
                "onnx"
                if name.endswith(".onnx")
                else "pickle"
                if name.endswith((".pkl", ".pickle"))
                else "joblib"
            )
        if fmt not in IMPORT_FORMATS:
            raise ModelDeckError(f"unknown format {fmt!r} (use {', '.join(IMPORT_FORMATS)})")
        # The cheap checks first: nothing is hashed for an import that is refused anyway.
        with self.reader() as s:
            self._importable(s, project, model)
        # Hashed before the write transaction: a big file holds no lock while it is read.
        sha = None if "://" in source else _import_sha256(Path(source), whole=not again)
        with self.writer() as s:
            p, m = self._importable(s, project, model, scan_repo=False)  # checked just now
            params: dict[str, Any] = {"model": model, "source": source, "format": fmt}
            if m is not None and sha is not None:
                same = identical_version(s, m.id, sha)
                if same is not None:
                    raise ModelDeckError(identical_message(source, model, same))
            if again:
                params["again"] = True
            job = self.queue_job(
                s, JobType.import_, p.id, model_id=m.id if m else None, params=params
            )
            return self._submitted(s, job)

    def _importable(
        self, s: Session, project: str, model: str, scan_repo: bool = True
    ) -> tuple[Project, Model | None]:
        """The project and the BYOM model (None when new) an import goes to; refused when
        the name is a code model's (a folder of the repository too, with ``scan_repo``)."""
        p = self._project(s, project)
        m = s.exec(select(Model).where(Model.project_id == p.id, Model.name == model)).first()
        if m is not None and m.kind != "byom":
            raise ModelDeckError(f"{model!r} is a code model of {p.name}: pick another name")
        if scan_repo and m is None and model in self._code_model_dirs(p.repo):
            raise ModelDeckError(f"{model!r} is a code model of {p.name}: pick another name")
        return p, m

    def rerun(self, job_id: str) -> JobView:
        """Queue a job of the same type with the same inputs."""
        j = self.job(job_id)
        t = JobType(j.type)
        if t == JobType.train:
            return self.train(j.project, j.model or "", j.dataset or "", j.params.get("overrides"))
        if t in (JobType.evaluate, JobType.compute_stats):
            return self._version_job(t, j.version or "", j.dataset)
        if t in (JobType.approve, JobType.reject):
            chosen = j.params.get("evaluations")
            return self._decide(
                t, j.version or "", j.params.get("reason", ""), chosen if chosen else None
            )
        if t == JobType.retire:
            return self.retire(j.deployment or "", j.params.get("reason"))
        if t == JobType.deploy:
            return self.deploy(
                j.version or "", j.dataset or "", j.params.get("schedule"), j.params.get("timezone")
            )
        if t == JobType.import_:
            return self.import_model(
                j.project,
                j.params["model"],
                j.params["source"],
                j.params["format"],
                again=bool(j.params.get("again")),
            )
        return self._deployment_job(t, j.deployment or "")

    # -- schedules ------------------------------------------------------------------------

    def set_schedule(
        self,
        deployment: str,
        cron_expr: str | None = None,
        timezone: str | None = None,
        paused: bool | None = None,
    ) -> DeploymentView:
        """Change, pause or resume a deployment's schedule; the next run is recomputed."""
        expr = cron.validate_cron(cron_expr) if cron_expr else None
        if timezone:
            cron.zone(timezone)
        from core.records import add_deployment_event

        with self.writer() as s:
            d = self._deployment(s, deployment)
            if d.status != DeploymentStatus.active.value:
                raise ModelDeckError(f"deployment {d.id} is {d.status}: its schedule cannot change")
            if not (expr or d.schedule) and (timezone or paused is not None):
                raise ModelDeckError(
                    f"deployment {d.id} has no schedule: give one with --cron EXPR"
                )
            if expr or timezone:
                same = identical_deployment(
                    s,
                    d.version_id,
                    d.dataset_id,
                    expr or d.schedule,
                    timezone or d.timezone or "UTC",
                    exclude=d.id,
                )
                if same is not None:
                    raise ModelDeckError(identical_deployment_message(same))
            changes: dict[str, Any] = {}
            if expr:
                changes["schedule"] = d.schedule = expr
            if timezone:
                changes["timezone"] = d.timezone = timezone
            if paused is not None:
                changes["paused"] = d.paused = paused
            now = self.now()
            d.next_run_at = (
                cron.next_fire(d.schedule, d.timezone, now) if d.schedule and not d.paused else None
            )
            s.add(d)
            kind = (
                "schedule_paused"
                if paused is True
                else "schedule_resumed"
                if paused is False
                else "schedule_changed"
            )
            add_deployment_event(
                s, d.id, kind, f"schedule {d.schedule} ({d.timezone})", now, changes
            )
            s.commit()
            return self._deployment_view(s, d)

    # -- jobs -----------------------------------------------------------------------------

    def _job_filter(
        self,
        stmt: Any,
        project_id: str | None,
        status: str | Iterable[str] | None,
        job_type: str | None,
        text: str | None,
        deployment: str | None,
    ) -> Any:
        if project_id:
            stmt = stmt.where(Job.project_id == project_id)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            for st in statuses:
                JobStatus(st)
            stmt = stmt.where(col(Job.status).in_(statuses))
        if job_type:
            stmt = stmt.where(Job.type == JobType(job_type).value)
        if deployment:
            stmt = stmt.where(Job.deployment_id == deployment)
        if text:
            require_utf8(text, "the filter")
            # Text, not a pattern: `%` and `_` in it match themselves.
            stmt = stmt.where(
                or_(
                    *(
                        c.contains(text, autoescape=True)
                        for c in (
                            col(Job.id),
                            col(Job.type),
                            col(Job.actor),
                            col(Job.status),
                            col(Job.error),
                            col(Model.name),
                        )
                    )
                )
            )
        return stmt

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
        self._check_filters(status, job_type)
        with self.reader() as s:
            pid = self._project(s, project).id if project else None
            stmt = self._job_filter(self._job_select(), pid, status, job_type, text, deployment)
            stmt = stmt.order_by(col(Job.created_at).desc(), col(Job.id).desc())
            stmt = stmt.offset(max(0, offset)).limit(max(0, limit))
            return [self._job_view(r) for r in s.exec(stmt)]

    def count_jobs(
        self,
        project: str | None = None,
        status: str | Iterable[str] | None = None,
        job_type: str | None = None,
        text: str | None = None,
        deployment: str | None = None,
    ) -> int:
        self.settle()
        self._check_filters(status, job_type)
        with self.reader() as s:
            pid = self._project(s, project).id if project else None
            stmt = select(func.count()).select_from(Job)
            if text:  # the text filter also matches model names; else the index alone counts
                stmt = stmt.outerjoin(Model, col(Model.id) == Job.model_id)
            stmt = self._job_filter(stmt, pid, status, job_type, text, deployment)
            return int(s.exec(stmt).one())

    @staticmethod
    def _check_filters(status: str | Iterable[str] | None, job_type: str | None) -> None:
        statuses = [status] if isinstance(status, str) else list(status or [])
        for st in statuses:
            if st not in JobStatus.__members__.values():
                raise ModelDeckError(
                    f"unknown job status {st!r} (use {', '.join(s.value for s in JobStatus)})"
                )
        if job_type and job_type not in JobType.__members__.values():
            raise ModelDeckError(
                f"unknown job type {job_type!r} (use {', '.join(t.value for t in JobType)})"
            )

    def job(self, ref: str) -> JobView:
        self.settle()
        with self.reader() as s:
            return self._job_view_by_id(s, self._job(s, ref).id)

    def change_marker(self) -> tuple[int, ...]:
        """A cheap marker that changes whenever anything a screen shows may have changed:
        job events (every status change makes one), deployment events (schedules), datasets
        and projects (and how many of them are archived). Polling UIs compare it before they
        fetch anything else."""
        with self.reader() as s:
            row = s.exec(
                select(
                    select(func.max(JobEvent.id)).scalar_subquery(),
                    select(func.max(DeploymentEvent.id)).scalar_subquery(),
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

    def predictions(self, job: str, rows: int = 10) -> PredictionsView:
        """The head of a batch prediction's ``predictions.csv`` and the summary its scorer
        recorded (in its ``predictions_written`` event)."""
        from core.predictions import PREDICTIONS_FILE, clean_summary, read_head, summary_text

        with self.reader() as s:
            j = self._job(s, job)
            if j.type != JobType.batch_predict.value:
                raise ModelDeckError(f"job {j.id} is a {j.type} job, not a batch prediction")
            written = s.exec(
                select(JobEvent.details).where(
                    JobEvent.job_id == j.id, JobEvent.kind == "predictions_written"
                )
            ).first()
            outputs = list(j.outputs or [])
        summary = clean_summary((written or {}).get("summary"))
        path = next((p for p in outputs if Path(p).name == PREDICTIONS_FILE), None)
        columns, head = read_head(Path(path), rows) if path else ([], [])
        return PredictionsView(
            job_id=j.id,
            path=path,
            columns=columns,
            rows=head,
            summary=summary,
            summary_text=summary_text(summary),
        )

    def events(self, job: str, after_seq: int = 0) -> list[EventView]:
        self.settle()
        with self.reader() as s:
            j = self._job(s, job)
            rows = s.exec(
                select(JobEvent)
                .where(JobEvent.job_id == j.id, JobEvent.seq > after_seq)
                .order_by(col(JobEvent.seq))
            )
            return [
                EventView(
                    job_id=e.job_id,
                    seq=e.seq,
                    at=e.at,
                    kind=e.kind,
                    message=e.message,
                    details=dict(e.details),
                )
                for e in rows
            ]

    def stop(self, job: str, reason: str = "stopped by user") -> JobView:
        """Cancel a queued job at once; ask the engine to stop a running one."""
        self.settle(every=0)  # a job whose process has ended is recorded, not cancelled
        with self.writer() as s:
            j = self._job(s, job)
            now = self.now()
            if j.status in FINAL_STATUSES:
                raise ModelDeckError(f"job {j.id} is already {j.status}")
            if j.status == JobStatus.stopping.value:
                return self._job_view_by_id(s, j.id)
            who = actor()
            add_event(
                s,
                j,
                "stop_requested",
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
            return self._job_view_by_id(s, j.id)

    def stop_all(self, project: str) -> list[JobView]:
        """Stop every queued or running job of a project."""
        with self.reader() as s:
            p = self._project(s, project)
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

    # -- logs -----------------------------------------------------------------------------

    def tail_log(self, job_id: str, offset: int = 0, final: bool = False) -> tuple[list[str], int]:
        """Complete log lines from byte ``offset`` on, and the offset after them."""
        return tail(self.log_path(job_id), offset, final=final)

    def log_index(self, job_id: str) -> LogIndex:
        """A line index of a job's log for reading any window of it (kept per job)."""
        with self._index_lock:
            idx = self._indexes.get(job_id)
            if idx is None:
                idx = self._indexes[job_id] = LogIndex(self.log_path(job_id))
            return idx

    def read_log(self, job_id: str, start: int = 0, count: int = 1000) -> list[str]:
        return self.log_index(job_id).read(start, count)

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
            with self.reader() as s:
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

    def preview_schedule(
        self, expr: str, timezone: str | None, n: int = 5, after: datetime | None = None
    ) -> list[datetime]:
        expr = cron.validate_cron(expr)
        return cron.preview(expr, timezone or "UTC", after or self.now(), n)


def _approval_view(a: Approval) -> ApprovalView:
    return ApprovalView(
        decision=a.decision,
        reason=a.reason,
        by=a.by,
        at=a.at,
        metrics=a.metrics,
        evaluations=[evaluation_from_ref(r) for r in a.evaluations or [] if isinstance(r, dict)],
    )


def _dataset_view(d: Dataset, p: Project) -> DatasetView:
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
