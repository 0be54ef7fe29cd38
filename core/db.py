"""The database connection. Everything SQLite-specific lives in this one module."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        from core.clock import iso

        return iso(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (anywhere inside) made None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    # Event details carry datetimes (fire times, next runs): store them as ISO 8601 UTC.
    # Only standard JSON is stored (SQLite's json functions read nothing else): a NaN or an
    # infinity, which json.dumps would write as the non-JSON NaN or Infinity, becomes null.
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=_json_default, allow_nan=False)


def storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full: a write that can work
    again once space is freed, not a fault of the data being written."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "database or disk is full" in str(orig)
        )
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def make_engine(url: str) -> Engine:
    """An engine tuned for several processes sharing one database.

    SQLite: WAL so readers never wait for the writer, a long busy timeout, and write
    transactions that take the write lock up front (``BEGIN IMMEDIATE``) so two writers
    queue instead of failing with ``database is locked`` when one upgrades a read lock.
    """
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, json_serializer=_dumps)
    engine = create_engine(
        url,
        json_serializer=_dumps,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        mode = "IMMEDIATE" if conn.get_execution_options().get("immediate") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def write_session(engine: Engine) -> Session:
    """A session whose transaction holds the write lock from its first statement."""
    return Session(engine.execution_options(immediate=True), expire_on_commit=False)


def read_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


@contextlib.contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    if not is_sqlite(url) or url.endswith(":memory:"):
        yield
        return
    path = Path(url.split("///", 1)[1] + ".migrate.lock")
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _head_revision() -> str:
    heads = sorted(p.stem.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("*.py"))
    return heads[-1]


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database; None for a database without one."""
    with engine.connect() as conn:
        # One plain query on the usual path (every command's start); the inspector only
        # when it fails, to tell a database without the table from any other error.
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            conn.rollback()
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (cheap when it is already there)."""
    url = engine.url.render_as_string(hide_password=False)
    if current_revision(engine) == _head_revision():
        return
    from alembic import command
    from alembic.config import Config

    with _migration_lock(url):
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["engine"] = engine
        command.upgrade(cfg, "head")
