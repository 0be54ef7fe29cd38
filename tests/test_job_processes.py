"""When a job ends, nothing it started remains: background children, shell `&` jobs, a
process that ignores SIGTERM, and a double-forked `setsid()` daemon, whether the job
completes, is stopped, is killed after the grace, or its process dies without cleaning up.

The job's code starts real `sleep` processes through a symlink unique to the test, so `ps`
tells exactly which of them are still there."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine import Engine
from core.service import Deck
from tests.conftest import write_model

# Starts four sleepers, waits until `ps` could see each of them, then ends as told.
SPAWNER = """
import os
import signal
import subprocess
import time


def _running(sleeper):
    found = 0
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if fh.read().split(b"\\0")[0] == sleeper.encode():
                    found += 1
        except OSError:
            pass
    return found


def train(context):
    hp = context.hyperparameters
    sleeper = hp["sleeper"]
    subprocess.Popen([sleeper, "300"], env={})  # in the job's process group, no other trace
    os.system(f"{sleeper} 301 &")  # a shell's background job, orphaned at once
    subprocess.Popen(["sh", "-c", f"trap '' TERM; exec {sleeper} 302"])  # deaf to SIGTERM
    first = os.fork()
    if first == 0:  # a daemon: double fork and a session of its own
        os.setsid()
        if os.fork() == 0:
            env = {} if hp.get("clean_env") else dict(os.environ)  # no trace of the job left
            os.execve(sleeper, [sleeper, "303"], env)
        os._exit(0)
    os.waitpid(first, 0)
    deadline = time.monotonic() + 10
    while _running(sleeper) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(f"sleepers started: {_running(sleeper)}", flush=True)
    if hp.get("then") == "hang":
        time.sleep(300)
    elif hp.get("then") == "deaf":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(300)
    elif hp.get("then") == "vanish":
        os._exit(0)  # no cleanup of its own: the engine has to find what it left
"""


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[str]:
    """A path to `sleep` that no other test uses, so `ps` shows exactly this test's sleepers."""
    link = tmp_path / "mdk-test-sleeper"
    os.symlink(shutil.which("sleep") or "/bin/sleep", link)
    yield str(link)
    for pid, _ in _sleepers(str(link)):  # never leave them behind, whatever happened
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def _sleepers(sleeper: str) -> list[tuple[int, str]]:
    """(pid, args) of the live processes running `sleeper`, as `ps` lists them."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in out.splitlines():
        pid, stat, args = line.split(None, 2)
        if args.split()[0] == sleeper and not stat.startswith("Z"):
            found.append((int(pid), args))
    return found


def _left_behind(sleeper: str, wait: float = 2.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + wait
    left = _sleepers(sleeper)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _sleepers(sleeper)
    return left


def _wait_status(deck: Deck, job_id: str, statuses: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while deck.job(job_id).status not in statuses and time.monotonic() < deadline:
        time.sleep(0.02)
    return deck.job(job_id).status


def _wait_log(deck: Deck, job_id: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = deck.log_path(job_id)
        if path.is_file() and text in path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in the log of {job_id}")


@pytest.fixture(params=[True, False], ids=["forked", "new-interpreter"])
def engine(request: pytest.FixtureRequest, deck: Deck, project: str, repo: Path) -> Iterator:
    write_model(repo, "spawner", SPAWNER)
    # Its jobs give what they leave 1 s between SIGTERM and SIGKILL (half the grace).
    eng = Engine(deck, workers=1, grace=2.0, poll=0.02, fork_server=request.param)
    eng.start()
    yield eng
    eng.shutdown()
    for run in list(eng.running.values()):
        eng.executors.of(run.handle).signal(run.handle, 9)


def test_a_completed_job_leaves_no_process_running(deck: Deck, engine: Engine, sleeper: str):
    job = deck.train("proj", "spawner", "train", {"sleeper": sleeper, "clean_env": True})
    assert _wait_status(deck, job.id, {"completed", "failed"}) == "completed", deck.job(job.id)
    log = deck.log_path(job.id).read_text()
    assert "sleepers started: 4" in log
    assert "modeldeck: ended 4 process(es) the job left running" in log
    assert _left_behind(sleeper) == []
    assert "processes_killed" not in [e.kind for e in deck.events(job.id)]  # nothing was left


def test_a_stopped_job_leaves_no_process_running(deck: Deck, engine: Engine, sleeper: str):
    hp = {"sleeper": sleeper, "then": "hang", "clean_env": True}
    job = deck.train("proj", "spawner", "train", hp)
    _wait_log(deck, job.id, "sleepers started: 4")
    deck.stop(job.id)
    assert _wait_status(deck, job.id, {"cancelled", "failed", "completed"}) == "cancelled"
    assert _left_behind(sleeper) == []
    signals = [e.details["signal"] for e in deck.events(job.id) if e.kind == "signal_sent"]
    assert signals == ["SIGTERM"]  # the job's own process ended what it had started


def test_a_job_killed_after_the_grace_leaves_no_process_running(
    deck: Deck, engine: Engine, sleeper: str
):
    hp = {"sleeper": sleeper, "then": "deaf", "clean_env": True}
    job = deck.train("proj", "spawner", "train", hp)
    _wait_log(deck, job.id, "sleepers started: 4")
    deck.stop(job.id)
    assert _wait_status(deck, job.id, {"cancelled", "failed", "completed"}) == "cancelled"
    signals = [e.details["signal"] for e in deck.events(job.id) if e.kind == "signal_sent"]
    assert signals == ["SIGTERM", "SIGKILL"]
    assert _left_behind(sleeper) == []


def test_a_job_whose_process_vanished_leaves_no_process_running(
    deck: Deck, engine: Engine, sleeper: str
):
    job = deck.train("proj", "spawner", "train", {"sleeper": sleeper, "then": "vanish"})
    _wait_status(deck, job.id, {"completed", "failed", "cancelled"})
    assert "sleepers started: 4" in deck.log_path(job.id).read_text()
    assert _left_behind(sleeper) == []
    killed = [e for e in deck.events(job.id) if e.kind == "processes_killed"]
    assert len(killed) == 1 and len(killed[0].details["pids"]) == 4, deck.events(job.id)


def test_a_forked_job_that_vanished_leaves_not_even_a_daemon_without_its_traces(
    deck: Deck, project: str, repo: Path, sleeper: str
):
    """The daemon left its session and environment behind: the fork server, the subreaper
    that adopted it when the job's process died, ends it."""
    write_model(repo, "spawner", SPAWNER)
    eng = Engine(deck, workers=1, grace=1.0, poll=0.02, fork_server=True)
    eng.start()
    try:
        hp = {"sleeper": sleeper, "then": "vanish", "clean_env": True}
        job = deck.train("proj", "spawner", "train", hp)
        _wait_status(deck, job.id, {"completed", "failed", "cancelled"})
    finally:
        eng.shutdown()
    assert "sleepers started: 4" in deck.log_path(job.id).read_text()
    assert _left_behind(sleeper) == []
    killed = [e for e in deck.events(job.id) if e.kind == "processes_killed"]
    assert len(killed) == 1 and len(killed[0].details["pids"]) == 4, deck.events(job.id)


