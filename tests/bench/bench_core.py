"""What the engine costs on top of Python itself, measured side by side in one run.

    .venv/bin/python tests/bench/bench_core.py [--jobs 60] [--lines 1000000]

(a) N no-op training jobs through the engine (workers=1 and workers=cpu_count), from the
    first queued job until the last is completed, against N bare ``python -c "import
    training"`` runs of the same module, sequential and parallel likewise. Target: <= 1.2x.
(b) One job printing a million lines, from queueing until it is completed and its log
    complete on disk, against ``python script.py > file``. Target: <= 1.5x.
(c) Jobs queued by another process (``modeldeck train --detach``) while the engine is idle:
    from the job's commit (created_at) until it started (started_at). Target: p95 <= 50 ms,
    where the engine's poll alone would give up to 250 ms.

Not collected by pytest (``--ignore=tests/bench``); ratios are against floors measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.engine import RUNNER, Engine  # noqa: E402
from core.service import Deck  # noqa: E402

NOOP = "def train(context):\n    pass\n"
CHATTY = """
def train(context):
    for i in range({lines}):
        print(f"line {{i}} of the job's output")
"""
SCRIPT = """
for i in range({lines}):
    print(f"line {{i}} of the job's output")
"""


def write_repo(root: Path, lines: int) -> Path:
    repo = root / "repo"
    for name, code in (("noop", NOOP), ("chatty", CHATTY.format(lines=lines))):
        (repo / "models" / name).mkdir(parents=True)
        (repo / "models" / name / "training.py").write_text(textwrap.dedent(code))
    (repo / "data").mkdir()
    (repo / "data" / "d.csv").write_text("x,y\n1,2\n")
    return repo


def fresh_deck(root: Path, repo: Path, tag: str) -> Deck:
    deck = Deck(home=root / f"home-{tag}")
    deck.add_project("bench", repo)
    deck.add_dataset("bench", "d", repo / "data" / "d.csv")
    return deck


def run_jobs(deck: Deck, model: str, n: int, workers: int) -> tuple[float, float]:
    """Queue ``n`` jobs to a running engine; seconds to queue them, and until all completed."""
    engine = Engine(deck, workers=workers)
    engine.start()
    try:
        t0 = time.perf_counter()
        ids = [deck.train("bench", model, "d").id for _ in range(n)]
        queued = time.perf_counter() - t0
        # One cheap query per 10 ms: the waiting must not steal the engine thread's GIL.
        while deck.count_jobs(status=["queued", "running", "stopping"]):
            time.sleep(0.01)
        total = time.perf_counter() - t0
    finally:
        engine.shutdown()
    failed = [j for j in ids if deck.job(j).status != "completed"]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed, e.g. {deck.job(failed[0]).error}")
    return queued, total


def wake_latency(deck: Deck, n: int) -> list[float]:
    """Milliseconds from queueing to start, for ``n`` jobs queued one at a time by another
    process while the engine (default poll) is idle."""
    engine = Engine(deck, workers=1)
    engine.start()
    env = dict(os.environ, MODELDECK_HOME=str(deck.home))
    env.pop("MODELDECK_DB", None)
    out = []
    try:
        while deck.serving_engine() is None:
            time.sleep(0.01)
        for _ in range(n):
            time.sleep(0.3)  # idle again: asleep until woken or its poll
            cmd = [sys.executable, "-m", "tui.entry", "train", "bench", "noop", "--dataset", "d"]
            proc = subprocess.run(
                [*cmd, "--detach"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            job = deck.wait(proc.stdout.split()[0], timeout=30)
            out.append((job.started_at - job.created_at).total_seconds() * 1000)
    finally:
        engine.shutdown()
    return sorted(out)


def bare_imports(model_dir: Path, n: int, parallel: int) -> float:
    cmd = [sys.executable, "-c", "import training"]

    def one(_: int) -> None:
        subprocess.run(cmd, cwd=model_dir, check=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def bare_runners(root: Path, model_dir: Path, n: int) -> float:
    """The job's process alone, ``n`` times in a row: no engine, no database."""
    job_dir = root / "runner-only"
    job_dir.mkdir()
    spec = {
        "job_id": "j-bench",
        "type": "train",
        "code_dir": str(model_dir),
        "model_dir": str(job_dir / "model"),
        "output_dir": str(job_dir / "output"),
        "hyperparameters": {},
    }
    (job_dir / "spec.json").write_text(json.dumps(spec))
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, str(RUNNER), str(job_dir)], cwd=model_dir, check=True)
    return time.perf_counter() - t0


