"""Several readers at once, with no engine serving, meet a job whose process ended: each
one's recovery may end it, and exactly one does. Its timeline says once that it was
recovered, once what was killed, and ends once (events are append-only: a duplicate would
stay forever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from conftest import ROOT, Result, write_model
from deploy_support import wait_for

from core.procfs import process_alive
from core.service import Deck

# Leaves a process of its own running and dies without a result, once told to.
VANISHER = """
import os
import subprocess
import time
from pathlib import Path


def train(context):
    hold = Path(context.hyperparameters["hold"])
    child = subprocess.Popen(["sleep", "60"])
    print(f"child {child.pid}", flush=True)
    while hold.exists():
        time.sleep(0.02)
    os._exit(3)
"""


def test_concurrent_readers_record_an_ended_job_once(
    deck: Deck, project: str, repo: Path, home: Path, tmp_path: Path, cli
) -> None:
    write_model(repo, "vanisher", VANISHER)
    hold = tmp_path / "hold"
    hold.touch()
    env = dict(os.environ, MODELDECK_HOME=str(home))
    engine = subprocess.Popen(
        [sys.executable, "-m", "tui.entry", "engine", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        job = deck.train("proj", "vanisher", "train", {"hold": str(hold)}).id
        log = deck.log_path(job)
        wait_for(lambda: log.exists() and "child" in log.read_text(), 60, "the job to start")
        child = int(log.read_text().split()[1])
        pid = wait_for(lambda: deck.job(job).pid, 30, "the job's pid to be recorded")
    finally:
        engine.send_signal(signal.SIGTERM)  # it goes; the job runs on
        _, err = engine.communicate(timeout=30)
    assert engine.returncode == 0, err
    assert deck.job(job).status == "running"
    hold.unlink()
    wait_for(lambda: not process_alive(pid, None), 30, "the job's process to end")
    assert process_alive(child, None)  # what it left running

    results: list[Result] = []

    def read() -> None:
        results.append(cli("jobs", "--json"))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(120)
    assert [r.code for r in results] == [0] * 4, [r.err for r in results]
    for r in results:  # each reader shows the job ended
        assert {j["id"]: j["status"] for j in r.json()}[job] == "failed", r.out

    events = cli("events", job, "--json").json()
    kinds = [e["kind"] for e in events]
    assert kinds.count("recovered") == 1, kinds
    assert kinds.count("processes_killed") == 1, kinds
    assert [k for k in kinds if k in ("completed", "failed", "cancelled")] == ["failed"], kinds
    assert kinds[-3:] == ["recovered", "processes_killed", "failed"], kinds
    killed = next(e for e in events if e["kind"] == "processes_killed")
    assert child in killed["details"]["pids"]
    wait_for(lambda: not process_alive(child, None), 10, "the left process to be killed")
