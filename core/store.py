"""Where modeldeck keeps things: one database and one data home, and the clock they are read by.

``Store`` is the seam that the service (``Deck``) and the engine share: sessions, the time, the
paths of a job's files, and the wake-up of engines after a commit that gives them work. Neither
side reaches into the other for these.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DatabaseError, OperationalError
from sqlmodel import Session

from core import identity, pgwakeup, wakeup
from core.clock import Clock, SystemClock
from core.db import (
    claim_session,
    is_sqlite,
    make_engine,
    migrate,
    read_rows,
    read_session,
    shared_queue,
    shown_url,
    single_reader,
    unreachable,
    write_session,
)
from core.home import home_db_url, make_home, require_made, resolve_db_url, resolve_home
from core.models import EngineLease, Setting
from core.procfs import holder_gone
from core.views import LeaseView

ARTIFACTS = "artifacts"  # the setting naming the artifact store
LEASE_NAME = "engine"  # the one row of ``engine_lease``: who dispatches for this database


def lease_in_force(lease: EngineLease | None, now: datetime) -> bool:
    """Whether ``lease`` still binds: not run out, and its holder not known to be dead (a
    lease whose engine on this host has ended is void at once)."""
    return lease is not None and lease.expires_at > now and not holder_gone(lease.host, lease.pid)


class Store:
    """A database and a data home: ``reader()``/``writer()`` sessions, ``now()``, paths."""

    def __init__(
        self,
        home: str | Path | None = None,
        db: str | None = None,
        clock: Clock | None = None,
        create: bool = True,
    ) -> None:
        """``create=False``: a command that can only read or change what is already there
        refuses a data home that holds no database (a mistyped ``--home``) instead of
        making one (see ``core.home.require_made``)."""
        # The home is made only once the database URL is good, and, when the database is
        # elsewhere, once it answered: a refusal leaves no folder behind.
        self.home = resolve_home(home)
        self.db_url = resolve_db_url(self.home, db)
        own_file = self.db_url == home_db_url(self.home)
        if not create:
            require_made(self.home, self.db_url)
        elif own_file:
            make_home(self.home)  # its database file goes in it
        self.engine = make_engine(self.db_url)
        # Several engines dispatch side by side (PostgreSQL), or the lease holder alone.
        self.shared_queue = shared_queue(self.engine)
        try:
            migrate(self.engine)
        except DatabaseError as exc:  # OperationalError, and SQLite's "not a database"
            if is_sqlite(self.db_url):
                refused = ("unable to open", "file is not a database")
                if not any(r in str(exc.orig) for r in refused):
                    raise  # a locked or full database: not a URL to refuse
            elif not isinstance(exc, OperationalError):
                raise  # refused by the server (a role without grants): said as such
            self.engine.dispose()
            raise unreachable(exc, self.db_shown) from None
        if create and not own_file:
            make_home(self.home)
        self._single = single_reader(self.engine)
        self.clock: Clock = clock or SystemClock()
        self.jobs_dir = self.home / "jobs"
        self._artifacts_dir: Path | None = None
        self._submit_listeners: list[Callable[[str], None]] = []
        self._role: str | None = None  # the database role, asked once (PostgreSQL)

    def now(self) -> datetime:
        return self.clock.now()

    def actor(self) -> str:
        """The authenticated user (``core.identity``): who the jobs, approvals and changes
        made through this store are recorded as done by."""
        if self.engine.dialect.name == "sqlite":
            return identity.os_login()  # asked each time: a process may change its uid
        if self._role is None:
            self._role = identity.authenticated_user(self.engine)
        return self._role

    def reader(self) -> Session:
        return read_session(self.engine, self._single)

    def read_rows(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows of one read statement (Core), without a session: for the reads the
        engine makes every round (see ``core.db.read_rows``)."""
        return read_rows(self._single, stmt, params)

    def writer(self, rows: bool = False) -> Session:
        """A write session; ``rows``: a row-locked one, which runs beside the others of its
        kind on PostgreSQL and locks the rows it changes (see ``core.db.write_session``)."""
        return write_session(self.engine, rows)

    def claimer(self) -> Session:
        """A session to claim queued jobs in (see ``core.db.claim_session``)."""
        return claim_session(self.engine)

    @property
    def db_shown(self) -> str:
        """The database URL as it may be shown: without its password."""
        return shown_url(self.engine.url)

    def close(self) -> None:
        self.engine.dispose()

    # -- paths ----------------------------------------------------------------------------

    @property
    def artifacts_dir(self) -> Path:
        """The artifact store: the one configured in the database (``config set artifacts``,
        a folder every host mounts), else this data home's ``artifacts/``. Read once."""
        if self._artifacts_dir is None:
            with self.reader() as s:
                row = s.get(Setting, ARTIFACTS)
            self._artifacts_dir = Path(row.value) if row is not None else self.home / "artifacts"
        return self._artifacts_dir

    def forget_settings(self) -> None:
        """Read the settings again at their next use (one was just changed)."""
        self._artifacts_dir = None

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "log.txt"

    def staging_dir(self, job_id: str) -> Path:
        """Where a job's new version files wait until its outcome is committed."""
        return self.artifacts_dir / ".staging" / job_id

    # -- wake-ups -------------------------------------------------------------------------

    def on_submit(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(job_id)`` after this process commits work for an engine; returns
        a function that removes the callback again."""
        self._submit_listeners.append(callback)

        def remove() -> None:
            if callback in self._submit_listeners:
                self._submit_listeners.remove(callback)

        return remove

    def announce(self, s: Session) -> bool:
        """Before the commit of ``s`` that gives engines work: on PostgreSQL the wake-up of
        the other processes' engines goes in its transaction (delivered at its commit, with
        no round trips of its own); then ``notify(..., announced=True)`` after the commit.
        False where the wake-up is sent after the commit only (SQLite)."""
        if not self.shared_queue:
            return False
        pgwakeup.announce(s)
        return True

    def notify(self, job_id: str, announced: bool = False) -> None:
        """After a commit that gives an engine work: wake this process's engine and the one
        serving the database from another process (``announced``: already told, see
        ``announce``)."""
        for listener in list(self._submit_listeners):
            listener(job_id)
        if announced:
            return
        if self.shared_queue:
            pgwakeup.poke(self.engine)
        else:
            wakeup.poke(self.db_url)

    def listen(self, on_poke: Callable[[], None]) -> wakeup.Listener | pgwakeup.Listener | None:
        """Hear other processes' wake-ups (``notify``): ``on_poke()`` runs on a thread of
        its own. None when it cannot listen now (try again later)."""
        if self.shared_queue:
            return pgwakeup.listen(self.engine, on_poke)
        return wakeup.listen(self.db_url, on_poke)

    # -- the engine lease -----------------------------------------------------------------

    def serving_engine(self) -> LeaseView | None:
        """The engine that holds the lease now, or None when no live engine serves."""
        with self.reader() as s:
            lease = s.get(EngineLease, LEASE_NAME)
            if lease is None or not lease_in_force(lease, self.now()):
                return None
            return LeaseView(
                owner=lease.owner,
                host=lease.host,
                pid=lease.pid,
                heartbeat_at=lease.heartbeat_at,
                expires_at=lease.expires_at,
            )
