"""What a user registers: projects, their datasets, and the model folders of a project's
repository (a code model gets its row when its folder is first seen)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from sqlmodel import Session, select

from core import convert, lookup
from core.errors import ModelDeckError
from core.home import new_id
from core.inputs import check_name, require_utf8
from core.models import Dataset, Model, Project
from core.repo import code_model_dirs, dataset_shape, file_sha256
from core.store import Store
from core.team import record_change
from core.text import quoted
from core.views import DatasetView, ProjectView


def project_input(name: str, repo: str | Path) -> tuple[str, Path]:
    """A new project's name and repository folder, checked (before any database is opened:
    refused, they make no data home)."""
    name = check_name("project", name)
    path = Path(repo).expanduser().resolve()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise ModelDeckError(f"repository folder {quoted(str(repo))} {what}")
    require_utf8(str(path), "the repository folder")
    return name, path


class Catalog:
    """Projects, datasets and code models: their rows, checked before they are written."""

    def __init__(self, store: Store, warn: Callable[[str], None]) -> None:
        self.store = store
        self.warn = warn

    def model_dirs(self, repo: str) -> dict[str, Path]:
        """The model folders of a repository (see ``repo.code_model_dirs``); a folder whose
        name breaks the name rule is skipped with a warning."""
        return code_model_dirs(repo, self.warn)

    def archive_project(self, project: str, archived: bool = True) -> ProjectView:
        """Take a project out of the lists (``archived=False`` puts it back). Its history,
        models, datasets and deployments stay as they are; it is still found by name."""
        with self.store.writer() as s:
            p = lookup.project(s, project)
            self._set_archived(s, p, p.id, archived, f"project {p.name}")
            self.sync_code_models_read(p)
            return convert.project_view(s, p)

    def add_project(self, name: str, repo: str | Path) -> str:
        """Register a project (and its repository's model folders); its checked name."""
        name, path = project_input(name, repo)
        with self.store.writer() as s:
            if s.exec(select(Project).where(Project.name == name)).first():
                raise ModelDeckError(f"a project named {name!r} already exists")
            now = self.store.now()
            p = Project(id=new_id("p"), name=name, repo=str(path), created_at=now)
            s.add(p)
            s.flush()  # the project's row before its first event
            who = self.store.actor()
            record_change(s, p.id, who, now, "project_added", f"added by {who}", repo=str(path))
            s.commit()
        self.sync_code_models(p.name)
        return name

    def archive_dataset(self, project: str, name: str, archived: bool = True) -> DatasetView:
        """Take a dataset out of the lists and out of new jobs (``archived=False`` puts it
        back). Jobs that read it keep it; deployments already scoring it go on."""
        with self.store.writer() as s:
            p = lookup.project(s, project)
            d = lookup.dataset(s, p, name, archived_ok=True)
            self._set_archived(s, d, p.id, archived, f"dataset {d.name} of {p.name}")
            return convert.dataset_view(d, p)

    def _set_archived(
        self, s: Session, row: Project | Dataset, project_id: str, archived: bool, what: str
    ) -> None:
        """Archive ``row`` (or put it back) and commit; refused when it already is so. The
        change goes on the project's timeline with who made it."""
        if (row.archived_at is not None) == archived:
            raise ModelDeckError(f"{what} is already {'archived' if archived else 'not archived'}")
        now = self.store.now()
        row.archived_at = now if archived else None
        s.add(row)
        who = self.store.actor()
        verb = "archived" if archived else "unarchived"
        kind = f"{'dataset' if isinstance(row, Dataset) else 'project'}_{verb}"
        record_change(s, project_id, who, now, kind, f"{what} {verb} by {who}")
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
            what = "is not a regular file" if file.exists() else "does not exist"
            raise ModelDeckError(f"dataset file {quoted(str(path))} {what}")
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
                    f"id column {quoted(id_column)} is not in {file.name} "
                    f"(columns: {', '.join(columns)})"
                )
            if id_column == target:
                raise ModelDeckError(f"column {id_column!r} cannot be both the target and the id")
        sha = file_sha256(file)
        with self.store.writer() as s:
            p = lookup.project(s, project)
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
                created_at=self.store.now(),
                sha256=sha,
                id_column=id_column or None,
            )
            s.add(d)
            who = self.store.actor()
            record_change(
                s,
                p.id,
                who,
                d.created_at,
                "dataset_added",
                f"dataset {name} added by {who}",
                dataset=d.id,
                sha256=sha,
            )
            s.commit()
            return convert.dataset_view(d, p)

    def sync_code_models_read(
        self,
        p: Project,
        dirs: Collection[str] | None = None,
        known: Collection[str] | None = None,
    ) -> None:
        """Register the repository's new model folders, if it has any: writes only then.
        ``dirs`` and ``known``: the folders' and the rows' model names, when the caller has
        them already (else looked up here)."""
        if known is None:
            with self.store.reader() as s:
                known = set(s.exec(select(Model.name).where(Model.project_id == p.id)).all())
        if dirs is None:
            dirs = self.model_dirs(p.repo)
        if set(dirs) - set(known):
            self.sync_code_models(p.name)

    def sync_code_models(self, project: str) -> None:
        """Register the model folders of the project's repository that have no row yet.
        The folder is looked through before the write transaction (a slow disk holds no
        lock); a project's repository never changes."""
        with self.store.reader() as s:
            repo = lookup.project(s, project).repo
        found = self.model_dirs(repo)
        with self.store.writer() as s:
            p = lookup.project(s, project)
            known = set(s.exec(select(Model.name).where(Model.project_id == p.id)).all())
            for name in found:
                if name not in known:
                    s.add(
                        Model(
                            id=new_id("m"),
                            project_id=p.id,
                            name=name,
                            kind="code",
                            created_at=self.store.now(),
                        )
                    )
            s.commit()
