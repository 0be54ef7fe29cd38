"""The fork server's spares: processes forked ahead of their jobs, named by the engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
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


def test_a_job_computing_statistics_makes_the_server_import_their_libraries_once(tmp_path):
    """Its process, and every one forked after it, has numpy and pyarrow already; the spares
    forked before (without them) are dropped, never handed a job."""
    training = (
        "import sys\n"
        "def train(context):\n"
        "    print('numpy', 'numpy' in sys.modules)\n"
        "    import numpy as np\n"  # its BLAS threads work in a child forked after them
        "    print('dot', int((np.ones((256, 256)) @ np.ones((256, 256)))[0, 0]))\n"
    )
    server = ForkServer(on_exit=lambda: None)
    try:
        assert _wait(lambda: len(server._spares) >= 2), "no spares announced"

        def run(name: str, preload: bool = False) -> tuple[int, str]:
            job_dir = _job(tmp_path, name, training)
            pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {}, preload)
            assert _wait(lambda: server._codes.get(pid) is not None), "the job never ended"
            assert server.exit_code(pid) == 0, (job_dir / "log.txt").read_text()
            return pid, (job_dir / "log.txt").read_text()

        assert "numpy False" in run("plain")[1]
        before = list(server._spares)
        pid, log = run("statistics", preload=True)
        assert "numpy True" in log and "dot 256" in log
        assert pid not in before
        assert not set(before) & set(server._spares)
        assert _wait(lambda: not any(process_alive(p, None) for p in before))
        assert _wait(lambda: len(server._spares) >= 2), "no new spares announced"
        fresh = list(server._spares)
        pid, log = run("after", preload=True)  # imported once: a spare of the new ones
        assert pid in fresh and "numpy True" in log and "dot 256" in log
    finally:
        server.close()


def test_spares_let_go_are_no_job_s_orphans_until_reaped() -> None:
    """A job that ends while the spares let go at a preload are still exiting must not have
    them killed and reported as processes it left behind."""
    script = textwrap.dedent(
        """
        import os
        from core.forkserver import Spares

        spares = Spares(os.pipe(), count=2)
        spares.add_one()
        spares.add_one()
        gone = spares.close()
        assert len(gone) == 2 and not spares.waiting
        assert spares.ours() == set(gone), (spares.ours(), gone)
        for pid in gone:
            _, status = os.waitpid(pid, 0)
            assert not spares.ended(pid, status)  # not a waiting spare: nothing to tell
        assert spares.ours() == set(), spares.ours()
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "ok"


def test_a_late_answer_to_an_earlier_request_is_not_taken_for_the_next(tmp_path: Path) -> None:
    """An answer that came after its request gave up waiting (a slow preload, say) stays
    in the queue: the next request takes its own answer, by its id, not that one."""
    server = ForkServer(on_exit=lambda: None)
    try:
        server._replies.put({"pid": 424242, "id": 0})  # as a request that gave up left it
        job_dir = _job(tmp_path, "j")
        # A preload request names no spare: it waits for an answer.
        pid = server.spawn(job_dir, tmp_path / "code", job_dir / "log.txt", {}, preload=True)
        assert pid != 424242
        assert _wait(lambda: server._codes.get(pid) is not None), "the job never ended"
        assert server.exit_code(pid) == 0, (job_dir / "log.txt").read_text()
    finally:
        server.close()
