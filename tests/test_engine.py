"""The engine runs real jobs in real processes: outcomes, failures, stops and kills."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.engine import Engine
from core.service import Deck
from core.views import JobView
from tests.conftest import write_model


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    eng = Engine(deck, workers=2, grace=10.0, poll=0.05)
    eng.start()
    yield eng
    eng.shutdown()
    # Leave no child behind when a test fails half-way.
    for run in list(eng.running.values()):
        eng.executors.of(run.handle).signal(run.handle, 9)


def wait_for(deck: Deck, job_id: str, status: str, timeout: float = 30) -> JobView:
    deadline = time.monotonic() + timeout
    view = deck.job(job_id)
    while view.status != status and time.monotonic() < deadline:
        time.sleep(0.05)
        view = deck.job(job_id)
    assert view.status == status, view
    return view


def wait_for_log(deck: Deck, job_id: str, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deck.log_path(job_id).is_file() and text in deck.log_path(job_id).read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the log of {job_id}")


def kinds(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


def test_training_job_makes_a_version_with_its_metrics(deck: Deck, engine: Engine) -> None:
    job = deck.train("proj", "scripted", "train", {"lines": 2})
    done = deck.wait(job.id, timeout=30)
    assert done.status == "completed"
    assert done.exit_code == 0
    v = deck.version(done.version)
    assert (v.model, v.number, v.status, v.metrics) == ("scripted", 1, "trained", {"loss": 0.5})
    assert v.hyperparameters == {"lines": 2}
    assert deck.read_log(job.id, 0, 10) == ["line 0", "line 1"]
    assert kinds(deck, job.id)[0] == "created"
    assert "started" in kinds(deck, job.id)
    assert kinds(deck, job.id)[-1] == "completed"


def test_failed_training_keeps_the_traceback_and_makes_no_version(
    deck: Deck, engine: Engine
) -> None:
    job = deck.train("proj", "scripted", "train", {"fail": "the data is bad"})
    done = deck.wait(job.id, timeout=30)
    assert done.status == "failed"
    assert done.error == "RuntimeError: the data is bad"
    assert done.version is None
    assert deck.versions("proj", "scripted") == []
    log = deck.log_path(job.id).read_text()
    assert "Traceback (most recent call last)" in log
    assert log.rstrip().splitlines()[-1] == "RuntimeError: the data is bad"
    last = deck.events(job.id)[-1]
    assert (last.kind, last.details["error"]) == ("failed", "RuntimeError: the data is bad")


def test_stop_sends_sigterm_and_the_job_ends_cancelled(deck: Deck, engine: Engine) -> None:
    job = deck.train("proj", "scripted", "train", {"sleep": 60})
    wait_for_log(deck, job.id, "sleeping")
    started = time.monotonic()
    deck.stop(job.id)
    done = wait_for(deck, job.id, "cancelled", timeout=15)
    assert time.monotonic() - started < 5  # SIGTERM ended it; the grace never ran out
    signals = [e.details["signal"] for e in deck.events(job.id) if e.kind == "signal_sent"]
    assert signals == ["SIGTERM"]
    assert "stop_requested" in kinds(deck, job.id)
    assert deck.events(job.id)[-1].kind == "cancelled"
    assert done.version is None
    assert "stop requested; the job was interrupted" in deck.log_path(job.id).read_text()


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(deck: Deck, project: str) -> None:
    eng = Engine(deck, workers=1, grace=0.5, poll=0.05)
    eng.start()
    try:
        job = deck.train("proj", "scripted", "train", {"ignore_term": 60})
        wait_for_log(deck, job.id, "ignoring SIGTERM")
        deck.stop(job.id)
        done = wait_for(deck, job.id, "cancelled", timeout=15)
    finally:
        eng.shutdown()
    sent = [e for e in deck.events(job.id) if e.kind == "signal_sent"]
    assert [e.details["signal"] for e in sent] == ["SIGTERM", "SIGKILL"]
    assert "SIGKILL" in sent[1].message
    final = deck.events(job.id)[-1]
    assert final.kind == "cancelled"
    assert final.details["stopped_by"] == "SIGKILL"
    assert done.exit_code == -9


def test_stopping_a_queued_job_cancels_it_at_once(deck: Deck, project: str) -> None:
    job = deck.train("proj", "scripted", "train")  # no engine: it stays queued
    view = deck.stop(job.id)
    assert view.status == "cancelled"
    assert kinds(deck, job.id) == ["created", "stop_requested", "cancelled"]


def test_jobs_run_in_parallel_up_to_the_worker_count(deck: Deck, engine: Engine) -> None:
    jobs = [deck.train("proj", "scripted", "train", {"sleep": 1.5}) for _ in range(2)]
    done = [deck.wait(j.id, timeout=30) for j in jobs]
    assert [d.status for d in done] == ["completed", "completed"]
    a, b = done  # two workers: side by side, not one after another
    assert a.started_at < b.finished_at and b.started_at < a.finished_at
    assert sorted(deck.version(d.version).number for d in done) == [1, 2]


def test_rules_are_checked_again_when_a_queued_job_runs(
    deck: Deck, project: str, repo, engine: Engine
) -> None:
    # Two decisions queued on the same evaluated version: only the first may land.
    (repo / "models" / "scripted" / "evaluation.py").write_text(
        "def evaluate(context):\n    return {'accuracy': 0.75}\n"
    )
    v = deck.wait(deck.train("proj", "scripted", "train").id, timeout=30).version
    assert deck.wait(deck.evaluate(v, "test").id, timeout=30).status == "completed"
    engine.shutdown()  # queue the next ones together, with nothing running them yet
    first, second, reject = deck.approve(v, "one"), deck.approve(v, "two"), deck.reject(v, "no")
    again = Engine(deck, workers=1, poll=0.05)
    try:
        assert again.run_until_idle(timeout=30)
        # Two identical deployments queued together: the second is refused when it runs.
        deps = [deck.deploy(v, "score"), deck.deploy(v, "score", "0 6 * * *")]
        twice = deck.deploy(v, "score")
        assert again.run_until_idle(timeout=30)
        dep = deck.job(deps[0].id).deployment
        retires = [deck.retire(dep), deck.retire(dep)]
        assert again.run_until_idle(timeout=30)
    finally:
        again.release_lease()
    outcome = [(deck.job(j.id).status, deck.job(j.id).error) for j in (first, second, reject)]
    assert outcome == [
        ("completed", None),
        ("failed", "cannot approve a version that is approved (it must be evaluated)"),
        ("failed", "cannot reject a version that is approved (it must be evaluated)"),
    ]
    approval = deck.version(v).approval
    assert (approval.decision, approval.reason, approval.metrics) == (
        "approved",
        "one",
        {"accuracy": 0.75},
    )
    assert [deck.job(j.id).status for j in deps] == ["completed", "completed"]
    assert deck.job(twice.id).status == "failed"
    assert deck.job(twice.id).error.startswith("an identical deployment is active: dep-")
    assert [deck.job(j.id).status for j in retires] == ["completed", "failed"]
    assert deck.job(retires[1].id).error == f"deployment {dep} is retired"
    assert deck.version(v).status == "deployed"  # the second deployment is still active


def test_a_job_killed_by_a_real_time_signal_fails_saying_so(
    deck: Deck, engine: Engine, repo
) -> None:
    # Signal 40 has no name in Python's signal.Signals: the engine used to fail on it, and the
    # job stayed running.
    write_model(
        repo,
        "rt",
        "import os\n\n\ndef train(context):\n    os.kill(os.getpid(), 40)\n",
    )
    job = deck.train("proj", "rt", "train")
    done = wait_for(deck, job.id, "failed")
    assert done.error == "killed by signal 40"
    assert deck.events(job.id)[-1].details["signal"] == "signal 40"
