"""The lease and crash recovery: one engine serves a database, jobs outlive their engine,
and the next engine re-attaches, records outcomes, or fails what vanished as `lost`.

Fast unit tests, in this process: an engine "dies" by never ticking again (``lease.held =
False`` so it does not even release its lease), with the clock or ``expire_lease`` standing
in for the time its lease takes to run out. Engines that really die, processes killed with
SIGKILL mid-job, are in tests/test_engine_process.py (the next engine re-attaches; the job
killed too is failed as `lost`) and tests/test_hosts.py (another host's engine)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_support import (
    add_ticker,
    expire_lease,
    started_events,
    utc,
    wait_final,
    wait_for,
)

from core.clock import FakeClock
from core.engine import Engine
from core.lifecycle import JobStatus
from core.models import Job
from core.procfs import HOST, process_alive
from core.service import Deck

NewEngine = Callable[..., Engine]  # the ``new_engine`` fixture: engines shut down at the end


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 6, 1, 9, 0))


@pytest.fixture
def fdeck(home: Path, repo: Path, clock: FakeClock) -> Iterator[Deck]:
    add_ticker(repo)
    d = Deck(home=home, clock=clock)
    d.add_project("proj", repo)
    d.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    yield d
    d.close()


def ticker(deck: Deck, lines: int = 50, every: float = 0.02) -> str:
    return deck.train("proj", "ticker", "train", {"lines": lines, "every": every}).id


def kinds(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


@pytest.mark.sqlite_only(reason="a standby engine: PostgreSQL's engines all dispatch")
def test_lease_expiry_and_takeover(fdeck: Deck, clock: FakeClock, new_engine: NewEngine) -> None:
    a = new_engine(fdeck, workers=2, lease_ttl=15)
    b = new_engine(fdeck, workers=2, lease_ttl=15)
    a.tick()
    b.tick()
    assert a.holds_lease and not b.holds_lease
    lease = fdeck.serving_engine()
    assert lease is not None and lease.owner == a.id and lease.pid == os.getpid()
    assert lease.host == HOST and lease.expires_at == utc(2026, 6, 1, 9, 0, 15)

    job = ticker(fdeck, lines=1)
    b.tick()  # a standby engine dispatches nothing
    assert fdeck.job(job).status == "queued"

    clock.advance(10)  # a renews before its lease runs out; b still stands by
    a.tick()
    b.tick()
    assert a.holds_lease and not b.holds_lease
    assert fdeck.serving_engine().expires_at == utc(2026, 6, 1, 9, 0, 25)

    clock.advance(16)  # a stopped renewing (dead or stalled): the lease runs out
    assert fdeck.serving_engine() is None
    b.tick()
    assert b.holds_lease and fdeck.serving_engine().owner == b.id
    a.tick()  # the old holder notices at once and stops dispatching
    assert not a.holds_lease
    assert wait_final(fdeck, job, engine=b).status == "completed"
    assert started_events(fdeck, job) == 1
    assert fdeck.job(job).host == HOST

    b.shutdown()  # a clean stop hands the lease back at once
    assert fdeck.serving_engine() is None
    a.tick()
    assert a.holds_lease
    a.release_lease()


def test_direct_concurrent_claims_never_run_a_job_twice(fdeck: Deck, new_engine: NewEngine) -> None:
    """Two engines that both believe they hold the lease (a stalled one wakes up) race for
    the same queue; the guarded claim lets exactly one of them start each job."""
    jobs = [ticker(fdeck, lines=1, every=0) for _ in range(16)]
    engines = [new_engine(fdeck, workers=4) for _ in range(2)]
    barrier = threading.Barrier(2)

    def race(engine: Engine) -> None:
        engine.lease.held = True  # and it never renews: no tick, only these phases
        barrier.wait()
        for _ in range(400):
            engine.dispatcher.dispatch()
            engine.follower.follow()
            if all(fdeck.job(j).status == "completed" for j in jobs):
                return

    threads = [threading.Thread(target=race, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        wait_for(lambda e=e: (e.follower.follow(), not e.running)[1], what="engines to settle")
    for j in jobs:
        assert fdeck.job(j).status == "completed", fdeck.job(j)
        assert started_events(fdeck, j) == 1, kinds(fdeck, j)
    assert {fdeck.job(j).pid for j in jobs}.__len__() == len(jobs)


def test_two_engines_sharing_a_database_with_a_lease_handover(
    fdeck: Deck, clock: FakeClock, new_engine: NewEngine
) -> None:
    jobs = [ticker(fdeck, lines=3, every=0.01) for _ in range(10)]
    a, b = new_engine(fdeck, workers=2), new_engine(fdeck, workers=2)
    for _ in range(3):
        a.tick()
        b.tick()
    clock.advance(16)  # a stalls past its lease: b takes over, a must step back
    b.tick()
    a.tick()
    assert b.holds_lease and not a.holds_lease
    wait_for(
        lambda: (a.tick(), b.tick(), all(fdeck.job(j).status == "completed" for j in jobs))[2],
        timeout=60,
        what="all jobs",
    )
    for j in jobs:
        assert started_events(fdeck, j) == 1, kinds(fdeck, j)


def test_reattach_to_a_live_job_then_stop_it(fdeck: Deck, new_engine: NewEngine) -> None:
    a = new_engine(fdeck, workers=2, grace=5)
    job = ticker(fdeck, lines=2000, every=0.01)
    a.tick()
    pid = wait_for(lambda: fdeck.job(job).pid, what="pid")
    log = fdeck.log_path(job)
    wait_for(lambda: log.exists() and log.read_text().count("\n") >= 5, what="log lines")
    a.lease.held = False  # a "dies" (in-process): it never ticks again
    expire_lease(fdeck.home)
    b = new_engine(fdeck, workers=2, grace=5)
    b.tick()
    assert job in b.running and "reattached" in kinds(fdeck, job)
    before = log.read_text().count("\n")
    wait_for(lambda: log.read_text().count("\n") > before + 5, what="the log to keep flowing")
    fdeck.stop(job)
    final = wait_final(fdeck, job, engine=b)
    assert final.status == "cancelled"
    assert not process_alive(pid, None)
    assert "signal_sent" in kinds(fdeck, job)
    assert "stop requested; the job was interrupted" in log.read_text()


def test_outcome_of_a_job_that_ended_while_no_engine_followed_it(
    fdeck: Deck, new_engine: NewEngine
) -> None:
    a = new_engine(fdeck, workers=2)
    job = ticker(fdeck, lines=5, every=0.01)
    a.tick()
    result = fdeck.job_dir(job) / "result.json"
    wait_for(result.exists, what="result.json")
    a.lease.held = False  # it "died" (in-process) before noticing
    expire_lease(fdeck.home)
    b = new_engine(fdeck, workers=2)
    b.tick()
    final = fdeck.job(job)
    assert final.status == "completed" and final.version
    assert "recovered" in kinds(fdeck, job)
    assert started_events(fdeck, job) == 1


def test_a_vanished_process_is_failed_as_lost(fdeck: Deck, new_engine: NewEngine) -> None:
    a = new_engine(fdeck, workers=2)
    job = ticker(fdeck, lines=5000, every=0.01)
    a.tick()
    pid = wait_for(lambda: fdeck.job(job).pid, what="pid")
    log = fdeck.log_path(job)
    wait_for(lambda: log.exists() and "tick 0" in log.read_text(), what="the job to run")
    a.lease.held = False  # it "dies" (in-process)
    os.killpg(pid, signal.SIGKILL)  # gone without writing result.json
    wait_for(lambda: not process_alive(pid, None), what="the process to die")
    expire_lease(fdeck.home)
    b = new_engine(fdeck, workers=2)
    b.tick()
    final = fdeck.job(job)
    assert final.status == "failed" and final.error == "lost"
    events = fdeck.events(job)
    assert any(e.kind == "failed" and "lost" in e.message for e in events)
    assert "vanished" in events[-1].details["reason"]


def test_a_reused_pid_is_not_mistaken_for_the_job(fdeck: Deck, new_engine: NewEngine) -> None:
    """The recorded pid now belongs to another process (here: this test's own): the kernel
    start time tells them apart, so the job is lost rather than adopted."""
    job = ticker(fdeck, lines=1)
    with fdeck.writer() as s:
        row = s.get(Job, job)
        row.status, row.host, row.engine_id = JobStatus.running.value, HOST, "gone:1:1"
        row.pid = row.pgid = os.getpid()
        row.proc_start = 1.0  # not when this process started
        s.add(row)
        s.commit()
    new_engine(fdeck, workers=2).tick()
    final = fdeck.job(job)
    assert final.status == "failed" and final.error == "lost"


def test_a_job_claimed_but_never_started_is_queued_again(
    fdeck: Deck, new_engine: NewEngine
) -> None:
    """The engine died between claiming a job and starting its process: no code ran, so the
    job is queued again (and runs once), not left `running` with no process behind it."""
    job = ticker(fdeck, lines=2, every=0)
    stopped = ticker(fdeck, lines=2, every=0)
    with fdeck.writer() as s:
        for jid in (job, stopped):
            row = s.get(Job, jid)
            row.status, row.host, row.engine_id = JobStatus.running.value, HOST, "gone:1:1"
            row.started_at = fdeck.now()
            s.add(row)
        s.commit()
    fdeck.stop(stopped)  # asked to stop while nobody ran it
    e = new_engine(fdeck, workers=2)
    e.tick()
    assert "requeued" in kinds(fdeck, job)
    assert fdeck.job(stopped).status == "cancelled"
    assert wait_final(fdeck, job, engine=e).status == "completed"
    assert started_events(fdeck, job) == 1


def test_a_process_started_but_not_yet_recorded_is_found(
    fdeck: Deck, new_engine: NewEngine
) -> None:
    """The engine died after starting the process but before recording its pid: the
    runner's pid file lets the next engine adopt it instead of running the job again."""
    a = new_engine(fdeck, workers=2)
    job = ticker(fdeck, lines=30, every=0.02)
    a.tick()
    wait_for(lambda: fdeck.job(job).pid, what="pid")
    a.lease.held = False  # it "dies" (in-process)
    with fdeck.writer() as s:  # forget what the dead engine wrote after the spawn
        row = s.get(Job, job)
        row.pid = row.pgid = row.proc_start = row.handle = None
        s.add(row)
        s.commit()
    expire_lease(fdeck.home)
    b = new_engine(fdeck, workers=2)
    b.tick()
    assert fdeck.job(job).pid is not None
    final = wait_final(fdeck, job, engine=b)
    assert final.status == "completed"
    assert fdeck.read_log(job, 0, 100) == [f"tick {i}" for i in range(30)]
    assert "requeued" not in kinds(fdeck, job)
