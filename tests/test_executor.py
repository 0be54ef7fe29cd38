"""The executor seam: a job runs on the executor its row names, and dispatch, stop and
recovery reach it only through that executor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.engine import EXECUTORS, Engine, Handle, LocalExecutor
from core.engine.executor import ExecutorContext, JobSpec
from core.models import Job
from core.service import Deck
from tests.deploy_support import add_ticker, wait_final, wait_for


class Elsewhere(LocalExecutor):
    """Another executor (as a Ray one would be), here one that runs jobs locally too and
    keeps a list of what it was asked to do."""

    name = "elsewhere"
    calls: list[tuple[str, str]] = []

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx)

    def handle(self, job_id: str, pid: int, pgid: int | None, start: float | None) -> Handle:
        h = super().handle(job_id, pid, pgid, start)
        return Handle(self.name, h.job_id, h.ref, h.pid, h.pgid, h.start)

    def launch(
        self, spec: JobSpec, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]
    ) -> Handle:
        self.calls.append(("launch", str(spec.runner["job_id"])))
        return super().launch(spec, job_dir, cwd, log_path, env)

    def signal(self, handle: Handle, sig: int) -> None:
        self.calls.append(("signal", handle.job_id))
        super().signal(handle, sig)

    def adopt(self, job: Job) -> Handle | None:
        self.calls.append(("adopt", job.id))
        return super().adopt(job)


@pytest.fixture
def elsewhere() -> Iterator[type[Elsewhere]]:
    EXECUTORS["elsewhere"] = Elsewhere
    Elsewhere.calls = []
    yield Elsewhere
    del EXECUTORS["elsewhere"]


def on(deck: Deck, job_id: str, executor: str) -> None:
    """Send a queued job to ``executor`` (no command does yet: the next executors will)."""
    with deck.engine.begin() as conn:
        conn.execute(
            text("UPDATE job SET executor = :e WHERE id = :id"), {"e": executor, "id": job_id}
        )


def row(deck: Deck, job_id: str) -> tuple[str, str | None]:
    with deck.engine.connect() as conn:
        found = conn.execute(
            text("SELECT executor, handle FROM job WHERE id = :id"), {"id": job_id}
        ).one()
    return found[0], found[1]


def test_a_job_runs_on_the_executor_its_row_names(
    deck: Deck, project: str, elsewhere: type[Elsewhere]
) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 2}).id
    on(deck, job, "elsewhere")
    engine = Engine(deck, workers=1)
    try:
        done = wait_final(deck, job, engine=engine)
    finally:
        engine.shutdown()
    assert done.status == "completed", done
    assert deck.read_log(job, 0, 10) == ["line 0", "line 1"]
    assert elsewhere.calls == [("launch", job)]
    executor, handle = row(deck, job)
    assert executor == "elsewhere"
    assert handle is not None and json.loads(handle)["pid"] == done.pid


def test_a_job_runs_locally_by_default_and_its_row_says_so(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 1}).id
    engine = Engine(deck, workers=1)
    try:
        done = wait_final(deck, job, engine=engine)
    finally:
        engine.shutdown()
    assert done.status == "completed", done
    executor, handle = row(deck, job)
    assert executor == "local"
    assert handle is not None and json.loads(handle)["pid"] == done.pid


def test_a_job_on_an_executor_this_engine_lacks_fails_saying_so(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 1}).id
    on(deck, job, "nowhere")
    engine = Engine(deck, workers=1)
    try:
        done = wait_final(deck, job, engine=engine)
    finally:
        engine.shutdown()
    assert done.status == "failed"
    assert "no executor 'nowhere'" in (done.error or ""), done


def test_recovery_and_stop_go_through_the_jobs_executor(
    deck: Deck, project: str, repo: Path, elsewhere: type[Elsewhere]
) -> None:
    add_ticker(repo)
    job = deck.train(project, "ticker", "train", {"lines": 2000, "every": 0.01}).id
    on(deck, job, "elsewhere")
    first = Engine(deck, workers=1)
    second = None
    try:
        first.tick()
        wait_for(lambda: deck.job(job).pid, what="its pid")
        first.release_lease()  # it "dies": it never ticks again, and leaves the job running
        second = Engine(deck, workers=1, grace=5)
        wait_for(lambda: (second.tick(), job in second.running)[1], what="the adoption")
        deck.stop(job)
        done = wait_final(deck, job, engine=second)
    finally:
        if second is not None:
            second.shutdown()
        first.shutdown()
    assert done.status == "cancelled", done
    assert ("adopt", job) in elsewhere.calls and ("signal", job) in elsewhere.calls
    assert [c for c in elsewhere.calls if c[0] == "launch"] == [("launch", job)]
