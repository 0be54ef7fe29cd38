"""The TUI's terminal goes away mid-job (an SSH session drops: SIGHUP). The TUI's process
ends, the job's process runs on, and its outcome is recorded: by the next reader here."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from core.service import Deck
from tests.conftest import ROOT


def _drain(fd: int, seconds: float) -> bytes:
    """Read what the TUI writes to its terminal for a while (a pty left unread blocks it)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


def test_sighup_of_the_tui_leaves_the_job_running_and_it_is_recorded(
    deck: Deck, project: str, home: Path
) -> None:
    job = deck.train(project, "scripted", "train", {"sleep": 2, "lines": 1})
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real modeldeck TUI on a terminal of its own
        os.chdir(ROOT)
        env = dict(os.environ, MODELDECK_HOME=str(home), TERM="xterm-256color")
        env.pop("MODELDECK_DB", None)
        os.execve(sys.executable, [sys.executable, "-m", "tui.entry", "tui"], env)
    try:
        deadline = time.monotonic() + 30
        # The TUI's engine started the job and recorded its process.
        while "sleeping" not in deck.read_log(job.id, 0, 10) or not deck.job(job.id).pid:
            assert time.monotonic() < deadline, "the TUI's engine never started the job"
            _drain(fd, 0.1)
        job_pid = deck.job(job.id).pid
        assert deck.job(job.id).status == "running"
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while True:
            _drain(fd, 0.05)
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the TUI did not end on SIGHUP"
        # The TUI is gone; the job's process is not, and nothing serves the database now.
        os.kill(job_pid, 0)
        assert deck.serving_engine() is None
        deadline = time.monotonic() + 30
        while (view := deck.job(job.id)).status not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        assert view.status == "completed", view
        assert view.version is not None
        assert deck.read_log(job.id, 0, 10)[:2] == ["line 0", "sleeping"]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
