"""The one writer of a job's status.

Every change of ``Job.status`` goes through ``move()``: a guarded ``UPDATE ... WHERE status =
<expected>`` that refuses a move ``JOB_MOVES`` lacks, and appends the move's event to the job's
timeline in the same transaction. A move that lost a race (someone else moved the job first)
changes nothing and says so by returning False.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from core import rawsql
from core.errors import ModelDeckError
from core.events import JobEventKind
from core.home import new_id
from core.jobrow import JobRow
from core.lifecycle import FINAL_STATUSES, JOB_MOVES, JobStatus, JobType, Trigger
from core.models import Job
from core.records import add_event

CANCELLED_BEFORE_START = "cancelled before it started"


class ForbiddenMove(ModelDeckError):
    """A status change that the lifecycle's ``JOB_MOVES`` table does not allow."""


def can_move(frm: JobStatus | str, to: JobStatus | str) -> bool:
    return (JobStatus(frm), JobStatus(to)) in JOB_MOVES


def move(
    s: Session,
    job: Job,
    to: JobStatus,
    at: datetime,
    event: tuple[JobEventKind, str, dict[str, Any]] | None = None,
    **fields: Any,
) -> bool:
    """Move ``job`` from the status this session knows to ``to``, setting ``fields`` too,
    and append ``event`` (kind, message, details) to its timeline. False (and nothing
    changed) when the row's status is no longer what the session knew. The caller commits."""
    frm = JobStatus(job.status)
    if (frm, to) not in JOB_MOVES:
        raise ForbiddenMove(f"job {job.id} cannot go from {frm.value} to {to.value}")
    moved = s.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == frm.value)  # type: ignore[arg-type]
        .values(status=to.value, **fields)
        .execution_options(synchronize_session="evaluate")
    ).rowcount
    if moved != 1:
        return False
    if event is not None:
        kind, message, details = event
        add_event(s, job, kind, message, at, details)
    return True


_JOB = Job.__table__
# ``end``'s guarded UPDATE, built once: the columns it sets are the keys it is run with.
_END = update(_JOB).where(
    _JOB.c.id == bindparam("row_id"), _JOB.c.status == bindparam("row_status")
)


def end(
    conn: Connection,
    row: JobRow,
    to: JobStatus,
    at: datetime,
    message: str,
    details: dict[str, Any],
    error: str | None = None,
    exit_code: int | None = None,
) -> bool:
    """``finish`` for a ``JobRow`` (the engine's Core-level path): one guarded ``UPDATE``
    with the row's other changes, then one ``INSERT`` of all its pending events, the final
    one among them. False (nothing written) when the row's status is no longer the one read."""
    frm = JobStatus(row.status)
    if (frm, to) not in JOB_MOVES or to not in FINAL_STATUSES:
        raise ForbiddenMove(f"job {row.id} cannot go from {frm.value} to {to.value}")
    row.add_event(JobEventKind(to.value), message, at, details)
    values = {
        **row.changes(),
        "status": to.value,
        "error": error,
        "finished_at": at,
        "exit_code": exit_code,
    }
    params = {"row_id": row.id, "row_status": frm.value, **values}
    moved = rawsql.run(conn, _END, params).rowcount
    if moved != 1:
        return False
    row.written(values)
    row.status = to.value
    row.write_events(conn)
    return True


def claim(s: Session, job: Job, at: datetime, engine_id: str, host: str) -> bool:
    """queued -> running for one engine: only one engine ever takes a job out of the queue."""
    return move(s, job, JobStatus.running, at, engine_id=engine_id, host=host, started_at=at)


# ``claim_many``'s statement, built once, and its forms returning the columns asked for.
_CLAIM = (
    update(_JOB)
    .where(
        _JOB.c.id.in_(bindparam("ids", expanding=True)),
        _JOB.c.status == JobStatus.queued.value,
    )
    .values(status=JobStatus.running.value)
)
_CLAIMS: dict[tuple[Any, ...], Any] = {}


