"""A job's row as one write transaction of the engine reads it, and what that transaction
adds to it: new events and changed fields, written with a few Core statements.

The engine's hot writes (a job's end, its records, an inline job) go through this, not
through ORM objects: one ``SELECT`` to read the row, one ``UPDATE`` for its changes and one
``INSERT`` of all its new events, whatever the job did in between. ``Job.status`` is not
among the fields it writes: ``core.jobs.end`` moves a ``JobRow``, as the only writer of a
job's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from core import rawsql
from core.models import Job, JobEvent
from core.text import storable

_JOB = Job.__table__
_EVENT = JobEvent.__table__
# The columns a job's end, its records and its effects read; those below it may change.
READ = (
    "id",
    "project_id",
    "type",
    "status",
    "actor",
    "created_at",
    "started_at",
    "stop_requested_at",
    "engine_id",
    "host",
    "pid",
)
WRITABLE = (
    "model_id",
    "version_id",
    "deployment_id",
    "dataset_id",
    "params",
    "outputs",
    "events_offset",
    "next_seq",
)
# Statements built once (their compiled form is cached): values are bound when they run.
# Locked (PostgreSQL): writers beside each other take a job's status and next event number
# from its row in turn (``core.db.write_session``); several rows in the order of their ids.
_COLUMNS = [_JOB.c[name] for name in READ + WRITABLE]
_LOAD = select(*_COLUMNS).where(_JOB.c.id == bindparam("row_id")).with_for_update()
_LOAD_MANY = (
    select(*_COLUMNS)
    .where(_JOB.c.id.in_(bindparam("row_ids", expanding=True)))
    .order_by(_JOB.c.id)
    .with_for_update()
)
_SAVE = update(_JOB).where(_JOB.c.id == bindparam("row_id"))
_INSERT_EVENTS = insert(_EVENT)


@dataclass
class JobRow:
    """One job's row (the columns in READ and WRITABLE) and its pending writes."""

    id: str
    project_id: str
    type: str
    status: str
    actor: str
    created_at: datetime
    started_at: datetime | None
    stop_requested_at: datetime | None
    engine_id: str | None
    host: str | None
    pid: int | None
    model_id: str | None
    version_id: str | None
    deployment_id: str | None
    dataset_id: str | None
    params: dict[str, Any]
    outputs: list[Any]
    events_offset: int
    next_seq: int
    events: list[dict[str, Any]] = field(default_factory=list)
    _read: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, conn: Connection, job_id: str) -> JobRow | None:
        """The job's row, read in ``conn``'s transaction; None when there is none."""
        got = rawsql.run(conn, _LOAD, {"row_id": job_id}).first()
        return None if got is None else cls._of(got)

    @classmethod
    def load_many(cls, conn: Connection, job_ids: list[str]) -> dict[str, JobRow]:
        """The rows of these jobs (one statement), by id; a job with none is left out."""
        got = rawsql.run(conn, _LOAD_MANY, {"row_ids": list(job_ids)})
        return {row.id: row for row in map(cls._of, got)}

    @classmethod
    def _of(cls, got: Any) -> JobRow:
        values = got._asdict()
        values["params"] = values["params"] or {}
        values["outputs"] = values["outputs"] or []
        row = cls(**values)
        row._read = {name: values[name] for name in WRITABLE}
        return row

    def add_event(
        self,
        kind: str,
        message: str,
        at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an event to the job's timeline (written by ``save`` or ``core.jobs.end``);
        its sequence number comes from the row, read in the same write transaction."""
        self.events.append(
            {
                "job_id": self.id,
                "seq": self.next_seq,
                "at": at,
                "kind": kind,
                "message": storable(message),  # the job's own text: never a NUL
                "details": storable(details or {}),
            }
        )
        self.next_seq += 1

    def changes(self) -> dict[str, Any]:
        """The fields changed since the row was read or last written."""
        return {
            name: getattr(self, name)
            for name in WRITABLE
            if getattr(self, name) != self._read.get(name)
        }

    def mark(self) -> tuple[int, dict[str, Any]]:
        """Where the pending writes are now: ``undo`` goes back to it."""
        return len(self.events), {name: getattr(self, name) for name in WRITABLE}

    def undo(self, mark: tuple[int, dict[str, Any]]) -> None:
        """Forget the events and field changes made since ``mark`` (a savepoint rolled back)."""
        count, values = mark
        del self.events[count:]
        for name, value in values.items():
            setattr(self, name, value)

    def write_events(self, conn: Connection) -> None:
        """Insert the pending events, all in one statement."""
        if self.events:
            rawsql.run(conn, _INSERT_EVENTS, self.events)
            self.events = []

    def save(self, conn: Connection) -> bool:
        """Write the changed fields and the pending events (status unchanged); whether there
        was anything to write."""
        values = self.changes()
        if not values and not self.events:
            return False
        if values:
            rawsql.run(conn, _SAVE, {"row_id": self.id, **values})
            self.written(values)
        self.write_events(conn)
        return True

    def written(self, values: dict[str, Any]) -> None:
        """``values`` are in the database now."""
        self._read.update(values)
