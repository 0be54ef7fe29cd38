"""The database connection. Everything specific to SQLite or PostgreSQL lives in this module.

SQLite is the embedded default; PostgreSQL (``postgresql://...``, psycopg 3 from the optional
extra ``postgres``) lets several hosts share one registry.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from core import collector, rawsql
from core.errors import ModelDeckError, first_line
from core.text import printable

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# PostgreSQL advisory lock keys (any two 64-bit numbers only modeldeck uses).
PG_MIGRATION_LOCK = 0x6D64_6D69_6772_0001  # one process migrates at a time
# Writers take turns on it, as SQLite's write lock makes them; row-locked writers (the
# engine's hot writes, see ``write_session``) hold it shared, side by side.
PG_WRITE_LOCK = 0x6D64_7772_6974_0001
ROWS = "rows"  # the ``immediate`` execution option of a row-locked writer
# A pooled PostgreSQL connection left unused this long is pinged before it is used again (the
# server may have restarted meanwhile). One used more recently is not: a ping is a round trip
# a transaction, and the engine's are many. One that died meanwhile fails its statement, the
# pool starts afresh, and the engine's next round runs on new connections.
PING_IDLE = 10.0
POSTGRES_EXTRA = "PostgreSQL needs the optional extra 'postgres' (uv sync --extra postgres)"


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite file: its path quoted, so that a ``?`` (a query), a ``%`` (an
    escape) or a ``#`` in a folder's name stay part of the path."""
    return "sqlite:///" + quote(str(path), safe="/")


def folder_writable(folder: Path) -> bool:
    """Whether this process may make and change files in ``folder`` (not a read-only mount,
    nor a folder it lacks write permission on)."""
    try:
        read_only_mount = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_mount = False
    return os.access(folder, os.W_OK | os.X_OK) and not read_only_mount


