"""Where modeldeck keeps its database and artifacts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from platformdirs import user_data_dir

from core.db import sqlite_url


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``--home``, else ``$MODELDECK_HOME``, else the platform's user data dir."""
    chosen = home or os.environ.get("MODELDECK_HOME") or user_data_dir("modeldeck")
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_db_url(home: Path, db: str | None = None) -> str:
    """``--db``, else ``$MODELDECK_DB``, else the SQLite file in the data home."""
    return db or os.environ.get("MODELDECK_DB") or sqlite_url(home / "modeldeck.db")


def new_id(prefix: str) -> str:
    """A printable, copyable id such as ``j-3f9a0c1b2d4e``."""
    return f"{prefix}-{secrets.token_hex(6)}"
