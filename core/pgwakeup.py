"""Waking idle engines through PostgreSQL's ``LISTEN``/``NOTIFY``: the wake-up of
``core.wakeup`` for a database that engines on several hosts share.

Every engine serving the database listens on one channel (a notification reaches only the
database it was sent in, so the channel needs no name of its own per database); a process
that queues a job or asks for a stop notifies after its commit. The engine's poll remains the
fallback: a notification lost with a dropped connection delays a job by one poll at most.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

CHANNEL = "modeldeck_wakeup"


def poke(engine: Engine) -> None:
    """Tell every engine listening on this database that there is work (after a commit);
    a notification that cannot be sent costs nothing but the wait for an engine's poll."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
            conn.commit()
    except DBAPIError:
        pass


def announce(s: Session) -> None:
    """The same, sent at the commit of the transaction ``s`` is in (PostgreSQL delivers a
    transaction's notifications when it commits, none when it rolls back)."""
    s.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listener:
    """The engine's end: ``on_poke()`` runs (on a thread of its own) for each notification.

    It holds a connection of its own, outside the pool, in autocommit: ``LISTEN`` must not
    wait in a transaction, and a pooled connection would carry it to other work."""

    def __init__(self, dsn: str, on_poke: Callable[[], None]) -> None:
        import psycopg

        self._conn = psycopg.connect(dsn, autocommit=True, application_name="modeldeck-wakeup")
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._on_poke = on_poke
        self._stop = threading.Event()
        # close() writes a byte here: the thread's wait ends at once, not at a poll.
        self._bye_r, self._bye_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="modeldeck-pgwakeup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        try:
            poller = select.poll()  # not select(): descriptors past 1024 too
            poller.register(self._conn.fileno(), select.POLLIN)
            poller.register(self._bye_r, select.POLLIN)
            while not self._stop.is_set():
                ready = {fd for fd, _ in poller.poll()}
                if self._bye_r in ready:
                    break
                for _ in self._conn.notifies(timeout=0):  # what has arrived, no waiting
                    self._on_poke()
        except (psycopg.Error, OSError, ValueError):
            pass  # the connection dropped: the engine's poll goes on; it listens again later
        finally:
            self._stop.set()

    @property
    def alive(self) -> bool:
        return not self._stop.is_set()

    def close(self) -> None:
        """End the thread and let the connection go; again (a dropped one) does nothing."""
        if self._bye_w < 0:
            return
        self._stop.set()
        os.write(self._bye_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self._conn.close()
        os.close(self._bye_r)
        os.close(self._bye_w)
        self._bye_r = self._bye_w = -1


def listen(engine: Engine, on_poke: Callable[[], None]) -> Listener | None:
    """A listener on the database of ``engine``; None when it cannot connect (the engine
    then polls, and tries again later)."""
    import psycopg

    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return Listener(dsn, on_poke)
    except psycopg.Error:
        return None