def count_transactions(deck: Deck) -> dict[str, int]:
    """A live count of the deck's database transactions, by kind."""
    from sqlalchemy import event

    counts = {"write": 0, "read": 0}

    @event.listens_for(deck.engine, "begin")
    def _count(conn):  # type: ignore[no-untyped-def]
        immediate = conn.get_execution_options().get("immediate")
        counts["write" if immediate else "read"] += 1

    return counts


def bare_script(root: Path, lines: int) -> float:
    script = root / "script.py"
    script.write_text(textwrap.dedent(SCRIPT.format(lines=lines)))
    t0 = time.perf_counter()
    with open(root / "out.txt", "wb") as fh:
        subprocess.run([sys.executable, str(script)], stdout=fh, check=True)
    return time.perf_counter() - t0


def row(label: str, engine: float, floor: float, target: float) -> None:
    ratio = engine / floor
    verdict = "ok" if ratio <= target else "MISSED"
    print(f"  {label:<34} {engine:8.2f}s  {floor:8.2f}s  {ratio:6.2f}x  (<= {target}x {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    # The engine starts jobs without PYTHONUNBUFFERED (block-buffered output is what keeps a
    # chatty job fast); the floors must run the same way or (b) compares against 1M syscalls.
    os.environ.pop("PYTHONUNBUFFERED", None)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
        root = Path(tmp)
        repo = write_repo(root, args.lines)
        noop_dir = repo / "models" / "noop"
        print(f"python {sys.version.split()[0]}, {cpus} CPU(s), {args.jobs} jobs\n")
        print(f"  {'':<34} {'engine':>9}  {'floor':>9}  {'ratio':>7}")
        for workers in (1, cpus):
            floor = bare_imports(noop_dir, args.jobs, workers)
            deck = fresh_deck(root, repo, f"noop{workers}")
            counts = count_transactions(deck)
            queued, total = run_jobs(deck, "noop", args.jobs, workers)
            deck.close()
            row(f"(a) {args.jobs} no-op jobs, workers={workers}", total, floor, 1.2)
            print(f"      of which queueing {queued:.2f}s ({1000 * queued / args.jobs:.1f} ms/job)")
            print(
                f"      DB transactions per job (queue + run + the waiting loop): "
                f"{counts['write'] / args.jobs:.1f} write, {counts['read'] / args.jobs:.1f} read"
            )
        floor = bare_imports(noop_dir, args.jobs, 1)
        alone = bare_runners(root, noop_dir, args.jobs)
        row(f"    the runner alone, {args.jobs} times", alone, floor, 1.2)
        floor = bare_script(root, args.lines)
        deck = fresh_deck(root, repo, "chatty")
        _, total = run_jobs(deck, "chatty", 1, 1)
        [job] = deck.jobs(limit=1)
        size = deck.log_path(job.id).stat().st_size
        assert size == (root / "out.txt").stat().st_size, "the log is not the script's output"
        deck.close()
        row(f"(b) {args.lines:,} lines to the log", total, floor, 1.5)
        deck = fresh_deck(root, repo, "wake")
        ms = wake_latency(deck, 20)
        deck.close()
        p95 = ms[int(0.95 * (len(ms) - 1))]
        verdict = "ok" if p95 <= 50 else "MISSED"
        print(
            f"(c) queued by another process, to started: p50 {ms[len(ms) // 2]:.0f} ms, "
            f"p95 {p95:.0f} ms  (<= 50 ms {verdict})"
        )


if __name__ == "__main__":
    main()
