"""PostgreSQL writers side by side: what keeps the registry exact without one global turn.

The engine's hot writes (a job's start, its records, its end) are row-locked writers: they
hold the write lock shared and lock the rows they read to change, the job row for its status
and next event number, the model row for its next version number. Every other writer holds
the lock alone, as before. These tests race real writers (engine processes, threads with
stores of their own) on one database and check that nothing was numbered twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import PG_WRITE_LOCK
from core.engine.ingest import Ingest, job_event
from core.engine.outcome import Outcomes
from core.errors import ModelDeckError
from core.jobs import claim_many
from core.lifecycle import JobStatus
from core.service import Deck
from core.store import Store
from tests.conftest import ROOT, PgServer

NOOP = "def train(context):\n    pass\n"
# Long enough that an engine starting first cannot drain a batch before the others start.
PAUSE = "import time\n\ndef train(context):\n    time.sleep(0.2)\n"


@pytest.fixture
def pg(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.fresh()
    yield url
    pg_server.drop(url)


@pytest.fixture
def noop_deck(pg: str, tmp_path: Path) -> Iterator[Deck]:
    """A project ``p`` with a no-op model ``noop``, one that pauses 0.2 s (``pause``) and a
    dataset ``d``."""
    repo = tmp_path / "repo"
    for name, code in (("noop", NOOP), ("pause", PAUSE)):
        (repo / "models" / name).mkdir(parents=True)
        (repo / "models" / name / "training.py").write_text(code)
    (repo / "data").mkdir()
    (repo / "data" / "d.csv").write_text("x,y\n1,2\n3,4\n")
    deck = Deck(home=tmp_path / "home", db=pg)
    deck.add_project("p", repo)
    deck.add_dataset("p", "d", repo / "data" / "d.csv")
    yield deck
    deck.close()


def race(n: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` on ``n`` threads released at once; the errors they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(30)
            work(i)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_engines_on_three_hosts_training_one_model_number_its_versions_in_turn(
    pg: str, tmp_path: Path, noop_deck: Deck
) -> None:
    n = 24
    ids = [noop_deck.train("p", "pause", "d").id for _ in range(n)]
    engines = []
    for host in ("alpha", "beta", "gamma"):
        env = dict(
            os.environ, MODELDECK_HOST=host, MODELDECK_HOME=str(tmp_path / host), MODELDECK_DB=pg
        )
        engines.append(
            subprocess.Popen(
                [sys.executable, "-m", "tui.entry", "engine", "--workers", "2", "--exit-when-idle"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for e in engines:
        _, err = e.communicate(timeout=300)
        assert e.returncode == 0, err
    jobs = [noop_deck.job(j) for j in ids]
    assert [j.status for j in jobs] == ["completed"] * n, [j.error for j in jobs]
    assert len({j.host for j in jobs}) > 1  # they did run side by side
    versions = noop_deck.versions("p")
    assert sorted(v.number for v in versions) == list(range(1, n + 1))
    assert sorted(v.job_id for v in versions) == sorted(ids)  # one each, none lost
    for j in ids:
        seqs = [e.seq for e in noop_deck.events(j)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert Counter(e.kind for e in noop_deck.events(j))["started"] == 1


def test_job_ends_recorded_at_once_by_several_processes_number_versions_in_turn(
    pg: str, tmp_path: Path, noop_deck: Deck
) -> None:
    """Ends of trainings of one model recorded at the same moment by writers of their own
    (the engine's ``Outcomes.finish``): each version its own number, 1 to N."""
    threads, each = 4, 5
    ids = [noop_deck.train("p", "noop", "d").id for _ in range(threads * each)]
    with noop_deck.store.claimer() as s:
        assert len(claim_many(s, ids, noop_deck.store.now(), "test-engine", "test")) == len(ids)
        s.commit()
    stores = [Store(home=tmp_path / f"h{i}", db=pg) for i in range(threads)]
    try:

        def finish(i: int) -> None:
            store = stores[i]
            outcomes = Outcomes(store, Ingest(store), on_end=lambda: None)
            for job_id in ids[i::threads]:
                outcomes.finish(job_id, JobStatus.completed, None, 0, {"status": "completed"})

        assert race(threads, finish) == []
    finally:
        for store in stores:
            store.close()
    jobs = [noop_deck.job(j) for j in ids]
    assert [j.status for j in jobs] == ["completed"] * len(ids), [j.error for j in jobs]
    assert sorted(v.number for v in noop_deck.versions("p")) == list(range(1, len(ids) + 1))


def test_events_added_to_one_job_at_once_get_consecutive_numbers(
    pg: str, tmp_path: Path, noop_deck: Deck
) -> None:
    job_id = noop_deck.train("p", "noop", "d").id
    before = [e.seq for e in noop_deck.events(job_id)]
    threads, each = 4, 10
    stores = [Store(home=tmp_path / f"h{i}", db=pg) for i in range(threads)]
    try:

        def add(i: int) -> None:
            for k in range(each):
                job_event(stores[i], job_id, "progress", f"{i}.{k}", {"fraction": 0.5})

        assert race(threads, add) == []
    finally:
        for store in stores:
            store.close()
    events = noop_deck.events(job_id)
    seqs = sorted(e.seq for e in events)
    assert seqs == list(range(before[0], before[0] + len(before) + threads * each))
    assert len({e.message for e in events if e.kind == "progress"}) == threads * each


def test_two_projects_of_one_name_added_at_once_one_wins_the_other_is_told(
    pg: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    decks = [Deck(home=tmp_path / f"h{i}", db=pg) for i in range(2)]
    try:
        errors = race(2, lambda i: decks[i].add_project("same", repo))
        assert len(errors) == 1
        assert isinstance(errors[0], ModelDeckError)
        assert errors[0].message == "a project named 'same' already exists"
        assert [p.name for p in decks[0].projects()] == ["same"]
    finally:
        for deck in decks:
            deck.close()


def _waiting_for_write_lock(store: Store) -> int:
    """Sessions waiting for the write lock now (PostgreSQL's lock table)."""
    key = PG_WRITE_LOCK
    with store.reader() as s:
        return s.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = :hi AND objid = :lo"
            ),
            {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
        ).scalar_one()


def test_row_locked_writers_run_side_by_side_and_the_others_wait_for_them(
    pg: str, tmp_path: Path
) -> None:
    store = Store(home=tmp_path, db=pg)
    try:
        first = store.writer(rows=True)
        first.execute(text("SELECT 1"))  # holds the write lock (shared) from here
        beside = threading.Event()

        def row_locked() -> None:
            with store.writer(rows=True) as s:
                s.execute(text("SELECT 1"))
                s.commit()
            beside.set()

        t = threading.Thread(target=row_locked)
        t.start()
        t.join(60)
        if t.is_alive():  # it waits for the first: let it go, and fail
            first.rollback()
            t.join(60)
        assert beside.is_set(), "a row-locked writer waited for another"
        done = threading.Event()

        def exclusive() -> None:
            with store.writer() as s:
                s.execute(text("SELECT 1"))
                s.commit()
            done.set()

        t = threading.Thread(target=exclusive)
        t.start()
        try:
            for _ in range(200):  # until the exclusive writer is seen waiting
                if _waiting_for_write_lock(store):
                    break
                threading.Event().wait(0.05)
            assert _waiting_for_write_lock(store) == 1
            assert not done.is_set()
        finally:
            first.commit()
            first.close()
            t.join(60)
        assert done.is_set()
    finally:
        store.close()