def claim_many(
    s: Session,
    job_ids: Sequence[str],
    at: datetime,
    engine_id: str,
    host: str,
    columns: Sequence[Any] = (),
) -> list[Any]:
    """queued -> running for one engine, several jobs in one Core-level statement (no ORM
    objects, no event: a claim leaves none); the ids it took, in the order given (with
    ``columns`` of ``job``: the rows it took, each with its ``id``, as they are now). A job
    that is no longer queued (another engine took it, a stop cancelled it) is left out."""
    if not job_ids:
        return []
    if not can_move(JobStatus.queued, JobStatus.running):
        raise ForbiddenMove("jobs cannot go from queued to running")
    stmt = _CLAIMS.get(tuple(columns))
    if stmt is None:
        stmt = _CLAIMS[tuple(columns)] = _CLAIM.returning(
            _JOB.c.id, *(c for c in columns if c.name != "id")
        )
    params = {"ids": list(job_ids), "engine_id": engine_id, "host": host, "started_at": at}
    took = {row.id: row for row in rawsql.run(s.connection(), stmt, params)}
    if columns:
        return [took[job_id] for job_id in job_ids if job_id in took]
    return [job_id for job_id in job_ids if job_id in took]


def finish(
    s: Session,
    job: Job,
    status: JobStatus,
    at: datetime,
    message: str,
    details: dict[str, Any],
    error: str | None = None,
    exit_code: int | None = None,
) -> bool:
    """An active job ends: completed, failed or cancelled, with its final event."""
    return move(
        s,
        job,
        status,
        at,
        (JobEventKind(status.value), message, details),
        error=error,
        finished_at=at,
        exit_code=exit_code,
    )


def cancel_unstarted(s: Session, job: Job, at: datetime, details: dict[str, Any]) -> bool:
    """A job whose process never started is stopped: cancelled, saying so."""
    return finish(
        s, job, JobStatus.cancelled, at, CANCELLED_BEFORE_START, details, CANCELLED_BEFORE_START
    )


def requeue(
    s: Session, job: Job, at: datetime, event: tuple[JobEventKind, str, dict[str, Any]] | None
) -> bool:
    """A job claimed whose process never started goes back to the queue, as if never claimed."""
    return move(s, job, JobStatus.queued, at, event, engine_id=None, host=None, started_at=None)


def request_stop(s: Session, job: Job, at: datetime) -> bool:
    """running -> stopping: the engine following it signals its process."""
    return move(s, job, JobStatus.stopping, at, stop_requested_at=at)


def queued_job_rows(
    job_type: JobType,
    project_id: str,
    *,
    at: datetime,
    model_id: str | None = None,
    version_id: str | None = None,
    deployment_id: str | None = None,
    dataset_id: str | None = None,
    params: dict[str, Any] | None = None,
    trigger: Trigger = Trigger.manual,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows of a newly queued job and of its first event, ``created``: a job is born
    ``queued`` (the one status not reached by a move).

    Plain rows, so the scheduler can insert a burst of them in bulk; ``Deck.queue_job``
    makes the same rows into objects.
    """
    if trigger == Trigger.manual and not actor:
        raise ValueError("a manual job needs its actor: the store's authenticated user")
    who = actor if trigger == Trigger.manual else "scheduler"
    job = {
        "id": new_id("j"),
        "project_id": project_id,
        "type": job_type.value,
        "status": JobStatus.queued.value,
        "trigger": trigger.value,
        "actor": who,
        "model_id": model_id,
        "version_id": version_id,
        "deployment_id": deployment_id,
        "dataset_id": dataset_id,
        "params": params or {},
        "created_at": at,
        "outputs": [],
        "next_seq": 2,
        "events_offset": 0,
    }
    event = {
        "job_id": job["id"],
        "seq": 1,
        "at": at,
        "kind": JobEventKind.created,
        "message": f"{job_type.value} job queued ({trigger.value})",
        "details": {"trigger": trigger.value, "actor": who, **(details or {})},
    }
    return job, event
