"""The engine's Core-level writes of a job (``JobRow`` and ``jobs.end``): one guarded UPDATE,
its events in order, nothing written when the status moved on meanwhile."""

from __future__ import annotations

import pytest

from core import jobs
from core.events import JobEventKind
from core.jobrow import JobRow
from core.lifecycle import JobStatus, JobType
from core.models import Job
from core.service import Deck


def _running(deck: Deck) -> str:
    p = deck.add_project("p", deck.home)  # a project needs a folder: the home will do
    with deck.writer() as s:
        job_id = deck.queue_job(s, JobType.compute_stats, p.id).id
        s.commit()
    with deck.writer() as s:
        assert jobs.claim(s, s.get(Job, job_id), deck.now(), "engine-x", "host")
        s.commit()
    return job_id


def test_an_end_writes_its_changes_and_all_its_events_in_order(tmp_path) -> None:
    deck = Deck(home=tmp_path / "home")
    job_id = _running(deck)
    with deck.writer() as s:
        conn = s.connection()
        row = JobRow.load(conn, job_id)
        assert row is not None and row.status == "running"
        row.add_event(JobEventKind.progress, "50%", deck.now(), {"fraction": 0.5})
        row.params = {**row.params, "dataset_file": {"sha256": "0" * 64}}
        row.outputs = ["/tmp/out.csv"]
        assert jobs.end(conn, row, JobStatus.completed, deck.now(), "done", {"duration": 1.0})
        s.commit()
    view = deck.job(job_id)
    assert view.status == "completed"
    assert view.outputs == ["/tmp/out.csv"]
    events = deck.events(job_id)
    assert [(e.seq, e.kind) for e in events] == [(1, "created"), (2, "progress"), (3, "completed")]
    with deck.reader() as s:
        assert s.get(Job, job_id).params["dataset_file"] == {"sha256": "0" * 64}
        assert s.get(Job, job_id).next_seq == 4


def test_undo_forgets_what_a_rolled_back_effect_added(tmp_path) -> None:
    deck = Deck(home=tmp_path / "home")
    job_id = _running(deck)
    with deck.writer() as s:
        conn = s.connection()
        row = JobRow.load(conn, job_id)
        row.add_event(JobEventKind.progress, "kept", deck.now(), {})
        mark = row.mark()
        row.add_event(JobEventKind.version_created, "undone", deck.now(), {})
        row.version_id = "v-undone"
        row.undo(mark)
        assert row.version_id is None
        assert jobs.end(conn, row, JobStatus.failed, deck.now(), "failed", {}, "it broke", 1)
        s.commit()
    view = deck.job(job_id)
    assert (view.status, view.error, view.version) == ("failed", "it broke", None)
    assert [e.message for e in deck.events(job_id)][1:] == ["kept", "failed"]


def test_an_end_that_lost_the_race_writes_nothing(tmp_path) -> None:
    """The row was read as running; a stop's end committed first: the guarded UPDATE finds
    no running row, and neither the end nor its pending events are written."""
    deck = Deck(home=tmp_path / "home")
    job_id = _running(deck)
    with deck.reader() as s:
        stale = JobRow.load(s.connection(), job_id)
    with deck.writer() as s:
        job = s.get(Job, job_id)
        assert jobs.finish(s, job, JobStatus.cancelled, deck.now(), "stopped", {})
        s.commit()
    with deck.writer() as s:
        stale.add_event(JobEventKind.progress, "late", deck.now(), {})
        assert not jobs.end(s.connection(), stale, JobStatus.completed, deck.now(), "done", {})
        s.commit()
    assert deck.job(job_id).status == "cancelled"
    assert [e.kind for e in deck.events(job_id)][1:] == ["cancelled"]


def test_an_end_not_in_the_table_or_no_end_is_refused(tmp_path) -> None:
    deck = Deck(home=tmp_path / "home")
    job_id = _running(deck)
    with deck.writer() as s:
        row = JobRow.load(s.connection(), job_id)
        with pytest.raises(jobs.ForbiddenMove, match="cannot go from running to queued"):
            jobs.end(s.connection(), row, JobStatus.queued, deck.now(), "back", {})
        row.status = "queued"  # as if read before its claim: queued -> completed is no move
        with pytest.raises(jobs.ForbiddenMove, match="cannot go from queued to completed"):
            jobs.end(s.connection(), row, JobStatus.completed, deck.now(), "done", {})
        assert row.events == []
    assert deck.job(job_id).status == "running"
    assert [e.kind for e in deck.events(job_id)] == ["created"]
