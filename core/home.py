"""Where modeldeck keeps its database and artifacts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from core.db import check_url, folder_writable, sqlite_file_missing, sqlite_url
from core.errors import ModelDeckError
from core.text import printable


def resolve_home(home: str | os.PathLike[str] | None = None, create: bool = True) -> Path:
    """``--home``, else ``$MODELDECK_HOME``, else the platform's user data dir; a folder
    that cannot be the data home is refused with a ModelDeckError. ``create``: made when
    missing (else only its path: for a command that changes nothing)."""
    chosen = home or os.environ.get("MODELDECK_HOME")
    if not chosen:
        from platformdirs import user_data_dir

        chosen = user_data_dir("modeldeck")
    path = Path(chosen).expanduser().resolve()
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    if shown != str(path):  # the database URL and file names must be UTF-8 text
        raise ModelDeckError(f"the data home {printable(shown)} is not a valid UTF-8 path")
    if path.exists() and not path.is_dir():
        raise ModelDeckError(f"cannot use {printable(shown)} as the data home: not a folder")
    if create:
        make_home(path)
    return path


def make_home(path: Path) -> None:
    """Make the data home's folder when it is missing; one this user may not write to is
    read (see core.db.make_engine)."""
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDeckError(
            f"cannot use {printable(shown)} as the data home: {exc.strerror or exc}"
        ) from None
    if not os.access(path, os.X_OK):
        raise ModelDeckError(f"cannot use {printable(shown)} as the data home: not readable")


def writable(home: Path) -> bool:
    """Whether this process may write in the data home (a home not made yet will be)."""
    return not home.exists() or folder_writable(home)


def require_writable(home: Path, doing: str) -> None:
    """Refuse, in one line, what must write in the data home (run jobs, serve as an engine)
    when it is read-only: everything else may still read it."""
    if not writable(home):
        shown = os.fsencode(home).decode("utf-8", "backslashreplace")
        raise ModelDeckError(f"the data home {printable(shown)} is read-only: cannot {doing}")


def resolve_db_url(home: Path, db: str | None = None) -> str:
    """``--db``, else ``$MODELDECK_DB`` (unless empty), else the SQLite file in the data
    home; one that is no SQLite or PostgreSQL URL is refused (an empty ``--db`` too)."""
    url = db if db is not None else os.environ.get("MODELDECK_DB") or None
    if url is None:
        return sqlite_url(home / "modeldeck.db")
    check_url(url)
    return url


def require_made(home: Path, db_url: str) -> None:
    """Refuse, in one line, a SQLite database whose file does not exist (the data home's
    own, or one ``--db`` names): a command that reads, or changes what is there, would find
    nothing, and must not make one (a typo in ``--home`` would leave a home behind)."""
    if not sqlite_file_missing(db_url):
        return
    if db_url == sqlite_url(home / "modeldeck.db"):
        shown = os.fsencode(home).decode("utf-8", "backslashreplace")
        raise ModelDeckError(
            f"no modeldeck data in {printable(shown)}: check --home and $MODELDECK_HOME, or "
            "start there with `modeldeck project add NAME --repo DIR` or `modeldeck demo`"
        )
    raise ModelDeckError(
        f"no database file at {printable(make_url(db_url).database or '')}: check --db and "
        "$MODELDECK_DB, or make it with `modeldeck db upgrade`"
    )


def new_id(prefix: str) -> str:
    """A printable, copyable id such as ``j-3f9a0c1b2d4e``."""
    return f"{prefix}-{secrets.token_hex(6)}"
