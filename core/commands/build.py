"""Jobs that make a version: a training of a code model from the project's repository (its
code fingerprint, local changes, requirements and training columns fixed at submission) and
an import of a model file (BYOM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from core import lookup
from core.commands.catalog import Catalog
from core.commands.submit import Submitter
from core.errors import ModelDeckError, NotFound, first_line
from core.events import JobEventKind
from core.hosts import Hosts
from core.inputs import check_name
from core.lifecycle import IMPORT_FORMATS, JobType
from core.models import Job, Model, Project
from core.records import add_event, identical_message, identical_version
from core.repo import (
    code_fingerprint,
    dataset_columns,
    git_diff,
    import_sha256,
    read_json,
    require_file,
    requirements,
)
from core.text import printable, quoted, without_userinfo
from core.views import JobView


class Build:
    """Queues trainings and imports."""

    def __init__(self, submit: Submitter, catalog: Catalog) -> None:
        self.submit = submit
        self.store = submit.store
        self.catalog = catalog

    def train(
        self,
        project: str,
        model: str,
        dataset: str,
        overrides: dict[str, Any] | None = None,
    ) -> JobView:
        with self.store.reader() as s:
            p = lookup.project(s, project)
            ds = lookup.dataset(s, p, dataset)
            ds_id, ds_name, ds_path, ds_format, ds_target = (
                ds.id,
                ds.name,
                ds.path,
                ds.format,
                ds.target,
            )
            rows = s.exec(
                select(Model.name, Model.id, Model.kind).where(Model.project_id == p.id)
            ).all()
        known = {name: id_ for name, id_, _ in rows}
        kind = next((k for name, _, k in rows if name == model), None)
        dirs = self.catalog.model_dirs(p.repo)
        if model not in dirs:
            code = Path(p.repo) / "models" / model / "training.py"
            if kind == "byom":
                raise ModelDeckError(
                    f"model {model!r} of project {p.name} is imported: it has no training code "
                    f"to train (no {code}); `modeldeck import` gives it new versions"
                )
            if kind is not None:
                raise ModelDeckError(
                    f"model {model!r} of project {p.name} has no training code any more: "
                    f"{code} is gone from the repository"
                )
            raise NotFound(f"unknown model {model!r} in project {p.name}: no {code}")
        self.catalog.sync_code_models_read(p, dirs, known)  # writes only for a new folder
        model_dir = dirs[model]
        config = read_json(model_dir / "config.json")
        defaults = config.get("hyperparameters", {})
        if not isinstance(defaults, dict):
            raise ModelDeckError(f"{model_dir / 'config.json'}: hyperparameters must be an object")
        hyper = {**defaults, **(overrides or {})}
        fingerprint = code_fingerprint(Path(p.repo), model_dir)
        # Outside the write transaction: git may take a moment, and so may a dataset's file.
        diff = git_diff(Path(p.repo), model_dir) if fingerprint.endswith("+dirty") else None
        # The diff goes to the artifact store: refused, as an engine is, on a host that
        # cannot use it (not mounted here: its folder is not made at the mount point).
        diffs = None if diff is None else Hosts(self.store).check_artifacts() / "diffs"
        require_file(ds_name, ds_path)
        header = dataset_columns(ds_path, ds_format)
        columns = (
            {"features": [c for c in header if c != ds_target], "target": ds_target}
            if header is not None
            else None
        )
        # A row-locked writer (PostgreSQL: beside the engines' writes, not waiting for each of
        # them): it writes only the new job's rows. What it reads and checks is changed only
        # by writers that run alone (an archive, a removal), so it cannot change meanwhile.
        with self.store.writer(rows=True) as s:
            # Re-checked: the dataset may have been archived meanwhile (a project is never
            # removed, and an archived one still takes jobs).
            model_id = (
                known.get(model)
                or s.exec(
                    select(Model.id).where(Model.project_id == p.id, Model.name == model)
                ).one()
            )
            ds = lookup.dataset_by_id(s, p, ds_id)
            job = self.submit.queue_job(
                s,
                JobType.train,
                p.id,
                model_id=model_id,
                dataset_id=ds.id,
                params={
                    "hyperparameters": hyper,
                    "overrides": overrides or {},
                    "code_fingerprint": fingerprint,
                    "requirements": requirements(model_dir),
                    "columns": columns,
                },
            )
            if diff is not None and diffs is not None:
                self._keep_diff(s, job, diff, diffs)
            return self.submit.submitted(s, job, (p.name, model, None, ds.name))

    def _keep_diff(self, s: Session, job: Job, diff: bytes, diffs: Path) -> None:
        """A ``+dirty`` training keeps what is not committed: the model folder's ``git
        diff``, named by a ``code_diff`` event, in the artifact store (``diffs/JOB.diff``),
        which every host reads, as the version's files."""
        path = diffs / f"{job.id}.diff"
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
            JobEventKind.code_diff,
            f"the model folder has local changes: {len(files)} file(s), "
            f"{len(diff)} bytes of diff kept in {path}",
            self.store.now(),
            {"path": str(path), "bytes": len(diff), "files": files},
        )

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
        # Where it goes first (an unknown project says so, whatever the file), then the file:
        # nothing is hashed for an import that is refused anyway.
        with self.store.reader() as s:
            self._importable(s, project, model)
        source = (source or "").strip()
        if "://" in source:
            if not source.lower().startswith(("http://", "https://")):
                raise ModelDeckError(
                    f"{source!r}: only http(s) URLs and local files can be imported"
                )
            _check_url(source)
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
        # Hashed before the write transaction: a big file holds no lock while it is read.
        sha = None if "://" in source else import_sha256(Path(source), whole=not again)
        with self.store.writer() as s:
            p, m = self._importable(s, project, model, scan_repo=False)  # checked just now
            params: dict[str, Any] = {"model": model, "source": source, "format": fmt}
            if m is not None and sha is not None:
                same = identical_version(s, m.id, sha)
                if same is not None:
                    raise ModelDeckError(identical_message(source, model, same))
            if again:
                params["again"] = True
            job = self.submit.queue_job(
                s, JobType.import_, p.id, model_id=m.id if m else None, params=params
            )
            return self.submit.submitted(s, job)

    def _importable(
        self, s: Session, project: str, model: str, scan_repo: bool = True
    ) -> tuple[Project, Model | None]:
        """The project and the BYOM model (None when new) an import goes to; refused when
        the name is a code model's (a folder of the repository too, with ``scan_repo``)."""
        p = lookup.project(s, project)
        m = s.exec(select(Model).where(Model.project_id == p.id, Model.name == model)).first()
        if m is not None and m.kind != "byom":
            raise ModelDeckError(f"{model!r} is a code model of {p.name}: pick another name")
        if scan_repo and m is None and model in self.catalog.model_dirs(p.repo):
            raise ModelDeckError(f"{model!r} is a code model of {p.name}: pick another name")
        return p, m


def _check_url(source: str) -> None:
    """Refuse, before queueing, a URL no download could use (no host, a bad port, a host
    name that is no valid IDNA name)."""
    import httpx

    try:
        host = httpx.URL(source).host
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ModelDeckError(
            f"cannot download {quoted(without_userinfo(source))}: {printable(first_line(exc))}"
        ) from None
    if not host:
        raise ModelDeckError(f"cannot download {quoted(without_userinfo(source))}: no host")
