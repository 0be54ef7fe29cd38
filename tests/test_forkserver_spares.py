"""The fork server's spares: processes forked ahead of their jobs, named by the engine."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from core.engine.executor import ForkServer
from core.procfs import process_alive


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


SID = "import os\ndef train(context):\n    print('sid', os.getsid(0))\n"


def _job(tmp_path: Path, name: str, training: str = SID) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "training.py").write_text(training)
    job_dir = tmp_path / name
    job_dir.mkdir()
    spec = {
        "job_id": name,
        "type": "train",
        "code_dir": str(code),
        "model_dir": str(job_dir / "model"),
        "output_dir": str(job_dir / "output"),
    }
    (job_dir / "spec.json").write_text(json.dumps(spec))
    return job_dir


def test_jobs_run_in_spares_and_a_spare_that_died_waiting_is_not_used(tmp_path: Path):
    server = ForkServer(on_exit=lambda: None)
    try:
        assert _wait(lambda: len(server._spares) >= 2), "no spares announced"
        victim = server._spares[0]
        os.kill(victim, signal.SIGKILL)
        assert _wait(lambda: victim not in server._spares), "a dead spare still offered"
        pids = []
        for i in range(6):
            job_dir = _job(tmp_path, f"j{i}")
            pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {})
            pids.append((pid, job_dir))
            assert _wait(lambda p=pid: server._codes.get(p) is not None), "the job never ended"
        for pid, job_dir in pids:
            assert pid != victim
            assert server.exit_code(pid) == 0, (job_dir / "log.txt").read_text()
            assert json.loads((job_dir / "result.json").read_text())["status"] == "completed"
            # Its own session: the spare led it before its pid was announced.
            assert f"sid {pid}" in (job_dir / "log.txt").read_text()
        spares = list(server._spares)
    finally:
        server.close()
    # The engine gone, the spares that never got a job end too.
    assert spares
    assert _wait(lambda: not any(process_alive(p, None) for p in spares))


def test_the_statistics_server_s_jobs_have_numpy_and_the_plain_server_s_do_not(tmp_path):
    """The server for jobs computing statistics imported numpy and pyarrow before forking,
    spares included; the plain server never imports them (its jobs stay light)."""
    training = (
        "import sys\n"
        "def train(context):\n"
        "    print('numpy', 'numpy' in sys.modules, 'pyarrow' in sys.modules)\n"
        "    import numpy as np\n"  # its BLAS threads work in a child forked after them
        "    print('dot', int((np.ones((256, 256)) @ np.ones((256, 256)))[0, 0]))\n"
    )
    plain = ForkServer(on_exit=lambda: None)
    stats = ForkServer(on_exit=lambda: None, statistics=True)
    try:

        def run(server: ForkServer, name: str) -> str:
            job_dir = _job(tmp_path, name, training)
            pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {})
            assert _wait(lambda: server._codes.get(pid) is not None), "the job never ended"
            assert server.exit_code(pid) == 0, (job_dir / "log.txt").read_text()
            return (job_dir / "log.txt").read_text()

        assert "numpy False False" in run(plain, "plain")
        assert _wait(lambda: bool(stats._spares), timeout=30), "no spare announced"
        for name in ("statistics", "again"):  # a spare, then one forked on the request
            log = run(stats, name)
            assert "numpy True True" in log and "dot 256" in log, log
        assert "numpy False False" in run(plain, "plain-after")
    finally:
        plain.close()
        stats.close()


def test_a_job_of_the_statistics_server_profiles_a_csv_without_importing_anything(
    tmp_path: Path,
) -> None:
    """What the statistics import on first use (numpy.random, numpy.ma, pyarrow.csv: ~25 ms
    of CPU a job) is in the server already: profiling a dataset imports no module."""
    data = tmp_path / "d.csv"
    data.write_text("x,y,c\n" + "".join(f"{i * 0.5},{i % 7},{'ab'[i % 2]}\n" for i in range(60)))
    training = (
        "import sys\n"
        "from core.monitoring.profile import profile_file\n"
        "def train(context):\n"
        "    before = set(sys.modules)\n"
        f"    assert profile_file({str(data)!r})['rows'] == 60\n"
        "    print('imported', sorted(set(sys.modules) - before))\n"
    )
    server = ForkServer(on_exit=lambda: None, statistics=True)
    try:
        job_dir = _job(tmp_path, "profile", training)
        pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {})
        assert _wait(lambda: server._codes.get(pid) is not None, timeout=30), "never ended"
        log = (job_dir / "log.txt").read_text()
        assert server.exit_code(pid) == 0, log
        assert "imported []" in log, log
    finally:
        server.close()


def test_a_late_answer_to_an_earlier_request_is_not_taken_for_the_next(tmp_path: Path) -> None:
    """An answer that came after its request gave up waiting (a slow fork, say) is not taken
    for the next request's, which gets its own by its id; the late one's process is killed
    (its job was failed as not started)."""
    import subprocess

    late = subprocess.Popen(["sleep", "60"], start_new_session=True)
    server = ForkServer(on_exit=lambda: None, spares=0)  # every request waits for an answer
    try:
        server._replies.put({"pid": late.pid, "id": 0})  # as a request that gave up left it
        job_dir = _job(tmp_path, "j")
        pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {})
        assert pid != late.pid
        assert _wait(lambda: server._codes.get(pid) is not None), "the job never ended"
        assert server.exit_code(pid) == 0, (job_dir / "log.txt").read_text()
        assert late.wait(10) == -signal.SIGKILL
    finally:
        server.close()
        if late.poll() is None:
            late.kill()
            late.wait()


def test_a_job_process_forked_after_its_request_gave_up_is_killed(tmp_path: Path, monkeypatch):
    """The engine fails a job whose process the fork server did not hand over in time. If
    the server forks it after all, the process is killed as soon as its answer comes: a job
    recorded as not started must not run its code unseen."""
    from core.engine import executor

    training = "import time\ndef train(context):\n    time.sleep(60)\n"
    server = ForkServer(on_exit=lambda: None, spares=0)
    try:
        monkeypatch.setattr(executor, "SPAWN_TIMEOUT", 0.0)  # gives up before any answer
        job_dir = _job(tmp_path, "j", training)
        try:
            server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {})
        except OSError as exc:
            assert "did not answer" in str(exc)
        else:
            raise AssertionError("the request did not give up")
        killed = lambda: -signal.SIGKILL in server._codes.values()  # noqa: E731
        assert _wait(killed), f"the late job process still runs: {server._codes}"
        assert not (job_dir / "result.json").exists()
        monkeypatch.setattr(executor, "SPAWN_TIMEOUT", 30.0)
        job_dir = _job(tmp_path, "k")  # the next request is answered as before
        pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {})
        assert _wait(lambda: server._codes.get(pid) is not None), "the next job never ended"
        assert server.exit_code(pid) == 0, (job_dir / "log.txt").read_text()
    finally:
        server.close()


def test_a_server_whose_engine_left_without_reading_leaves_quietly(tmp_path: Path) -> None:
    """An engine process that exits at once (the console script skips the interpreter's
    teardown) closes its end of the server's stdout while the server still has spares to
    announce: the server leaves as when its stdin closes, with no traceback on the stderr it
    shares with the engine's command."""
    import subprocess
    import sys

    from core.engine.executor import RUNNER

    boot = f"import sys; sys.path.append({str(RUNNER.parent.parent)!r}); "
    boot += "from core.forkserver import serve; serve(False, 4)"
    proc = subprocess.Popen(
        [sys.executable, "-c", boot],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the engine is gone; its stdin end stays open (no end of file)
    try:
        code = proc.wait(timeout=30)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()
    assert code == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
