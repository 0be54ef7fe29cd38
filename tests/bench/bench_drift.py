"""A batch prediction of 1,000,000 rows x 20 columns with drift against the same prediction
without drift, in one run.

    .venv/bin/python tests/bench/bench_drift.py [--rows 1000000] [--reps 1] [--keep FILE]

Setup, through the engine as a user's jobs run: a project whose model is a scikit-learn
pipeline (one-hot text columns, linear regression) trained on 20,000 rows of the bench's
dataset (15 numeric and 5 text columns, ``bench_stats.write_csv``): its version gets a
baseline; evaluated, approved, deployed on the 1M-row CSV, whose first column is shifted
(real drift to find). One batch prediction runs through the engine: its drift is computed.

What is compared: that job's own runner (``core/runner.py`` in a new interpreter, the
command the engine runs for a model naming another Python) on copies of its job directory,
once with its spec as the engine wrote it (``spec["monitoring"]["compare"]``: the
baseline; drift computed) and once with ``spec["monitoring"]`` removed (the same job for a
version without a baseline). Same model, same data, same built-in scorer; the only
difference is the drift. Wall time, CPU time and peak RSS (``wait4``) of each runner process
(the CPU ratio is printed too: steadier than wall time on a shared machine); with
``--reps`` > 1 the order alternates and medians are compared.
Target: drift <= 1.3x. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stats import NUMERIC, TEXT, write_csv  # noqa: E402

from core.engine import Engine  # noqa: E402
from core.engine.executor import runner_command  # noqa: E402
from core.service import Deck  # noqa: E402

TIME_TARGET = 1.3
TRAIN_ROWS = 20_000
SHIFT = 0.5  # added to x0 (std 1) in the scored data: PSI well above the alert line

TRAINING = """
import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder


def train(context):
    frame = pd.read_csv(context.dataset.path)
    y = frame.pop("y")
    text = [c for c in frame.columns if c.startswith("t")]
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), text)], remainder="passthrough"
    )
    model = make_pipeline(encode, LinearRegression()).fit(frame, y)
    joblib.dump(model, context.model_dir / "model.joblib")
