"""A write transaction that fails to commit (a full disk, say) changes nothing outside the
database either: a trained version keeps its files, an inline job's log says only what
happened. The commit is made to fail for real, by an SQLite trigger on the job's final
event, then the trigger is dropped and the engine tries again."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from deploy_support import add_fast_stages, wait_final, wait_for

from core.engine import Engine
from core.service import Deck

pytestmark = pytest.mark.sqlite_only(reason="fails commits with SQLite triggers")


def fail_event(home: Path, kind: str) -> None:
    """From now on, recording a ``kind`` job event fails as a full disk does."""
    with sqlite3.connect(home / "modeldeck.db", timeout=30) as conn:
        conn.execute(
            f"CREATE TRIGGER fail_{kind} BEFORE INSERT ON job_event WHEN NEW.kind = '{kind}' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def allow_event(home: Path, kind: str) -> None:
    with sqlite3.connect(home / "modeldeck.db", timeout=30) as conn:
        conn.execute(f"DROP TRIGGER fail_{kind}")


def trained_and_evaluated(deck: Deck, engine: Engine) -> str:
    job = deck.train("proj", "scripted", "train", {"lines": 1}).id
    version = wait_final(deck, job, timeout=30, engine=engine).version
    evaluation = deck.evaluate(version, "test").id
    assert wait_final(deck, evaluation, timeout=30, engine=engine).status == "completed"
    return version


def test_a_training_whose_commit_failed_keeps_its_files_in_its_version(
    deck: Deck, project: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="modeldeck.engine")
    fail_event(home, "completed")
    engine = Engine(deck, workers=1, schedules=False)
    try:
        job = deck.train("proj", "scripted", "train", {"lines": 1}).id
        engine.tick()  # starts it
        wait_for(
            lambda: (engine.tick(), "following job" in caplog.text)[1],
            timeout=30,
            what="recording the job's end to fail",
        )
        assert deck.job(job).status == "running"
        allow_event(home, "completed")
        done = wait_final(deck, job, timeout=30, engine=engine)
    finally:
        engine.shutdown()
    assert done.status == "completed", done
    folder = Path(deck.version_detail(done.version).artifact_dir)
    assert (folder / "weights.txt").read_text() == "42"
    # Nothing left behind: no other version folder, no staging folder.
    model_root = folder.parent
    assert [p.name for p in model_root.iterdir()] == [folder.name]
    assert not (deck.artifacts_dir / ".staging" / job).exists()
    created = [e for e in deck.events(job) if e.kind == "version_created"]
    assert len(created) == 1
    assert created[0].details["artifacts"] == ["code/training.py", "weights.txt"]  # its code too


def test_recovery_moves_in_the_files_of_a_version_whose_process_died_after_the_commit(
    deck: Deck, project: str
) -> None:
    engine = Engine(deck, workers=1, schedules=False)
    try:
        job = deck.train("proj", "scripted", "train", {"lines": 1}).id
        done = wait_final(deck, job, timeout=30, engine=engine)
    finally:
        engine.shutdown()
    folder = Path(deck.version_detail(done.version).artifact_dir)
    staging = deck.artifacts_dir / ".staging" / job
    folder.rename(staging)  # as left by an engine that died between the commit and the move
    nxt = Engine(deck, workers=1, schedules=False)
    try:
        nxt.tick()  # takes the lease and recovers
    finally:
        nxt.shutdown()
    assert (folder / "weights.txt").read_text() == "42"
    assert not staging.exists()


def test_an_inline_job_whose_commit_failed_logs_nothing_until_it_happened(
    deck: Deck, project: str, repo: Path, home: Path
) -> None:
    add_fast_stages(repo)
    engine = Engine(deck, workers=1, schedules=False)
    try:
        version = trained_and_evaluated(deck, engine)
        fail_event(home, "completed")
        job = deck.approve(version, "looks right").id
        engine.tick()  # the approval's commit fails: back to the queue
        assert deck.job(job).status == "queued"
        log = deck.log_path(job)
        assert not log.exists() or "approved" not in log.read_text()
        allow_event(home, "completed")
        done = wait_final(deck, job, timeout=30, engine=engine)
    finally:
        engine.shutdown()
    assert done.status == "completed", done
    lines = log.read_text().splitlines()
    assert [line for line in lines if line.startswith("approved")] == [
        f"approved version {version} by {done.actor}: looks right"
    ]
