"""A job command that runs its own job (no engine serves) through the real CLI: Ctrl-C leaves
the job running and the suggested commands work, the next reader records how it ended, a
real engine started meanwhile serves at once (and adopts the job), and the CLI says when no
engine serves."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from conftest import ROOT
from deploy_support import add_fast_stages, approved_version, deploy, wait_for

from core.engine import Engine
from core.procfs import process_alive
from core.service import Deck

NO_ENGINE = "no engine serves this database: the job starts when one does; run `modeldeck engine`"


@pytest.fixture
def start(home: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``modeldeck ARGS`` in the background (stdout a pipe, stderr a pipe)."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        env = dict(os.environ, MODELDECK_HOME=str(home))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui.entry", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


# Trains while a `hold` file sits next to it: the test decides when the job's code ends.
HELD_TRAINING = """
import time
from pathlib import Path

HOLD = Path(__file__).with_name("hold")


def train(context):
    print("holding", flush=True)
    while HOLD.exists():
        time.sleep(0.02)
    print("released", flush=True)
    (context.model_dir / "weights.txt").write_text("1")
"""


@pytest.fixture
def hold(project: str, repo: Path) -> Iterator[Path]:
    """The ``held`` model's hold file (in place: its jobs wait until the test removes it)."""
    folder = repo / "models" / "held"
    folder.mkdir()
    (folder / "training.py").write_text(HELD_TRAINING)
    path = folder / "hold"
    path.touch()
    yield path
    path.unlink(missing_ok=True)  # no job outlives the test


def foreground_train(
    start: Callable[..., subprocess.Popen[str]], deck: Deck
) -> tuple[subprocess.Popen[str], str]:
    """``modeldeck train`` of the held model, once the job's code runs."""
    proc = start("train", "proj", "held", "--dataset", "train")
    assert proc.stdout is not None
    job_id = proc.stdout.readline().strip()
    assert job_id.startswith("j-"), job_id
    log = deck.log_path(job_id)
    wait_for(lambda: log.exists() and "holding" in log.read_text(), what="the job to run")
    return proc, job_id


def interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=10)