POOLS = """
import concurrent.futures
import multiprocessing

fork = multiprocessing.get_context("fork")
pool = None
executor = None


def train(context):
    global pool, executor  # alive until the process exits: only exit handlers end them
    pool = fork.Pool(2)  # never closed: multiprocessing's exit handler ends it
    executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=fork)  # nor shut down
    print(pool.map(abs, range(-3, 3)), list(executor.map(abs, range(-3, 3))), flush=True)
"""


def _processes_of(job_id: str) -> list[int]:
    """Live processes whose environment names the job."""
    marker = f"\0MODELDECK_JOB_ID={job_id}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if marker in b"\0" + fh.read():
                    with open(f"/proc/{name}/stat", "rb") as st:
                        if st.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                            found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


def test_process_pools_end_their_own_workers_when_the_job_ends(
    deck: Deck, engine: Engine, repo: Path
):
    """The job's exit handlers run before anything is killed: a pool left open shuts down
    the way it would at any program's exit, nothing is killed, and the job does not hang."""
    # A pool the model left open once printed "Exception ignored in Pool.__del__ ... Bad file
    # descriptor" at the exit of a runner started as a new interpreter: the dataset's
    # baseline, computed after the model's code, imported pandas (through pyarrow's
    # conversions). It no longer does, and this case guards that line too.
    write_model(repo, "pools", POOLS)
    job = deck.train("proj", "pools", "train")
    assert _wait_status(deck, job.id, {"completed", "failed"}) == "completed", deck.job(job.id)
    log = deck.log_path(job.id).read_text()
    assert "[3, 2, 1, 0, 1, 2] [3, 2, 1, 0, 1, 2]" in log
    assert "modeldeck: ended" not in log, log
    assert "Traceback" not in log, log
    assert _processes_of(job.id) == []


def test_the_cli_job_leaves_no_process_running(
    cli, deck: Deck, project: str, repo: Path, sleeper: str
):
    """`modeldeck train` runs the job itself (no engine serves): it exits 0, its output says
    what the job's process ended, and `ps` shows none of the job's sleepers."""
    write_model(repo, "spawner", SPAWNER)
    args = ["--set", f"sleeper={sleeper}", "--set", "clean_env=true"]
    result = cli("train", "proj", "spawner", "--dataset", "train", *args, timeout=60)
    assert result.code == 0, result.err
    assert "sleepers started: 4" in result.out
    assert "modeldeck: ended 4 process(es) the job left running" in result.out
    assert _left_behind(sleeper) == []