"""


def write_training(path: Path) -> None:
    import numpy as np
    import pandas as pd

    write_csv(path, TRAIN_ROWS)
    frame = pd.read_csv(path)
    rng = np.random.default_rng(1)
    nums = [f"x{i}" for i in range(NUMERIC)]
    frame["y"] = frame[nums].sum(axis=1) + (frame["t0"] == "w3") * 2 + rng.normal(0, 1, len(frame))
    frame.to_csv(path, index=False)


def shift_first_column(src: Path, dst: Path) -> None:
    """``src`` with ``SHIFT`` added to x0, written in chunks."""
    import pandas as pd

    with open(dst, "w") as fh:
        for i, chunk in enumerate(pd.read_csv(src, chunksize=200_000)):
            chunk["x0"] = (chunk["x0"] + SHIFT).round(5)
            chunk.to_csv(fh, index=False, header=i == 0)


def checked(deck: Deck, engine: Engine, job_id: str) -> None:
    assert engine.run_until_idle(900), "the engine did not finish"
    job = deck.job(job_id)
    assert job.status == "completed", (job.status, deck.events(job_id))


def engine_job(home: Path, repo: Path, train_csv: Path, score_csv: Path) -> tuple[Path, float]:
    """The drift job run through the engine: its job directory and its duration (s)."""
    deck = Deck(home=home)
    deck.add_project("bench", repo)
    deck.add_dataset("bench", "train", train_csv, target="y")
    deck.add_dataset("bench", "score", score_csv)
    engine = Engine(deck, workers=1)
    try:
        job = deck.train("bench", "lin", "train")
        checked(deck, engine, job.id)
        version = deck.job(job.id).version
        assert version
        for submit in (
            lambda: deck.evaluate(version, "train"),
            lambda: deck.approve(version, "bench"),
            lambda: deck.deploy(version, "score"),
        ):
            j = submit()
            checked(deck, engine, j.id)
        dep = deck.job(j.id).deployment
        assert dep
        job = deck.predict(dep)
        checked(deck, engine, job.id)
        final = deck.job(job.id)
        took = (final.finished_at - final.started_at).total_seconds()
    finally:
        engine.shutdown()
        deck.close()
    for spec in home.rglob("spec.json"):
        if json.loads(spec.read_text()).get("job_id") == job.id:
            return spec.parent, took
    raise AssertionError(f"no job directory of {job.id} under {home}")


def _moved(value: object, old: str, new: str) -> object:
    if isinstance(value, str) and value.startswith(old):
        return new + value[len(old) :]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def runner_copy(job_dir: Path, dest: Path, monitoring: bool) -> Path:
    """A fresh copy of the job's directory (its outputs and result left out), its spec's paths
    moved there, with or without ``spec["monitoring"]``."""
    spec = json.loads((job_dir / "spec.json").read_text())
    assert isinstance((spec.get("monitoring") or {}).get("compare"), dict), spec.get("monitoring")
    if not monitoring:
        spec.pop("monitoring")
    spec = _moved(spec, str(job_dir), str(dest))
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    out = Path(spec["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (dest / "spec.json").write_text(json.dumps(spec))
    return dest


def run_runner(job_dir: Path, cwd: Path) -> tuple[float, float, float, dict]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MiB) and result of the runner
    process on ``job_dir``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(job_dir / "job.log", "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            runner_command(sys.executable, job_dir), cwd=cwd, env=env, stdout=log, stderr=log
        )
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    results = list(job_dir.rglob("result.json"))
    result = json.loads(results[0].read_text()) if results else {}
    if proc.returncode != 0 or "monitoring_error" in result:
        raise AssertionError((job_dir / "job.log").read_text()[-2000:])
    cpu = usage.ru_utime + usage.ru_stime
    return took, cpu, usage.ru_maxrss / 1024, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="reuse (or keep) the unshifted CSV here")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = root / "repo"
        (repo / "models" / "lin").mkdir(parents=True)
        (repo / "models" / "lin" / "training.py").write_text(TRAINING)
        (repo / "models" / "lin" / "model.json").write_text(json.dumps({"task": "regression"}))
        data = repo / "data"
        data.mkdir()
        base = a.keep or root / "big.csv"
        t = time.perf_counter()
        if not base.exists():
            write_csv(base, a.rows)
        write_training(data / "train.csv")
        shift_first_column(base, data / "score.csv")
        print(f"data ({a.rows} x {NUMERIC + TEXT}) written in {time.perf_counter() - t:.1f} s")
        train, score = data / "train.csv", data / "score.csv"
        job_dir, engine_took = engine_job(root / "home", repo, train, score)
        print(f"the batch prediction with drift through the engine: {engine_took:.2f} s")
        cwd = repo / "models" / "lin"
        runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        drift: dict = {}
        for rep in range(a.reps):
            for monitoring in (False, True) if rep % 2 == 0 else (True, False):
                copy = runner_copy(job_dir, root / f"rerun-{monitoring}", monitoring)
                took, cpu, rss, result = run_runner(copy, cwd)
                assert ("drift" in result) == monitoring, sorted(result)
                if monitoring:
                    drift = result["drift"]
                runs[monitoring].append((took, cpu, rss))
    worst = max(drift["features"], key=lambda f: f.get("psi") or 0)
    print(f"drift found: {worst['name']} PSI {worst['psi']:.3f} over {drift['scored_rows']} rows")
    med = {m: statistics.median(t for t, _, _ in r) for m, r in runs.items()}
    cpu = {m: statistics.median(c for _, c, _ in r) for m, r in runs.items()}
    rss = {m: max(r for _, _, r in v) for m, v in runs.items()}
    for m, what in ((False, "without drift"), (True, "with drift   ")):
        print(
            f"batch prediction {what}: {med[m]:.2f} s (CPU {cpu[m]:.2f} s), "
            f"peak RSS {rss[m]:.0f} MiB"
        )
    ratio = med[True] / med[False]
    cpu_ratio = cpu[True] / cpu[False]
    print(f"time ratio {ratio:.2f}x (target <= {TIME_TARGET}x); CPU ratio {cpu_ratio:.2f}x")
    print("runs (wall s, CPU s, MiB):", {("drift" if m else "none"): v for m, v in runs.items()})
    return 0 if ratio <= TIME_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
