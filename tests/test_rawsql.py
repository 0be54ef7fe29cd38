"""``core.rawsql``: the engine's statements run on the driver's cursor give what SQLAlchemy
gives for them (rows, types, row counts, errors), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from core import rawsql
from core.events import JobEventKind
from core.lifecycle import JobType
from core.models import Job, JobEvent
from core.service import Deck

_JOB = Job.__table__
_EVENT = JobEvent.__table__
_BY_IDS = select(
    _JOB.c.id, _JOB.c.created_at, _JOB.c.params, _JOB.c.status, _JOB.c.proc_start, _JOB.c.pid
).where(_JOB.c.id.in_(bindparam("ids", expanding=True)), _JOB.c.status == "queued")
_TOUCH = (
    update(_JOB)
    .where(_JOB.c.id == bindparam("row_id"), _JOB.c.status == bindparam("row_status"))
    .values(next_seq=_JOB.c.next_seq + 1, started_at=bindparam("at"))
    .returning(_JOB.c.next_seq, _JOB.c.type, _JOB.c.started_at, _JOB.c.proc_start)
)
_EVENTS = insert(_EVENT)
_FIRST = select(_JOB.c.id).order_by(_JOB.c.id).limit(1)


def _jobs(deck: Deck, n: int) -> list[str]:
    p = deck.add_project("p", deck.home)
    ids = []
    with deck.writer() as s:
        for _ in range(n):
            ids.append(deck.queue_job(s, JobType.compute_stats, p.id).id)
        s.commit()
    return sorted(ids)


def test_reads_give_what_sqlalchemy_gives(deck: Deck) -> None:
    ids = _jobs(deck, 3)
    with deck.reader() as s:
        conn = s.connection()
        for args in ({"ids": ids}, {"ids": ids[:1]}, {"ids": []}):
            ours = sorted(rawsql.run(conn, _BY_IDS, args))
            theirs = sorted(tuple(r) for r in conn.execute(_BY_IDS, args))
            assert [tuple(r) for r in ours] == theirs
        row = rawsql.run(conn, _BY_IDS, {"ids": ids}).first()
        assert isinstance(row.created_at, datetime) and isinstance(row.params, dict)
        assert row.status == "queued"
        assert rawsql.run(conn, _FIRST).one().id == ids[0]


def test_writes_and_row_counts_are_sqlalchemys(deck: Deck) -> None:
    job_id = _jobs(deck, 1)[0]
    at = datetime(2026, 11, 29, 3, 4, 5, 678000, tzinfo=UTC)
    with deck.writer() as s:
        conn = s.connection()
        params = {"row_id": job_id, "row_status": "queued", "at": at, "proc_start": 12.5}
        got = rawsql.run(conn, _TOUCH, params)  # proc_start: set as its parameter names it
        assert got.first().next_seq == 3 and got.first().type == "compute_stats"
        assert got.first().started_at == at and got.first().proc_start == 12.5
        missed = rawsql.run(conn, _TOUCH, {"row_id": job_id, "row_status": "done", "at": at})
        assert missed.first() is None
        events = [
            {
                "job_id": job_id,
                "seq": seq,
                "at": at,
                "kind": JobEventKind.progress,
                "message": f"step {seq}",
                "details": {"fraction": seq / 10, "when": at},
            }
            for seq in (2, 3)
        ]
        rawsql.run(conn, _EVENTS, events)
        s.commit()
    assert deck.job(job_id).started_at is not None
    timeline = deck.events(job_id)
    assert [e.message for e in timeline][-2:] == ["step 2", "step 3"]
    assert timeline[-1].details["fraction"] == 0.3


def test_a_drivers_error_is_raised_as_sqlalchemys(deck: Deck) -> None:
    job_id = _jobs(deck, 1)[0]
    event = {
        "job_id": job_id,
        "seq": 1,  # taken: the job's ``created`` event
        "at": datetime(2026, 11, 29, tzinfo=UTC),
        "kind": JobEventKind.progress,
        "message": "again",
        "details": {},
    }
    with deck.writer() as s:
        with pytest.raises(IntegrityError):
            rawsql.run(s.connection(), _EVENTS, [event])
        s.rollback()
    assert [e.message for e in deck.events(job_id)] == ["compute_stats job queued (manual)"]


def test_none_in_a_json_column_is_json_null_as_sqlalchemy_writes_it(deck: Deck) -> None:
    job_id = _jobs(deck, 1)[0]
    at = datetime(2026, 11, 29, tzinfo=UTC)

    def event(seq: int) -> dict:
        kind, message = JobEventKind.progress, f"step {seq}"
        return {"job_id": job_id, "seq": seq, "at": at, "kind": kind, "message": message}

    with deck.writer() as s:
        conn = s.connection()
        conn.execute(_EVENTS, [{**event(2), "details": None}])
        rawsql.run(conn, _EVENTS, [{**event(3), "details": None}])  # NOT NULL: JSON null
        s.commit()
    with deck.reader() as s:
        sql = text("SELECT seq, details IS NULL FROM job_event WHERE job_id = :j AND seq > 1")
        rows = s.connection().execute(sql, {"j": job_id}).all()
    assert sorted(tuple(r) for r in rows) == [(2, False), (3, False)]
