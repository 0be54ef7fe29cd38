"""The one writer of a job's status: moves from the lifecycle's table, guarded, with their event."""

from __future__ import annotations

import pytest

from core import jobs
from core.lifecycle import JOB_MOVES, JobStatus, JobType
from core.models import Job
from core.service import Deck


def _queued(deck: Deck) -> str:
    p = deck.add_project("p", deck.home)  # a project needs a folder: the home will do
    with deck.writer() as s:
        job_id = deck.queue_job(s, JobType.compute_stats, p.id).id
        s.commit()
    return job_id


def _status(deck: Deck, job_id: str) -> str:
    return deck.job(job_id).status


def test_a_move_not_in_the_table_is_refused_and_changes_nothing(tmp_path) -> None:
    deck = Deck(home=tmp_path / "home")
    job_id = _queued(deck)
    assert (JobStatus.queued, JobStatus.completed) not in JOB_MOVES
    with deck.writer() as s:
        job = s.get(Job, job_id)
        with pytest.raises(jobs.ForbiddenMove, match="cannot go from queued to completed"):
            jobs.move(s, job, JobStatus.completed, deck.now())
        s.commit()
    assert _status(deck, job_id) == "queued"
    assert [e.kind for e in deck.events(job_id)] == ["created"]


def test_a_move_that_lost_the_race_changes_nothing(tmp_path) -> None:
    """Two sessions know the job as queued; the stop commits first; the claim finds the row
    moved on and leaves it cancelled (the guarded UPDATE ... WHERE status = 'queued')."""
    deck = Deck(home=tmp_path / "home")
    job_id = _queued(deck)
    with deck.reader() as s:
        stale = s.get(Job, job_id)
        s.expunge(stale)
    deck.stop(job_id)
    with deck.writer() as s:
        assert not jobs.claim(s, s.merge(stale, load=False), deck.now(), "engine-x", "host")
        s.commit()
    view = deck.job(job_id)
    assert view.status == "cancelled"
    assert view.error == "cancelled before it started"
    assert [e.kind for e in deck.events(job_id)] == ["created", "stop_requested", "cancelled"]


def test_a_move_appends_its_event_in_the_same_transaction(tmp_path) -> None:
    deck = Deck(home=tmp_path / "home")
    job_id = _queued(deck)
    with deck.writer() as s:
        job = s.get(Job, job_id)
        assert jobs.claim(s, job, deck.now(), "engine-x", "host")
        assert jobs.finish(s, job, JobStatus.failed, deck.now(), "it broke", {"error": "x"}, "x")
        s.rollback()  # nothing of either move stays
    assert _status(deck, job_id) == "queued"
    assert [e.kind for e in deck.events(job_id)] == ["created"]
    with deck.writer() as s:
        job = s.get(Job, job_id)
        jobs.claim(s, job, deck.now(), "engine-x", "host")
        jobs.finish(s, job, JobStatus.failed, deck.now(), "it broke", {"error": "x"}, "x")
        s.commit()
    view = deck.job(job_id)
    assert (view.status, view.error) == ("failed", "x")
    assert [e.kind for e in deck.events(job_id)] == ["created", "failed"]


def test_every_final_status_is_reached_only_from_an_active_one() -> None:
    finals = {JobStatus.completed, JobStatus.failed, JobStatus.cancelled}
    for frm, to in JOB_MOVES:
        assert frm not in finals, (frm, to)  # a final status never moves again
        if to in finals and frm == JobStatus.queued:
            assert to == JobStatus.cancelled  # only a stop ends a job that never ran
