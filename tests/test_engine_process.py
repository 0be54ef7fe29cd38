"""The engine as a real process: kill -9 it while jobs print, start another, and nothing is
lost (a job killed with it is failed as `lost`); SIGTERM hands the lease back and leaves
jobs running; two engines never run a job twice; three processes submitting at once never
see `database is locked`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import (
    add_ticker,
    expire_lease,
    started_events,
    wait_final,
    wait_for,
    wait_served,
)

from core.hosts import BEAT_EVERY
from core.models import Job
from core.procfs import process_alive
from core.service import Deck

ROOT = Path(__file__).resolve().parent.parent


class EngineProcess:
    """``modeldeck engine`` in its own process, its output in a file."""

    def __init__(self, home: Path, out: Path, *args: str) -> None:
        env = dict(os.environ, MODELDECK_HOME=str(home))
        self.out = out
        self._fh = open(out, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui.entry", "engine", "--workers", "2", "--grace", "3", *args],
            cwd=ROOT,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.out.read_text()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM; its exit status once it has exited (TimeoutExpired if it does not)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


@pytest.fixture
def engines(tmp_path: Path, home: Path) -> Iterator:
    started: list[EngineProcess] = []

    def start(*args: str) -> EngineProcess:
        e = EngineProcess(home, tmp_path / f"engine{len(started)}.out", *args)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


@pytest.fixture
def tdeck(deck: Deck, project: str, repo: Path) -> Deck:
    add_ticker(repo)
    return deck


def ticker(deck: Deck, lines: int, every: float) -> str:
    return deck.train("proj", "ticker", "train", {"lines": lines, "every": every}).id


def log_lines(deck: Deck, job_id: str) -> list[str]:
    path = deck.log_path(job_id)
    text = path.read_text() if path.exists() else ""
    return text.splitlines()


def serving_pid(deck: Deck) -> int | None:
    lease = deck.serving_engine()
    return lease.pid if lease else None


def kinds(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


def test_sigkill_engine_jobs_survive_and_the_next_engine_reattaches(tdeck, engines) -> None:
    deck = tdeck
    a = engines()
    wait_for(lambda: serving_pid(deck) == a.pid, what="engine a to take the lease")
    short = ticker(deck, lines=300, every=0.02)  # about 6 s
    long = ticker(deck, lines=100_000, every=0.01)  # runs until stopped
    wait_for(
        lambda: len(log_lines(deck, short)) >= 20 and len(log_lines(deck, long)) >= 20,
        what="both jobs to print",
    )
    pids = {j: deck.job(j).pid for j in (short, long)}

    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    before = {j: log_lines(deck, j) for j in (short, long)}
    assert all(process_alive(p, None) for p in pids.values()), "jobs died with their engine"
    assert deck.job(long).status == "running"

    # The dead engine's lease is void at once (its process on this host is gone): nobody
    # serves, and the next engine takes over without waiting for the lease to run out.
    assert deck.serving_engine() is None
    assert deck.job(long).status == "running"
    b = engines()
    wait_for(lambda: serving_pid(deck) == b.pid, what="engine b to take the lease")
    wait_for(lambda: "reattached" in kinds(deck, long), what="b to re-attach")
    n = len(log_lines(deck, long))
    wait_for(lambda: len(log_lines(deck, long)) > n + 10, what="the log to keep flowing")

    stopped = deck.stop(long)
    assert stopped.status == "stopping"
    assert wait_final(deck, long, timeout=20).status == "cancelled"
    assert not process_alive(pids[long], None)
    done = wait_final(deck, short, timeout=30)
    assert done.status == "completed", done

    full = log_lines(deck, short)
    assert full == [f"tick {i}" for i in range(300)]
    assert full[: len(before[short])] == before[short]  # nothing printed before the kill lost
    lines = log_lines(deck, long)
    assert lines[: len(before[long])] == before[long]
    ticks = [x for x in lines if x.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(len(ticks))]
    assert "stop requested; the job was interrupted" in lines[-1]
    for j in (short, long):
        assert started_events(deck, j) == 1

    assert b.terminate() == 0
    assert "engine stopped (SIGTERM)" in b.text()  # it says so, not only by its exit
    assert deck.serving_engine() is None
    assert "database is locked" not in a.text() + b.text()


def test_sigkill_engine_and_its_job_the_next_engine_fails_the_job_as_lost(tdeck, engines) -> None:
    """The engine is killed -9, then its job's process is too (an OOM kill, a reboot of the
    job's part): the job's process is gone without its result, and the next engine fails
    the job as `lost`, keeping what it printed."""
    deck = tdeck
    a = engines()
    wait_for(lambda: serving_pid(deck) == a.pid, what="engine a to take the lease")
    job = ticker(deck, lines=100_000, every=0.01)  # runs until stopped
    wait_for(lambda: len(log_lines(deck, job)) >= 10, what="the job to print")
    pid = deck.job(job).pid
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    os.killpg(pid, signal.SIGKILL)  # it leads its process group
    wait_for(lambda: not process_alive(pid, None), what="the job's process to die")
    before = log_lines(deck, job)
    # Nobody has looked yet: read from the table, not through the Deck, whose reads record
    # the end of a job whose engine is gone (once a second: under load, this one did).
    with deck.store.reader() as s:
        assert s.get(Job, job).status == "running"

    b = engines()
    wait_for(lambda: serving_pid(deck) == b.pid, what="engine b to take the lease")
    final = wait_final(deck, job, timeout=30)
    assert (final.status, final.error) == ("failed", "lost"), final
    [failed] = [e for e in deck.events(job) if e.kind == "failed"]
    assert "vanished" in failed.details["reason"], failed
    assert "reattached" not in kinds(deck, job) and started_events(deck, job) == 1
    assert log_lines(deck, job)[: len(before)] == before  # what it printed is kept
    assert b.terminate() == 0
    assert "Traceback" not in a.text() + b.text()


def test_sigterm_releases_the_lease_and_leaves_jobs_running(tdeck, engines) -> None:
    deck = tdeck
    a = engines()
    wait_for(lambda: serving_pid(deck) == a.pid, what="engine a to take the lease")
    job = ticker(deck, lines=100_000, every=0.01)
    wait_for(lambda: len(log_lines(deck, job)) >= 5, what="the job to print")
    pid = deck.job(job).pid
    # It exits while its job runs on (the job prints until stopped): it does not wait for it.
    assert a.terminate() == 0
    assert "keep running" in a.text()
    assert deck.serving_engine() is None  # released, not left to expire
    assert process_alive(pid, None) and deck.job(job).status == "running"
    n = len(log_lines(deck, job))
    wait_for(lambda: len(log_lines(deck, job)) > n, what="the orphaned job to keep printing")

    engines()  # takes over at once: no lease to wait out
    wait_for(lambda: "reattached" in kinds(deck, job), timeout=10, what="b to re-attach")
    deck.stop(job)
    assert wait_final(deck, job, timeout=20).status == "cancelled"
    assert started_events(deck, job) == 1


@pytest.mark.sqlite_only(
    reason="one engine dispatches and the other stands by only on SQLite; on PostgreSQL both "
    "dispatch (test_postgres: two engines share the queue; test_hosts: kill -9 one of three)"
)
def test_two_engine_processes_race_and_no_job_runs_twice(tdeck, engines) -> None:
    deck = tdeck
    jobs = [ticker(deck, lines=15, every=0.02) for _ in range(10)]
    a, b = engines("--workers", "1"), engines("--workers", "1")
    holder = wait_for(lambda: serving_pid(deck), what="one engine to take the lease")
    first, second = (a, b) if holder == a.pid else (b, a)
    wait_for(lambda: "standing by" in second.text(), what="the other to stand by")
    wait_for(
        lambda: sum(deck.job(j).status == "completed" for j in jobs) >= 3,
        timeout=30,
        what="some jobs to complete",
    )
    first.proc.send_signal(signal.SIGKILL)  # the holder dies mid-queue
    first.proc.wait(10)
    expire_lease(deck.home)
    wait_for(lambda: serving_pid(deck) == second.pid, what="the other engine to take over")
    for j in jobs:
        final = wait_final(deck, j, timeout=60)
        assert final.status == "completed", (final, kinds(deck, j))
        assert started_events(deck, j) == 1, kinds(deck, j)
        assert log_lines(deck, j) == [f"tick {i}" for i in range(15)]
    engines_used = {
        e.details.get("engine") for j in jobs for e in deck.events(j) if e.kind == "started"
    }
    assert len(engines_used) == 2  # both served, one after the other
    assert "database is locked" not in a.text() + b.text()


@pytest.mark.sqlite_only(reason="an engine stands by only on SQLite; on PostgreSQL all dispatch")
def test_a_standing_by_engine_exits_when_idle_once_the_serving_one_ran_the_queue(
    tdeck, engines
) -> None:
    """``--exit-when-idle`` beside a daemon: it stands by, and exits once nothing is queued
    or running in the database (it used to wait for the lease forever)."""
    deck = tdeck
    daemon = engines()
    wait_for(lambda: serving_pid(deck) == daemon.pid, what="the daemon to take the lease")
    job = ticker(deck, lines=100_000, every=0.05)  # runs until it is stopped
    script = engines("--exit-when-idle")
    wait_for(lambda: "standing by" in script.text(), what="the script's engine to stand by")
    wait_served(deck, script.pid, BEAT_EVERY)  # a few of its rounds
    assert script.proc.poll() is None  # the job is still running: not idle
    deck.stop(job)
    assert wait_final(deck, job, timeout=30).status == "cancelled"
    assert script.proc.wait(20) == 0
    assert daemon.proc.poll() is None and serving_pid(deck) == daemon.pid
    assert started_events(deck, job) == 1


SUBMITTER = """
import sys
from core.service import Deck
deck = Deck()
for i in range(int(sys.argv[1])):
    print(deck.train("proj", "scripted", "train", {"lines": 1}).id, flush=True)
"""


def test_three_processes_submit_while_an_engine_runs(tdeck, engines, home: Path) -> None:
    deck = tdeck
    engine = engines()
    wait_for(lambda: serving_pid(deck) == engine.pid, what="the engine to take the lease")
    env = dict(os.environ, MODELDECK_HOME=str(home))
    subs = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, "50"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    ids: list[str] = []
    errors = ""
    for p in subs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids += out.split()
        errors += err
    assert len(ids) == len(set(ids)) == 150
    wait_for(
        lambda: deck.count_jobs(status=["queued", "running", "stopping"]) == 0,
        timeout=150,
        what="all 150 jobs to end",
    )
    statuses = {j.id: j.status for j in deck.jobs(job_type="train", limit=500)}
    assert all(statuses[i] == "completed" for i in ids), [statuses[i] for i in ids]
    engine.terminate()
    assert "database is locked" not in errors
    assert "database is locked" not in engine.text()
    assert "Traceback" not in engine.text()
