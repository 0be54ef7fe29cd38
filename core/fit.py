"""Whether a dataset's columns fit a version's training columns: the check that refuses a
job which could only fail later, in the model's code. The rows are read as plain data in a
session (``fit_of``); the files are read after it is closed (``check_fit``, ``fit_problem``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.errors import ModelDeckError
from core.lifecycle import JobType
from core.models import Dataset, Model, ModelVersion
from core.repo import dataset_columns, dataset_header, require_file
from core.text import printable

FIT_CHECKED = (JobType.evaluate, JobType.compute_stats, JobType.deploy)  # jobs that check it


@dataclass(frozen=True)
class Fit:
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


def check_fit(job_type: JobType, fit: Fit) -> None:
    """Refuse a dataset whose columns do not fit the version's training columns: the job
    would only fail later, in the model's code. Reads files: call it holding no lock."""
    require_file(fit.name, fit.path)
    problem = fit_problem(job_type, fit)
    if problem:
        raise ModelDeckError(problem)


def fit_problem(job_type: JobType, fit: Fit) -> str | None:
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
    try:
        have = dataset_header(fit.path, fit.format)
    except ModelDeckError as exc:
        return f"cannot read the columns of dataset {fit.name!r} ({printable(fit.path)}): {exc}"
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


def fit_of(s: Session, v: ModelVersion, m: Model, ds: Dataset) -> Fit:
    """What checking that a dataset fits a version needs, as plain data: the files
    are read after the session is closed."""
    trained = v.columns if v.columns and isinstance(v.columns.get("features"), list) else None
    training = s.get(Dataset, v.dataset_id) if trained is None and v.dataset_id else None
    return Fit(
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
