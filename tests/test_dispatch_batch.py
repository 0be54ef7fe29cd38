"""Jobs that end in the same round are ended together, in one write transaction, and each
still gets its whole timeline, its own version and its metrics, as a job ending alone does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import add_fast_stages
from sqlalchemy import event

from core import jobs
from core.engine import Engine
from core.jobrow import JobRow
from core.lifecycle import JobStatus
from core.service import Deck


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    """An engine driven round by round by the test (not started on a thread)."""
    eng = Engine(deck, workers=3, grace=10.0, poll=0.05)
    yield eng
    eng.shutdown()
    for run in list(eng.running.values()):  # leave no child behind when a test fails
        eng.executors.of(run.handle).signal(run.handle, 9)


def start_all(deck: Deck, engine: Engine, n: int) -> list[str]:
    """Queue ``n`` trainings, start them in one round, and wait until every process has
    ended (not yet recorded: the next round sees them all end at once)."""
    ids = [deck.train("proj", "scripted", "train", {"lines": 2}).id for _ in range(n)]
    engine.tick()
    assert sorted(engine.running) == sorted(ids)
    deadline = time.monotonic() + 30
    while any(run.ended is None for run in engine.running.values()):
        assert time.monotonic() < deadline, "the jobs' processes did not end"
        time.sleep(0.02)
        engine.follower.see_exits()
    return ids


class Transactions:
    """The statements of each committed transaction on the deck's database."""

    def __init__(self, deck: Deck) -> None:
        self.engine = deck.store.engine
        self.open: dict[int, list[str]] = {}
        self.committed: list[list[str]] = []

    def __enter__(self) -> Transactions:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)

    def _statement(self, conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        self.open.setdefault(id(conn), []).append(" ".join(sql.split()).upper())

    def _commit(self, conn: Any) -> None:
        self.committed.append(self.open.pop(id(conn), []))

    def ending_jobs(self) -> list[list[str]]:
        """The committed transactions that moved a job to its final status."""
        return [tx for tx in self.committed if any("FINISHED_AT" in sql for sql in tx)]


def timeline(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


def test_jobs_ending_in_one_round_are_ended_in_one_transaction(deck: Deck, engine: Engine) -> None:
    ids = start_all(deck, engine, 3)
    with Transactions(deck) as txs:
        engine.tick()
    assert not engine.running
    assert len(txs.ending_jobs()) == 1, "the three ends were not written together"
    # A job ending alone, for its timeline.
    [alone] = start_all(deck, engine, 1)
    engine.tick()
    expected = timeline(deck, alone)
    assert expected[0] == "created" and expected[-1] == "completed"
    assert "version_created" in expected
    versions = {v.job_id: v for v in deck.versions("proj", "scripted")}
    for job_id in ids:
        view = deck.job(job_id)
        assert view.status == "completed", view
        assert timeline(deck, job_id) == expected
        seqs = [e.seq for e in deck.events(job_id)]
        assert seqs == sorted(set(seqs)), seqs
        assert versions[job_id].metrics == {"loss": 0.5}
        folder = Path(deck.version_detail(versions[job_id].id).artifact_dir)
        assert (folder / "weights.txt").read_text() == "42"
    numbers = sorted(v.number for v in versions.values())
    assert numbers == [1, 2, 3, 4]


def test_a_batch_with_a_job_ended_elsewhere_keeps_nothing_and_each_job_ends_alone(
    deck: Deck, engine: Engine
) -> None:
    ids = start_all(deck, engine, 3)
    runs = [engine.running[job_id] for job_id in ids]
    endings = [engine.follower.ending(run, run.ended or 0, False) for run in runs]
    # Another engine ended the second job meanwhile.
    with deck.store.writer() as s:
        conn = s.connection()
        row = JobRow.load(conn, ids[1])
        assert row is not None
        now = deck.store.now()
        assert jobs.end(conn, row, JobStatus.failed, now, "train failed: lost", {}, "lost")
        s.commit()
    assert engine.outcomes.finish_many(endings) is False
    for job_id in (ids[0], ids[2]):
        with deck.store.reader() as s:
            row = JobRow.load(s.connection(), job_id)
        assert row is not None and row.status == "running", "a batch undone kept a job's end"
    assert deck.versions("proj", "scripted") == []
    for e in endings:  # each alone, as the round does after a batch it could not write
        engine.outcomes.finish(e.job_id, e.status, e.error, e.exit_code, e.result, e.extra)
    assert [deck.job(j).status for j in ids] == ["completed", "failed", "completed"]
    assert deck.job(ids[1]).error == "lost"
    assert sorted(v.job_id for v in deck.versions("proj", "scripted")) == sorted([ids[0], ids[2]])
    assert timeline(deck, ids[0]) == timeline(deck, ids[2])


def test_a_job_started_in_a_round_that_ends_another_is_recorded_with_that_end(
    deck: Deck, engine: Engine
) -> None:
    """The ``started`` record (pid, event) of a job the round starts goes into the
    transaction of the end the same round records; with no end in the round, it is written
    alone before the round is over. Either way each timeline keeps its order."""
    [first] = start_all(deck, engine, 1)
    assert deck.job(first).pid is not None, "a round with no end left a start unrecorded"
    second = deck.train("proj", "scripted", "train", {"lines": 2}).id
    with Transactions(deck) as txs:
        engine.tick()  # starts the second job, records the first one's end
    assert deck.job(first).status == "completed"
    started = deck.job(second)
    assert started.status == "running" and started.pid is not None
    [ending] = txs.ending_jobs()
    assert any(sql.startswith("UPDATE JOB SET PID=") for sql in ending), ending
    deadline = time.monotonic() + 30
    while deck.job(second).status == "running":
        assert time.monotonic() < deadline, "the second job did not end"
        time.sleep(0.02)
        engine.tick()
    for job_id in (first, second):
        kinds = timeline(deck, job_id)
        assert kinds[:2] == ["created", "started"] and kinds[-1] == "completed", kinds
        assert kinds.count("started") == 1, kinds


def test_a_job_that_runs_no_code_starts_while_every_worker_is_busy(
    deck: Deck, project: str, repo: Path
) -> None:
    """With its only worker busy, an engine still starts an approval (it runs no code and
    takes no worker): it looks for such jobs before it claims (a look locks nothing)."""
    add_fast_stages(repo)
    eng = Engine(deck, workers=1, grace=10.0, poll=0.05)
    try:
        trained = deck.train(project, "scripted", "train", {"lines": 1})
        assert eng.run_until_idle(30)
        version = deck.job(trained.id).version
        assert version is not None
        evaluated = deck.evaluate(version, "test")
        assert eng.run_until_idle(30)
        assert deck.job(evaluated.id).status == "completed"
        busy = deck.train(project, "scripted", "train", {"sleep": 60})
        eng.tick()
        assert deck.job(busy.id).status == "running"
        approval = deck.approve(version, "good enough")
        deadline = time.monotonic() + 20
        while deck.job(approval.id).status != "completed":
            assert time.monotonic() < deadline, deck.job(approval.id)
            time.sleep(0.02)
            eng.tick()
        assert deck.job(busy.id).status == "running"
        assert deck.version(version).status == "approved"
    finally:
        for run in list(eng.running.values()):
            eng.executors.of(run.handle).signal(run.handle, 9)
        eng.shutdown()
