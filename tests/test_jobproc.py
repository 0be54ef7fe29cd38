"""The job process's own cost: what a baseline imports, and what a forked job does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from core.engine import Engine
from core.engine.executor import LocalExecutor
from core.monitoring.profile import floats
from core.service import Deck
from tests.conftest import write_model

ROOT = Path(__file__).resolve().parents[1]


def _converted(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """pyarrow's own conversion, as ``floats`` did it before (it imports pandas)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.cast(arr, pa.float64())
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar(float("nan"), pa.float64()))
    return arr.to_numpy(zero_copy_only=True)


@pytest.mark.parametrize(
    "arr",
    [
        pa.chunked_array([[1, None, 3], [4, 5]]),
        pa.chunked_array([], type=pa.float64()),
        pa.array([1, 2, 3, None, 5], type=pa.int32()).slice(2),
        pa.array([], type=pa.int64()),
        pa.array([True, False, None]),
        pa.array([1.5, None] * 100).slice(7, 90),
        pa.array([None, None], type=pa.float64()),
        pa.array([1.0, 2.0]).slice(1),
        pa.array([1.0]).slice(1),
        pa.array([float("inf"), -0.0, float("nan")]),
    ],
)
def test_floats_as_pyarrow_converts(arr: pa.Array | pa.ChunkedArray) -> None:
    got, want = floats(arr), _converted(arr)
    assert got.dtype == want.dtype == np.float64
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    assert got.flags.writeable is False


def test_a_baseline_of_a_csv_imports_no_pandas(tmp_path: Path) -> None:
    """Profiling a CSV (a training's baseline) needs numpy and pyarrow, not pandas: importing
    pandas was most of the first training's cost on a small dataset."""
    data = tmp_path / "d.csv"
    data.write_text("x,y,c\n1,2,a\n3,,b\n5,6.5,a\n")
    code = textwrap.dedent(
        f"""
        import sys
        from core.monitoring.profile import profile_file
        prof = profile_file({str(data)!r})
        assert prof["rows"] == 3, prof
        assert prof["columns"]["y"]["missing"] == 1, prof["columns"]["y"]
        print("pandas" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False"], out.stdout + out.stderr


PROBE = """
import json, sys

def train(context):
    names = ("core.monitoring.reuse", "encodings.utf_8_sig", "pandas", "numpy")
    print("loaded " + json.dumps({n: n in sys.modules for n in names}))
"""


def test_a_forked_training_finds_what_every_job_imports_in_place(
    deck: Deck, project: str, repo: Path
) -> None:
    """The fork server imported the baseline-reuse module and the CSV codec once: a job
    forked from it does not import them again before its code. The first training of its
    dataset computes the baseline: it is forked by the statistics' server, which imported
    numpy (and pyarrow) for it. The next one reuses that baseline: forked by the plain
    server, without them. Neither has a dataframe library."""
    write_model(repo, "probe", PROBE)
    engine = Engine(deck, workers=1)
    jobs = []
    try:
        for _ in range(2):  # the second queued once the first's baseline is recorded
            jobs.append(deck.train(project, "probe", "train").id)
            assert engine.run_until_idle(timeout=60)
    finally:
        engine.shutdown()
    for job_id, numpy in zip(jobs, (True, False), strict=True):
        done = deck.job(job_id)
        assert done.status == "completed", done.error
        lines, _ = deck.tail_log(job_id, 0, final=True)
        line = next(x for x in lines if x.startswith("loaded "))
        assert json.loads(line[len("loaded ") :]) == {
            "core.monitoring.reuse": True,
            "encodings.utf_8_sig": True,
            "pandas": False,
            "numpy": numpy,
        }
    result = json.loads((deck.home / "jobs" / jobs[1] / "result.json").read_text())
    assert "reused" in result["baseline"]


def test_a_statistics_server_ended_by_its_imports_is_not_started_again(
    deck: Deck, project: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken numpy that ends the process importing it: the statistics' fork server dies
    at its start, yet the job starts (forked by the plain server) and completes,
    its baseline skipped with the import's error, as a job importing numpy itself does."""
    stub = tmp_path / "broken" / "numpy"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "import os\n"
        "if not os.environ.get('MODELDECK_JOB_ID'):  # the fork server: it ends\n"
        "    os._exit(3)\n"
        "raise ImportError('numpy is broken here')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(stub.parent))  # the fork server's, and its jobs'
    write_model(repo, "probe", PROBE)
    jobs = [deck.train(project, "probe", "train").id for _ in range(2)]
    engine = Engine(deck, workers=1)
    try:
        assert engine.run_until_idle(timeout=60)
    finally:
        engine.shutdown()
    for job_id in jobs:
        done = deck.job(job_id)
        assert done.status == "completed", done.error
        lines, _ = deck.tail_log(job_id, 0, final=True)
        assert "modeldeck: monitoring skipped: ImportError: numpy is broken here" in lines


def test_an_engine_starts_its_fork_server_when_it_starts_serving(deck: Deck) -> None:
    """Before any job is queued: the first job does not wait for the server to boot. An
    engine without a fork server (a settling read) starts none."""
    engine = Engine(deck, workers=1)
    plain = Engine(deck, workers=1, lease=False, schedules=False, fork_server=False)
    try:
        assert engine.run_until_idle(timeout=30)
        local = engine.executors.get("local")
        assert isinstance(local, LocalExecutor)
        assert list(local.fork_servers) == [False] and local.fork_servers[False].alive()
        assert plain.run_until_idle(timeout=30)
        other = plain.executors.get("local")
        assert isinstance(other, LocalExecutor) and not other.fork_servers
    finally:
        engine.shutdown()
        plain.shutdown()
