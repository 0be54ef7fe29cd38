"""What a job's process is given to run: the runner's spec, the Python, the code folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlmodel import Session

from core.kinds import KINDS
from core.lifecycle import JobType
from core.models import Dataset, Job, Model, ModelVersion, Project
from core.monitoring.store import spec_monitoring
from core.store import Store


def job_spec(store: Store, s: Session, job: Job) -> tuple[dict[str, Any], str, Path | None]:
    """The runner's spec, the interpreter to run it with, and the code folder, as the job's
    kind says (``core.kinds``: its model folder, which code it is given).

    A version runs its own copy of the code it was trained with (``code/`` in its
    artifacts, made by its training); one trained before versions kept it runs the
    repository's model folder."""
    from core.runner import CODE_COPY  # the runner's name for it (standard library only)

    job_dir = store.job_dir(job.id)
    project = s.get(Project, job.project_id)
    model = s.get(Model, job.model_id) if job.model_id else None
    version = s.get(ModelVersion, job.version_id) if job.version_id else None
    dataset = s.get(Dataset, job.dataset_id) if job.dataset_id else None
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
        try:
            meta = json.loads((code_dir / "model.json").read_text())
        except (OSError, ValueError):
            meta = {}
    if flags.staging:
        model_dir: Path | None = store.staging_dir(job.id)
    else:
        model_dir = Path(version.artifact_dir) if version else None
    spec = {
        "job_id": job.id,
        "type": job.type,
        "code_dir": str(code_dir) if code_dir else None,
        "code_source": code_source if code_dir else "builtin",
        "model_dir": str(model_dir) if model_dir else None,
        "output_dir": str(job_dir / "output"),
        "hyperparameters": job.params.get("hyperparameters")
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
        "params": job.params,
    }
    monitoring = spec_monitoring(s, job)  # a baseline to record, or one to compare with
    if monitoring is not None:
        spec["monitoring"] = monitoring
    python = meta.get("python") or sys.executable
    # A folder that is gone is not the job's working directory: the runner says it is gone.
    return spec, str(python), code_dir if code_dir and code_dir.is_dir() else None
