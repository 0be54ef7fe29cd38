"""Finding the row a user means: by id, by a unique id prefix, by name in a project, or a
version as ``MODEL:N`` / ``PROJECT/MODEL:N``. Each refuses with a message that says what to
give instead. Functions over an open session."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from core.errors import ModelDeckError, NotFound
from core.inputs import require_utf8
from core.models import Dataset, Deployment, Job, Model, ModelVersion, Project


def by_id_or_prefix(s: Session, table: Any, ref: str, what: str) -> Any:
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


def project(s: Session, ref: str) -> Project:
    require_utf8(ref or "", "project")
    row = s.exec(select(Project).where(Project.name == ref)).first()
    if row is None:
        row = s.get(Project, ref)
    if row is None:
        raise NotFound(f"unknown project {ref!r} (see `modeldeck projects`)")
    return row


def dataset(s: Session, project: Project, ref: str | None, archived_ok: bool = False) -> Dataset:
    """A dataset of a project by name or id; an archived one only with ``archived_ok``
    (no new job reads an archived dataset)."""
    if not ref:
        raise ModelDeckError("a dataset is required (--dataset NAME)")
    require_utf8(ref, "dataset")
    row = s.exec(
        select(Dataset).where(Dataset.project_id == project.id, Dataset.name == ref)
    ).first() or s.get(Dataset, ref)
    return _usable(row, project, ref, archived_ok)


def dataset_by_id(s: Session, project: Project, dataset_id: str) -> Dataset:
    """The dataset ``dataset_id`` of the project, checked as ``dataset`` checks it (one
    statement: for a dataset found by name before)."""
    return _usable(s.get(Dataset, dataset_id), project, dataset_id, False)


def _usable(row: Dataset | None, project: Project, ref: str, archived_ok: bool) -> Dataset:
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


MAX_NUMBER = 2**31 - 1  # the largest version number a column can hold on both backends


def version(s: Session, ref: str) -> ModelVersion:
    """A version by id, unique id prefix, ``MODEL:N`` or ``PROJECT/MODEL:N``."""
    ref = (ref or "").strip()
    head, colon, number = ref.rpartition(":")
    if colon and head and number.isascii() and number.isdigit():  # ids hold no colon
        return version_by_number(s, ref, head, int(number))
    return by_id_or_prefix(s, ModelVersion, ref, "version")


def version_by_number(s: Session, ref: str, head: str, number: int) -> ModelVersion:
    project_name, slash, model_name = head.rpartition("/")
    stmt = (
        select(ModelVersion, Project.name)
        .join(Model, col(Model.id) == ModelVersion.model_id)
        .join(Project, col(Project.id) == Model.project_id)
        .where(Model.name == model_name, ModelVersion.number == number)
    )
    if slash:
        stmt = stmt.where(Project.id == project(s, project_name).id)
    # A number past the column's range (an INTEGER: 2^31 - 1 on PostgreSQL) names no version;
    # the database would refuse to compare it.
    found = s.exec(stmt).all() if number <= MAX_NUMBER else []
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


def deployment(s: Session, ref: str) -> Deployment:
    return by_id_or_prefix(s, Deployment, ref, "deployment")


def job(s: Session, ref: str) -> Job:
    return by_id_or_prefix(s, Job, ref, "job")
