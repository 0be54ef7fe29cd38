"""Helpers for scheduler and engine tests: a fast approved version and its deployment."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.clock import Clock
from core.engine import Engine
from core.lifecycle import FINAL_STATUSES
from core.service import Deck

EVALUATION = """
def evaluate(context):
    context.record_metrics({"accuracy": 1.0})
"""

# Scoring holds while a `hold` file sits next to the scored dataset, so a test decides when a
# run ends (not next to scoring.py: a version runs its own copy of that, in its artifacts).
SCORING = """
import time


def score(context):
    hold = context.dataset.path.with_name("hold")
    while hold.exists():
        time.sleep(0.02)
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n")
"""

# Prints numbered lines, each flushed, at a steady pace: the log shows exactly what was said.
TICKER = """
import time


def train(context):
    hp = context.hyperparameters
    for i in range(int(hp.get("lines", 50))):
        print(f"tick {i}", flush=True)
        time.sleep(float(hp.get("every", 0.02)))
"""


def add_fast_stages(repo: Path) -> Path:
    """Give the scripted model a fast evaluation and scoring; return its folder."""
    folder = repo / "models" / "scripted"
    (folder / "evaluation.py").write_text(EVALUATION)
    (folder / "scoring.py").write_text(SCORING)
    return folder


def add_ticker(repo: Path) -> None:
    folder = repo / "models" / "ticker"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training.py").write_text(TICKER)


def approved_version(deck: Deck, engine: Engine, project: str) -> str:
    """Train, evaluate and approve the scripted model; the version id."""
    job = deck.train(project, "scripted", "train", {"lines": 1})
    assert engine.run_until_idle(30)
    version = deck.job(job.id).version
    assert version, deck.job(job.id)
    for submit in (
        lambda: deck.evaluate(version, "test"),
        lambda: deck.approve(version, "good enough"),
    ):
        j = submit()
        assert engine.run_until_idle(30)
        assert deck.job(j.id).status == "completed", deck.job(j.id)
    return version


def deploy(
    deck: Deck, engine: Engine, version: str, schedule: str | None = None, tz: str | None = None
) -> str:
    job = deck.deploy(version, "score", schedule, tz)
    assert engine.run_until_idle(30)
    final = deck.job(job.id)
    assert final.status == "completed", final
    assert final.deployment
    return final.deployment


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; its value, or AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_served(deck: Deck, pid: int, seconds: float, timeout: float = 60.0) -> None:
    """Wait until the engine process ``pid`` has served ``seconds`` more, as its own
    heartbeats tell (one is written from a round at most every BEAT_EVERY): its rounds went
    on for that long, however slowly a busy machine ran it. For a test that lets an engine
    run (its recoveries every RECOVER_EVERY, say) to show that something does not happen."""

    def seen() -> datetime | None:
        return next((e.last_seen for e in deck.hosts.engines() if e.pid == pid), None)

    since = wait_for(seen, timeout, f"a heartbeat of engine {pid}")
    until = since + timedelta(seconds=seconds)
    wait_for(lambda: (last := seen()) and last >= until, timeout, f"engine {pid} to serve on")


def wait_final(deck: Deck, job_id: str, timeout: float = 30.0, engine: Engine | None = None):
    def done() -> Any:
        if engine is not None:
            engine.tick()
        view = deck.job(job_id)
        return view if view.status in FINAL_STATUSES else None

    return wait_for(done, timeout, f"job {job_id} to end")


def expire_lease(home: Path) -> None:
    """Make the engine lease look expired, as if its TTL had passed with no heartbeat."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from core.db import make_engine, write_session
    from core.home import resolve_db_url
    from core.models import EngineLease

    engine = make_engine(resolve_db_url(home))
    try:
        with write_session(engine) as s:
            s.execute(update(EngineLease).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
            s.commit()
    finally:
        engine.dispose()


def started_events(deck: Deck, job_id: str) -> int:
    return sum(1 for e in deck.events(job_id) if e.kind == "started")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def scheduling_deck(home: Path, repo: Path, clock: Clock) -> Iterator[Deck]:
    """A Deck on ``clock`` with the fast stages and the train, test and score datasets: the
    body of the schedule tests' ``fdeck`` fixture."""
    add_fast_stages(repo)
    d = Deck(home=home, clock=clock)
    d.add_project("proj", repo)
    d.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    d.add_dataset("proj", "test", repo / "data" / "test.csv", target="label")
    d.add_dataset("proj", "score", repo / "data" / "score.csv")
    yield d
    d.close()