def _read_only_file(url: str) -> Path | None:
    """The SQLite file of ``url`` when this process can only read it (its folder is
    read-only here: ``chmod -R a-w``, a read-only mount, another user's data home)."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    path = Path(database)
    return path if path.parent.is_dir() and not folder_writable(path.parent) else None


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file in a folder this process cannot write to.
    SQLite reads a WAL database's ``-shm`` file when a writer has it open (its ``-wal`` file
    is there), and sees that writer's commits; with no ``-wal`` file nobody has it open, the
    ``-shm`` cannot be made here, and the file is read as it stands (``immutable``). Decided
    at each connection (the engine does not pool them): a writer that comes later is seen."""
    uri = f"file:{quote(str(path), safe='/')}?mode=ro"
    if not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` is a SQLite database whose file does not exist (yet)."""
    if not is_sqlite(url):
        return False
    path = make_url(url).database or ""
    return (
        bool(path)
        and path != ":memory:"
        and not path.startswith("file:")
        and not Path(path).exists()
    )


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


DB_URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"
POSTGRES_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg")


def check_url(url: str) -> None:
    """Refuse, in one line, a database URL that is not one of SQLite or PostgreSQL (an
    unparsable one is not echoed: it may hold a password)."""
    if not url.strip():
        raise ModelDeckError(f"the database URL cannot be empty ({DB_URL_FORMS})")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # bytes of the command line that are not UTF-8
        raise ModelDeckError("the database URL is not valid UTF-8") from None
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018  (parsed lazily: a port that is no number fails here)
    except (ArgumentError, ValueError):
        raise ModelDeckError(f"the database URL cannot be read: use {DB_URL_FORMS}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise ModelDeckError(
            f"modeldeck keeps its registry in SQLite or PostgreSQL, not {printable(backend)} "
            f"({DB_URL_FORMS})"
        )
    if backend != "sqlite" and parsed.drivername not in POSTGRES_DRIVERS:
        raise ModelDeckError(
            f"modeldeck drives PostgreSQL with psycopg 3, not {printable(parsed.drivername)}: "
            f"write the URL as postgresql://USER@HOST/DATABASE"
        )
    if backend != "sqlite" and not parsed.database:
        # libpq would pick a database named after the user, and modeldeck would set it up.
        raise ModelDeckError(
            "the database URL names no database: write postgresql://USER@HOST/DATABASE"
        )
    if backend == "sqlite" and (parsed.database or ":memory:") == ":memory:":
        raise ModelDeckError(
            "a SQLite database in memory would be gone with this command and seen by no "
            f"engine: give a file ({DB_URL_FORMS})"
        )


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` (or ``postgres://``) is driven by
    psycopg 3; any other URL is used as given."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


MASK = "modeldeckmasked"  # stands in for a password in a URL until it is shown as ***


def shown_url(url: Any) -> str:
    """A database URL (SQLAlchemy's) as it may be shown: its password masked, whether in
    ``user:password@`` or in the query (``?password=...``), without the driver's name."""
    if url.get_backend_name() == "sqlite":  # its path as it is, not quoted
        query = "&".join(f"{k}={v}" for k, v in url.query.items())
        return f"sqlite:///{url.database or ''}" + (f"?{query}" if query else "")
    query = {k: (MASK if k.lower() == "password" else v) for k, v in url.query.items()}
    shown = url.set(drivername=url.get_backend_name(), query=query)
    return shown.render_as_string(hide_password=True).replace(MASK, "***")


def unreachable(exc: BaseException, shown: str) -> ModelDeckError:
    """The one-line refusal for a database that cannot be opened (``exc`` from connecting)."""
    reason = first_line(getattr(exc, "orig", None) or exc, "no answer")
    return ModelDeckError(f"cannot open the database {shown}: {reason}")


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ModelDeckError(POSTGRES_EXTRA) from None


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

    The storage stack is imported by now: the collector, held while a command starts, is
    released (``core.collector``).
    """
    collector.release()
    if is_postgres(url):
        return _postgres_engine(normalize_url(url))
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, json_serializer=_dumps)
    read_only = _read_only_file(url)
    if read_only is not None:  # read here; a write is refused by SQLite (core.errors)
        engine = create_engine(
            url,
            json_serializer=_dumps,
            creator=lambda: _open_read_only(read_only),
            poolclass=NullPool,
        )
    else:
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
        if read_only is None:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        options = conn.get_execution_options()
        if options.get(SINGLE):
            return  # one read statement, its own snapshot: no BEGIN, no ROLLBACK (read_rows)
        mode = "IMMEDIATE" if options.get("immediate") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: str) -> Engine:
    """PostgreSQL: a small pool per process (many processes share the server), connections
    unused for a while checked before use (the server may have restarted: ``PING_IDLE``), reads
    without a transaction (``read_session``), and write sessions that take turns
    on one advisory lock, as SQLite's ``BEGIN IMMEDIATE`` makes them: the read-then-write
    steps of the registry (a job's next event number, a model's next version) stay exact.
    Row-locked write sessions (``write_session(..., rows=True)``) hold that lock shared:
    they run side by side, each locking the rows it reads to change (``FOR UPDATE``), and
    wait only for the other writers, which wait for them. Claims of queued jobs do not take
    it: they lock rows (``FOR UPDATE SKIP LOCKED``)."""
    _require_psycopg()
    engine = create_engine(
        url,
        json_serializer=_dumps,
        # The driver sends no BEGIN of its own: ``_on_begin`` does, and a write session's
        # lock goes with it, in one round trip; a lone read (``read_rows``) needs none.
        isolation_level="AUTOCOMMIT",
        pool_size=4,
        max_overflow=8,
        pool_recycle=1800,
        connect_args={"application_name": "modeldeck", "connect_timeout": 10},
    )

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since >= PING_IDLE:
            _ping(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        options = conn.get_execution_options()
        if options.get(SINGLE):
            return  # one read statement, a snapshot of its own (read_rows)
        mode = options.get("immediate")
        if mode == ROWS:
            conn.exec_driver_sql(f"BEGIN; SELECT pg_advisory_xact_lock_shared({PG_WRITE_LOCK})")
        elif mode:
            conn.exec_driver_sql(f"BEGIN; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _ping(dbapi_conn: Any) -> None:
    """A round trip on a PostgreSQL connection; a dead one is refused as disconnected (the
    pool then drops it and checks out another, or connects anew)."""
    import psycopg

    try:
        dbapi_conn.execute("SELECT 1")
        if dbapi_conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            dbapi_conn.rollback()
    except psycopg.OperationalError as exc:
        raise DisconnectionError(str(exc)) from exc


def shared_queue(engine: Engine) -> bool:
    """Whether several engines may dispatch this database's queue at once (PostgreSQL:
    claims lock rows); else one engine dispatches, the lease holder (SQLite)."""
    return engine.dialect.name == "postgresql"


def claim_session(engine: Engine) -> Session:
    """A session to claim queued jobs in: on PostgreSQL it locks only the rows it claims
    (``FOR UPDATE SKIP LOCKED``), so engines claim side by side; on SQLite a write session."""
    if shared_queue(engine):
        return Session(engine, expire_on_commit=False)
    return write_session(engine)


def lock_keys(s: Session, keys: Iterator[str] | list[str]) -> None:
    """Hold ``keys`` until ``s`` ends (PostgreSQL advisory locks, taken in sorted order so
    two claimers never wait on each other); SQLite's one writer holds them all anyway."""
    if s.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def write_session(engine: Engine, rows: bool = False) -> Session:
    """A session whose transaction holds the write lock from its first statement.

    ``rows``: a row-locked writer. On PostgreSQL it holds the write lock shared, beside the
    other row-locked writers (the others wait for all of them, and they for the others), so
    each of its read-then-write steps must lock what it reads: the job row (``FOR UPDATE``)
    for a job's status and next event number, the model row for a model's next version
    number. On SQLite it is a writer like any other (``BEGIN IMMEDIATE``)."""
    return Session(
        engine.execution_options(immediate=ROWS if rows else True), expire_on_commit=False
    )


