"""What a job's process is given to run: the runner's spec, the Python, the code folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlmodel import Session

from core import rawsql
from core.kinds import KINDS
from core.lifecycle import JobType
from core.models import Dataset, Job, Model, ModelVersion, Project
from core.monitoring.store import spec_monitoring
from core.queries import kept_its_code
from core.store import Store

_JOB = Job.__table__
# What a job's spec reads, and what the dispatcher needs to start it.
JOB_COLUMNS = tuple(
    _JOB.c[name]
    for name in (
        "id",
        "type",
        "project_id",
        "model_id",
        "version_id",
        "dataset_id",
        "deployment_id",
        "executor",
        "params",
    )
)
_READ = (
    ("project", Project, "project_id", ("repo",)),
    ("model", Model, "model_id", ("kind", "name")),
    ("version", ModelVersion, "version_id", ("artifact_dir", "hyperparameters", "job_id")),
    ("dataset", Dataset, "dataset_id", ("name", "path", "target", "id_column")),
)


def _spec_reads() -> Any:
    """One statement for a batch of jobs: each job's row joined to the rows its spec reads,
    each column labelled ``<name>__<column>`` (built once)."""
    stmt = select(_JOB.c.id.label("job_id"))
    joined: Any = _JOB
    for name, model, key, columns in _READ:
        table = model.__table__
        joined = joined.outerjoin(table, table.c.id == _JOB.c[key])
        stmt = stmt.add_columns(
            *(table.c[c].label(f"{name}__{c}") for c in ("id", *columns)),
        )
    return stmt.select_from(joined).where(_JOB.c.id.in_(bindparam("ids", expanding=True)))


_SPEC_READS = _spec_reads()


class CopyUnchecked(Exception):
    """A version's copy of its code is not there, and whether its training made one (its
    events) was not read: not in a batch's claim (see ``SpecRows``)."""


class SpecRows:
    """The projects, models, versions and datasets that a batch of jobs' specs read, by one
    Core statement whatever the number of jobs: each one a row of attributes by its id.

    ``check_copies`` False (a batch's claim): a version whose copy of its code is missing is
    not looked up in its training's events here (``CopyUnchecked``): a statement that fails
    there would abort the claim's transaction (PostgreSQL), and with it every claim of the
    batch. The caller reads that job's spec again after the claim."""

    def __init__(self, conn: Connection, jobs: list[Any], check_copies: bool = True) -> None:
        self.conn = conn
        self.check_copies = check_copies
        self._rows: dict[str, dict[str, SimpleNamespace]] = {name: {} for name, *_ in _READ}
        ids = sorted({job.id for job in jobs})
        for row in rawsql.run(conn, _SPEC_READS, {"ids": ids}) if ids else ():
            values = row._asdict()
            for name, _model, _key, columns in _READ:
                row_id = values[f"{name}__id"]
                if row_id is not None:
                    self._rows[name][row_id] = SimpleNamespace(
                        id=row_id, **{c: values[f"{name}__{c}"] for c in columns}
                    )

    def get(self, name: str, row_id: str | None) -> Any:
        return self._rows[name].get(row_id) if row_id else None


def job_spec(store: Store, rows: SpecRows, job: Any) -> tuple[dict[str, Any], str, Path | None]:
    """The runner's spec, the interpreter to run it with, and the code folder, as the job's
    kind says (``core.kinds``: its model folder, which code it is given).

    A version runs its own copy of the code it was trained with (``code/`` in its
    artifacts, made by its training); one trained before versions kept it runs the
    repository's model folder. A copy that is gone fails the job: the repository's code
    now is not what the version was trained with."""
    from core.runner import CODE_COPY  # the runner's name for it (standard library only)

    job_dir = store.job_dir(job.id)
    project = rows.get("project", job.project_id)
    model = rows.get("model", job.model_id)
    version = rows.get("version", job.version_id)
    dataset = rows.get("dataset", job.dataset_id)
    flags = KINDS[JobType(job.type)].spec
    if flags is None:
        raise ValueError(f"job type {job.type!r} runs no code")
    code_dir: Path | None = None
    code_source = "repository"
    meta: dict[str, Any] = {}
    if model is not None and model.kind == "code" and flags.code != "none":
        code_dir = Path(project.repo) / "models" / model.name
        own = Path(version.artifact_dir) / CODE_COPY if version is not None else None
        if flags.code == "version" and own is not None and own.is_dir():
            code_dir, code_source = own, "version"
        elif flags.code == "version" and own is not None and version.job_id:
            if not rows.check_copies:
                raise CopyUnchecked(job.id)
            if kept_its_code(rows.conn, version):
                raise FileNotFoundError(
                    f"the code this version was trained with is gone: {own} does not exist (its "
                    "files in the artifact store were removed, or the store is not mounted here)"
                )
        try:
            meta = json.loads((code_dir / "model.json").read_text())
        except (OSError, ValueError):
            meta = {}
    if flags.staging:
        model_dir: Path | None = store.staging_dir(job.id)
    else:
        model_dir = Path(version.artifact_dir) if version else None
    executor = meta.get("executor")
    if executor is not None and (not isinstance(executor, str) or not executor):
        raise ValueError('model.json\'s executor must be the name of an executor ("ray")')
    spec = {
        "job_id": job.id,
        "type": job.type,
        "code_dir": str(code_dir) if code_dir else None,
        "code_source": code_source if code_dir else "builtin",
        "model_dir": str(model_dir) if model_dir else None,
        "output_dir": str(job_dir / "output"),
        "hyperparameters": (job.params or {}).get("hyperparameters")
        or (version.hyperparameters if version else {}),
        "dataset": {
            "name": dataset.name,
            "path": dataset.path,
            "target": dataset.target,
            "id_column": dataset.id_column,
        }
        if dataset
        else None,
        "version": job.version_id,
        "task": meta.get("task"),
        "params": job.params or {},
        # Where it runs (None: the engine's default executor) and what it asks the cluster
        # for; a local job ignores the resources, saying so in its events.
        "executor": executor,
        "resources": meta.get("resources"),
    }
    with Session(bind=rows.conn) as s:  # in the rows' transaction
        monitoring = spec_monitoring(s, job)  # a baseline to record, or one to compare with
    if monitoring is not None:
        spec["monitoring"] = monitoring
    python = meta.get("python") or sys.executable
    # A folder that is gone is not the job's working directory: the runner says it is gone.
    return spec, str(python), code_dir if code_dir and code_dir.is_dir() else None
