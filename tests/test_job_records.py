"""What a job's records say about how it ended: real jobs in real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine import Engine
from core.service import Deck
from tests.conftest import write_model


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    eng = Engine(deck, workers=1, grace=10.0, poll=0.05)
    yield eng
    eng.shutdown()


def finished(deck: Deck, engine: Engine, job_id: str, status: str):
    assert engine.run_until_idle(60)
    done = deck.job(job_id)
    assert done.status == status, (done, deck.log_path(done.id).read_text())
    return done


EXITS = """
import sys


def train(context):
    print("leaving")
    sys.exit(EXIT)
"""


@pytest.mark.parametrize(
    ("exit_with", "code", "error"),
    [
        ("3", 3, "exited with status 3"),
        ("'no rows today'", 1, "no rows today"),
        ("256 + 7", 7, "exited with status 7 (sys.exit(263))"),
    ],
)
def test_a_job_that_calls_sys_exit_records_its_exit_status(
    deck: Deck, engine: Engine, repo: Path, exit_with: str, code: int, error: str
) -> None:
    write_model(repo, "exits", EXITS.replace("EXIT", exit_with))
    job = finished(deck, engine, deck.train("proj", "exits", "train").id, "failed")
    assert (job.exit_code, job.error) == (code, error)
    ended = [e for e in deck.events(job.id) if e.kind == "failed"]
    assert len(ended) == 1, [e.kind for e in deck.events(job.id)]
    assert ended[0].message == f"train failed: {error}"
    assert (ended[0].details["exit_code"], ended[0].details["error"]) == (code, error)
    # One line, no traceback through sys.exit().
    assert deck.log_path(job.id).read_text().splitlines() == ["leaving", f"error: {error}"]