def read_session(engine: Engine, single: Engine | None = None) -> Session:
    """A session to read in. On PostgreSQL its statements run without a transaction (a
    ``single_reader`` engine): in READ COMMITTED each statement reads a snapshot of its own
    either way, so a reader's BEGIN and ROLLBACK were two round trips for nothing (and the
    ROLLBACK dropped the connection's prepared statements). Nothing is flushed unasked there
    (no autoflush): an object changed by mistake in a reader is not written. On SQLite a
    reader is one transaction: one snapshot for all its reads. ``single``: the engine's
    ``single_reader``, when the caller keeps one."""
    if engine.dialect.name == "postgresql":
        reader = single or single_reader(engine)
        return Session(reader, expire_on_commit=False, autoflush=False)
    return Session(engine, expire_on_commit=False)


# The execution option of a connection that runs one read statement (``read_rows``).
SINGLE = "modeldeck_single_read"


def single_reader(engine: Engine) -> Engine:
    """An engine for ``read_rows``: its connections begin no transaction of their own, so
    that a lone SELECT runs in a read snapshot of its own (no BEGIN, and no ROLLBACK: on
    PostgreSQL two round trips less). Built once a store (it shares the engine's pool)."""
    return engine.execution_options(**{SINGLE: True})


def read_rows(single: Engine, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
    """The rows of one read statement on a ``single_reader`` engine, without the BEGIN and
    ROLLBACK a session's read adds: two statements (round trips, on PostgreSQL) less for
    the reads the engine makes every round."""
    with single.connect() as conn:
        return rawsql.run(conn, stmt, params).rows


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One process migrates a database at a time: a file lock beside a SQLite file, an
    advisory lock on PostgreSQL (held by a connection of its own)."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text(f"SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text(f"SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                conn.commit()
        return
    if not is_sqlite(url) or url.endswith(":memory:"):
        yield
        return
    path = Path(f"{make_url(url).database}.migrate.lock")
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def known_revisions() -> list[str]:
    """This modeldeck's schema revisions, oldest first."""
    return sorted(p.stem.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("*.py"))


def head_revision() -> str:
    return known_revisions()[-1]


def newer_than_known(revision: str | None) -> bool:
    """Whether the schema is at a revision this modeldeck does not know (a newer one's)."""
    return revision is not None and revision not in known_revisions()


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


def migrate(engine: Engine) -> str | None:
    """Bring the schema to the newest revision (cheap when it is already there); the
    revision it was at, as read by the process that migrated (another one migrating at the
    same time may have done it first: then it was at the newest)."""
    head = head_revision()
    before = current_revision(engine)
    if before == head:
        return before
    if newer_than_known(before):
        raise ModelDeckError(
            f"the database's schema is at revision {before}, newer than this modeldeck knows "
            f"(up to {head}): use the modeldeck that upgraded it, or a newer one"
        )
    if _read_only_file(engine.url.render_as_string(hide_password=False)) is not None:
        raise ModelDeckError(
            f"the database's schema is at revision {before or 'none'} and this modeldeck "
            f"needs {head}, but its folder is read-only here: upgrade it where it can be "
            "written (`modeldeck db upgrade`)"
        )
    from alembic import command
    from alembic.config import Config

    with _migration_lock(engine):
        before = current_revision(engine)  # as the process that migrated before us left it
        if before == head:
            return before
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["engine"] = engine
        try:
            command.upgrade(cfg, "head")
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "42501":
                raise ModelDeckError(
                    f"the database's schema is at revision {before or 'none'} and this "
                    f"modeldeck needs {head}, but this role may not change it: the role that "
                    "owns the tables runs `modeldeck db upgrade`"
                ) from None
            if engine.dialect.name != "postgresql":
                raise  # SQLite's locked or full database: not the schema's fault
            # Refused by the server (a search_path in the URL's options naming no schema,
            # say): nothing was changed, the migration's transaction rolled back.
            raise ModelDeckError(
                f"cannot bring the database's schema to revision {head}: "
                f"{first_line(exc.orig or exc)}"
            ) from None
    return before