def kinds(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


def test_ctrl_c_leaves_the_job_running_and_logs_follow_records_its_end(
    cli, start, deck: Deck, hold: Path
) -> None:
    proc, job_id = foreground_train(start, deck)
    _out, err = interrupt(proc)
    assert proc.returncode == 1
    # Said once and plainly, and nothing that reads as if it still waited ("train running
    # in 7.7s")
    assert err.splitlines() == [
        f"modeldeck: interrupted: job {job_id} keeps running (it was not stopped); follow it "
        f"with `modeldeck logs {job_id} --follow`, stop it with `modeldeck stop {job_id}`"
    ]
    assert deck.job(job_id).status == "running"  # no engine follows it now

    follow = start("logs", job_id, "--follow")  # as suggested: it waits for the end
    wait_for(lambda: deck.job(job_id).status == "running" and follow.poll() is None)
    hold.unlink()
    out, err = follow.communicate(timeout=30)  # ... and returns once the job has ended
    assert follow.returncode == 0, err
    assert out.splitlines() == ["holding", "released"]
    shown = cli("job", job_id, "--json").json()
    assert shown["status"] == "completed" and shown["version"], shown
    assert shown["exit_code"] == 0
    [version] = deck.versions("proj")
    assert version.id == shown["version"] and version.status == "trained"
    seen = kinds(deck, job_id)
    assert seen.count("started") == 1 and "recovered" in seen and seen[-1] == "completed"


def test_sigterm_leaves_the_job_running_and_says_so(start, deck: Deck, hold: Path) -> None:
    proc, job_id = foreground_train(start, deck)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert err.splitlines() == [
        f"modeldeck: terminated: job {job_id} keeps running (it was not stopped); follow it "
        f"with `modeldeck logs {job_id} --follow`, stop it with `modeldeck stop {job_id}`"
    ]
    job = deck.job(job_id)
    assert job.status == "running" and process_alive(job.pid, None)
    hold.unlink()


def test_stop_after_the_process_ended_records_the_outcome_not_a_cancel(
    cli, start, deck: Deck, hold: Path
) -> None:
    proc, job_id = foreground_train(start, deck)
    interrupt(proc)
    hold.unlink()
    wait_for((deck.job_dir(job_id) / "result.json").exists, what="the job's process to end")
    stopped = cli("stop", job_id)
    assert stopped.code == 2
    assert stopped.err.strip() == f"error: job {job_id} is already completed"
    shown = cli("job", job_id, "--json").json()
    assert shown["status"] == "completed" and shown["version"], shown
    assert [v.status for v in deck.versions("proj")] == ["trained"]


def test_ctrl_c_then_the_suggested_stop_stops_the_job(cli, start, deck: Deck, hold: Path) -> None:
    proc, job_id = foreground_train(start, deck)
    interrupt(proc)
    pid = deck.job(job_id).pid
    stopped = cli("stop", job_id, timeout=30)  # no engine serves: stop adopts the job
    assert stopped.code == 0, stopped.err
    assert stopped.out.strip() == f"job {job_id} cancelled"
    assert not process_alive(pid, None)
    seen = kinds(deck, job_id)
    assert "reattached" in seen and "signal_sent" in seen and seen[-1] == "cancelled"


def test_reading_jobs_records_a_job_that_ended_while_no_engine_ran(
    cli, start, deck: Deck, hold: Path
) -> None:
    proc, job_id = foreground_train(start, deck)
    interrupt(proc)
    hold.unlink()
    wait_for((deck.job_dir(job_id) / "result.json").exists, what="the job's process to end")
    [listed] = cli("jobs", "--json").json()
    assert (listed["id"], listed["status"]) == (job_id, "completed")


def test_a_real_engine_serves_while_a_job_command_runs_and_adopts_its_job(
    cli, start, deck: Deck, hold: Path
) -> None:
    proc, job_id = foreground_train(start, deck)
    engine = start("engine", "--workers", "2")
    assert engine.stderr is not None
    # The engine takes the lease at once: it does not stand by behind the job command.
    first = engine.stderr.readline()
    assert "modeldeck engine" in first
    assert engine.stderr.readline().startswith("holding the engine lease"), first
    queued = cli("train", "proj", "scripted", "--dataset", "train", "--detach")
    assert queued.code == 0 and NO_ENGINE not in queued.err
    other = queued.out.strip()
    wait_for(lambda: deck.job(other).status == "completed", what="the engine to run a new job")
    assert proc.poll() is None and deck.job(job_id).status == "running"
    wait_for(lambda: "reattached" in kinds(deck, job_id), what="the engine to adopt the job")

    hold.unlink()
    out, err = proc.communicate(timeout=30)  # the job command follows its job to the end
    assert proc.returncode == 0, err
    assert out.splitlines() == ["holding", "released"]  # (its id was read already)
    assert err.startswith("train completed")
    done = deck.job(job_id)
    assert done.status == "completed" and done.version
    assert kinds(deck, job_id).count("started") == 1
    engine.send_signal(signal.SIGTERM)
    engine.communicate(timeout=10)
    assert engine.returncode == 0


def test_detach_says_when_no_engine_serves(cli, deck: Deck, project: str) -> None:
    r = cli("train", "proj", "scripted", "--dataset", "train", "--detach")
    assert r.code == 0
    assert r.err.strip() == NO_ENGINE
    assert deck.job(r.out.strip()).status == "queued"
    r = cli("train", "proj", "scripted", "--dataset", "train", "--detach", "--json")
    assert r.code == 0 and NO_ENGINE in r.err and r.json()["status"] == "queued"


def test_next_runs_say_no_engine_when_none_serves(
    cli, deck: Deck, project: str, repo: Path
) -> None:
    add_fast_stages(repo)
    engine = Engine(deck, workers=2)
    dep = deploy(deck, engine, approved_version(deck, engine, project), "0 6 * * *")
    engine.release_lease()

    listed = cli("deployments", "proj")
    assert listed.code == 0, listed.err
    [row] = [line for line in listed.out.splitlines() if line.startswith(dep)]
    assert row.count("(no engine)") == 1
    shown = cli("schedule", dep)
    assert shown.code == 0 and shown.out.rstrip().endswith("(no engine)"), shown.out

    engine = Engine(deck, workers=2)
    engine.tick()  # an engine serves now: the next run will happen
    try:
        assert engine.holds_lease
        listed = cli("deployments", "proj")
        assert listed.code == 0, listed.err
        [row] = [line for line in listed.out.splitlines() if line.startswith(dep)]
        assert "(no engine)" not in row, row
        assert " 06:00:00 " in row  # the next run, unmarked
        shown = cli("schedule", dep)
        assert shown.code == 0 and "(no engine)" not in shown.out, shown.err
    finally:
        engine.release_lease()


def first_line(stream: IO[str], timeout: float = 30.0) -> str:
    """The first line a process writes on ``stream``; AssertionError if none comes in time."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "nothing was said"
    return stream.readline().rstrip("\n")


def test_following_a_queued_job_says_whether_an_engine_serves(
    cli, start, deck: Deck, project: str
) -> None:
    job = deck.train("proj", "scripted", "train", {"lines": 2})
    follow = start("logs", job.id, "--follow")
    assert follow.stderr is not None
    said = first_line(follow.stderr)  # said at once, then it waits, as it did
    assert said == f"modeldeck: job {job.id} is queued; {NO_ENGINE}"
    assert follow.poll() is None and deck.job(job.id).status == "queued"
    engine = Engine(deck, workers=1)
    engine.start()  # an engine comes: the job runs, and the follow shows it to its end
    try:
        out, err = follow.communicate(timeout=60)
    finally:
        engine.shutdown()
    assert follow.returncode == 0, err
    assert out.splitlines() == ["line 0", "line 1"]
    assert err.splitlines() == [f"modeldeck: job {job.id} completed"]  # the note said once

    engine = Engine(deck, workers=1)
    engine.tick()  # it holds the lease (serves) but runs no round until asked
    try:
        assert engine.holds_lease
        queued = deck.train("proj", "scripted", "train", {"lines": 2})
        follow = start("logs", queued.id, "--follow", "--raw")
        assert follow.stderr is not None
        said = first_line(follow.stderr)
        assert follow.poll() is None  # it waits, as it did
    finally:
        engine.release_lease()
        engine.shutdown()
    lease_holder = f"(pid {os.getpid()}) serves this database: it starts when a worker is free"
    assert said.startswith(f"modeldeck: job {queued.id} is queued; the engine on ")
    assert said.endswith(lease_holder), said
