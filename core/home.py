"""Where modeldeck keeps its database and artifacts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from core.db import check_url, folder_writable, sqlite_file_missing, sqlite_url
from core.errors import ModelDeckError
from core.text import printable


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``--home``, else ``$MODELDECK_HOME``, else the platform's user data dir; a path that
    cannot be the data home is refused with a ModelDeckError. Not made here: what may start
    in an empty home makes it (``make_home``) once the rest of its input is good."""
    chosen = home or os.environ.get("MODELDECK_HOME")
    if not chosen:
        from platformdirs import user_data_dir

        chosen = user_data_dir("modeldeck")
    path = Path(chosen).expanduser().resolve()
    shown = _shown(path)
    if shown != str(path):  # the database URL and file names must be UTF-8 text
        raise ModelDeckError(f"the data home {printable(shown)} is not a valid UTF-8 path")
    if path.exists() and not path.is_dir():
        raise ModelDeckError(f"cannot use {printable(shown)} as the data home: not a folder")
    return path


def _shown(path: Path) -> str:
    """A path as it may be shown: a byte that is not UTF-8 as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def home_db_url(home: Path) -> str:
    """The URL of the data home's own SQLite database."""
    return sqlite_url(home / "modeldeck.db")


def make_home(path: Path) -> None:
    """Make the data home's folder when it is missing; one this user may not write to is
    read (see core.db.make_engine)."""
    shown = _shown(path)
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
        raise ModelDeckError(
            f"the data home {printable(_shown(home))} is read-only: cannot {doing}"
        )


def resolve_db_url(home: Path, db: str | None = None) -> str:
    """``--db``, else ``$MODELDECK_DB`` (unless empty), else the SQLite file in the data
    home; one that is no SQLite or PostgreSQL URL is refused (an empty ``--db`` too)."""
    url = db if db is not None else os.environ.get("MODELDECK_DB") or None
    if url is None:
        return home_db_url(home)
    check_url(url)
    return url


def require_made(home: Path, db_url: str) -> None:
    """Refuse, in one line, a SQLite database whose file does not exist (the data home's
    own, or one ``--db`` names): a command that reads, or changes what is there, would find
    nothing, and must not make one (a typo in ``--home`` would leave a home behind)."""
    if not sqlite_file_missing(db_url):
        return
    if db_url == home_db_url(home):
        raise ModelDeckError(
            f"no modeldeck data in {printable(_shown(home))}: check --home and $MODELDECK_HOME, or "
            "start there with `modeldeck project add NAME --repo DIR` or `modeldeck demo`"
        )
    raise ModelDeckError(
        f"no database file at {printable(make_url(db_url).database or '')}: check --db and "
        "$MODELDECK_DB, or make it with `modeldeck db upgrade`"
    )


def new_id(prefix: str) -> str:
    """A printable, copyable id such as ``j-3f9a0c1b2d4e``."""
    return f"{prefix}-{secrets.token_hex(6)}"
