"""Facts read from a project's repository and from data files, never from the database:
model folders and their config, code fingerprints and local changes, requirements, file
hashes, and a dataset file's columns and rows."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from core.errors import ModelDeckError, first_line
from core.inputs import NAME_RULE, name_problem
from core.text import printable, quoted


def read_json(path: Path) -> dict[str, Any]:
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


# Bytecode is no local change of the code (Python writes it wherever it imports from).
NOT_CODE = (":(exclude,glob)**/__pycache__/**", ":(exclude,glob)**/*.pyc")


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
        dirty = git("status", "--porcelain", "--", str(model_dir), *NOT_CODE).stdout.strip()
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
        listed = git(
            "ls-files", "-z", "--others", "--exclude-standard", "--", str(model_dir), *NOT_CODE
        )
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


def requirements(model_dir: Path) -> list[str]:
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


def import_sha256(path: Path, whole: bool = True) -> str | None:
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
            f"cannot read model file {quoted(str(path))}: {exc.strerror or exc}"
        ) from None


def dataset_shape(path: Path, fmt: str) -> tuple[list[str], int]:
    """Column names and row count of a dataset file, read without pandas."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path)
        names = list(meta.schema_arrow.names)
        _named_once(path, names)
        return names, meta.metadata.num_rows
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = _csv_header(fh, path.name)
            _named_once(path, header)
            try:
                rows = _csv_rows(csv.reader(fh, strict=True), path.name, len(header))
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):  # as pandas, refused
                    raise ModelDeckError(
                        f"{path.name} is not a CSV file: a quoted field is never closed"
                    ) from None
                fh.seek(0)  # other strict complaints (`"a"b`): read leniently, as pandas does
                next(csv.reader(fh))
                rows = _csv_rows(csv.reader(fh), path.name, len(header))
    except UnicodeDecodeError:
        raise ModelDeckError(f"{path.name} is not a CSV file: it is not UTF-8 text") from None
    except csv.Error as exc:
        raise ModelDeckError(f"{path.name} is not a CSV file: {exc}") from None
    return header, rows


def _csv_rows(reader: Iterator[list[str]], name: str, columns: int) -> int:
    """How many rows follow the header; one longer than it is refused, and so is one that
    holds a NUL byte (a binary or damaged file: pandas would keep the byte in the value and
    read its column as text)."""
    rows = 0
    for row in reader:
        if not row:
            continue  # a blank line is no row (pandas skips them too)
        rows += 1
        if len(row) > columns:
            raise ModelDeckError(
                f"{name} is not a CSV table: row {rows} has {len(row)} fields, the header {columns}"
            )
        if any("\0" in field for field in row):
            raise ModelDeckError(f"{name} is not a CSV file: row {rows} holds a NUL byte")
    return rows


def _named_once(path: Path, names: list[str]) -> None:
    """Refuse a column named twice: pandas reads the second ``a`` as ``a.1``, and no name
    says which is which (a target named ``a`` could be either). Columns without a name are
    pandas' ``Unnamed: n``, each its own."""
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise ModelDeckError(
                f"{path.name} has the column {quoted(name)} twice in its header: "
                "name each column once"
            )
        seen.add(name)


def dataset_header(path: str | Path, fmt: str) -> list[str]:
    """A dataset file's column names (its header only); a ModelDeckError saying why when
    it cannot be read (not UTF-8 text, empty, gone)."""
    name = Path(path).name
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _csv_header(fh, name)  # as pandas reads it: a BOM is no part of it
    except ModelDeckError:
        raise
    except UnicodeDecodeError:
        raise ModelDeckError(f"{name} is not a CSV file: it is not UTF-8 text") from None
    except OSError as exc:
        raise ModelDeckError(f"cannot read {name}: {exc.strerror or exc}") from None
    except Exception as exc:  # csv.Error, pyarrow's errors: the file is no table
        raise ModelDeckError(f"cannot read {name}: {first_line(exc)}") from None


def _csv_header(fh: TextIO, name: str) -> list[str]:
    """The first row of an open CSV file, its column names, refused when there are none.
    A quoted field that is never closed would swallow the rest of the file into one
    column (pandas refuses such a file): refused too."""
    try:
        header = next(csv.reader(fh, strict=True), None)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise ModelDeckError(
                f"{name} is not a CSV file: a quoted field is never closed"
            ) from None
        fh.seek(0)  # other strict complaints (`"a"b`): read leniently, as pandas does
        header = next(csv.reader(fh), None)
    if not header:
        raise ModelDeckError(f"{name} is empty: a CSV dataset needs a header row")
    if not any(header):
        raise ModelDeckError(f"{name} names none of its columns: its first row is the header")
    if any("\0" in column for column in header):
        raise ModelDeckError(f"{name} is not a CSV file: its header holds a NUL byte")
    return header


def dataset_columns(path: str | Path, fmt: str) -> list[str] | None:
    """A dataset file's column names (its header only), or None when it cannot be read."""
    try:
        return dataset_header(path, fmt)
    except ModelDeckError:
        return None


def require_file(name: str, path: str) -> None:
    """Refuse a dataset whose file is gone: a job reading it could only fail."""
    if not Path(path).exists():
        raise ModelDeckError(
            f"the file of dataset {name!r} is missing: {printable(path)} does not exist "
            "(moved or deleted?)"
        )


def code_model_dirs(repo: str, warn: Callable[[str], None]) -> dict[str, Path]:
    """The model folders of a repository: ``<repo>/models/<name>/training.py``. A folder
    whose name breaks the name rule (bytes that are not UTF-8, control characters,
    spaces) is skipped with a warning (to ``warn``) that names it."""
    root = Path(repo) / "models"
    if not root.is_dir():
        return {}
    found = {}
    for d in sorted(root.iterdir()):
        if d.name.startswith((".", "_")) or not (d / "training.py").is_file():
            continue
        problem = name_problem(d.name)
        if problem:
            warn(
                f"skipping model folder {quoted(d.name)} in {printable(str(root))}: "
                f"its name {problem} (a name must be {NAME_RULE})"
            )
            continue
        found[d.name] = d
    return found


def model_defaults(model_dir: Path) -> dict[str, Any]:
    """The default hyperparameters in a code model's config.json; {} when none."""
    defaults = read_json(model_dir / "config.json").get("hyperparameters", {})
    return dict(defaults) if isinstance(defaults, dict) else {}
