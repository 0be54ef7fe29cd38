"""Ray executor overhead: 20 no-op training jobs through modeldeck on a local Ray head, against
the same 20 entrypoints (the runner on a copy of each job's spec, the same runtime env)
submitted directly with Ray's ``JobSubmissionClient`` and waited for, in the same run.

Run: .venv/bin/python tests/bench/bench_ray.py [--jobs 20] [--rounds 1]
Target: modeldeck's wall time at most 1.2x the direct submissions'. Also reported: the head's
start time (``ray start`` until the Jobs API answers) and its memory (RSS of its processes).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from core.engine import Engine  # noqa: E402
from core.engine.executor import runner_command  # noqa: E402
from core.lifecycle import FINAL_STATUSES  # noqa: E402
from core.service import Deck  # noqa: E402
from tests.conftest import write_model  # noqa: E402
from tests.ray_support import head_memory, start_head, stop_head  # noqa: E402

TARGET = 1.2
NOOP = "def train(context):\n    pass\n"
POLL = 0.2  # the direct client's status poll, as the engine's


def through_modeldeck(deck: Deck, url: str, n: int) -> tuple[float, list[str]]:
    engine = Engine(deck, workers=n, grace=2.0, executor_options={"ray_address": url})
    try:
        began = time.monotonic()
        ids = [deck.train("p", "noop", "train").id for _ in range(n)]
        assert engine.run_until_idle(600), "modeldeck's jobs did not end"
        took = time.monotonic() - began
    finally:
        engine.shutdown()
    jobs = [deck.job(j) for j in ids]
    bad = [j for j in jobs if j.status != "completed" or j.executor != "ray"]
    assert not bad, bad[0]
    return took, ids


def direct(deck: Deck, url: str, ids: list[str], base: Path, tag: str) -> float:
    """The same runner entrypoints, each on a fresh copy of a modeldeck job's spec."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(url)
    submissions: list[tuple[str, str, dict[str, object]]] = []
    for i, job_id in enumerate(ids):
        spec = json.loads((deck.store.job_dir(job_id) / "spec.json").read_text())
        job_dir = base / f"{tag}-{i}"
        (job_dir / "output").mkdir(parents=True)
        spec["output_dir"] = str(job_dir / "output")
        spec["model_dir"] = str(job_dir / "model")
        (job_dir / "spec.json").write_text(json.dumps(spec))
        code = shlex.quote(spec["code_dir"])
        entry = f"cd {code} && exec {shlex.join(runner_command(sys.executable, job_dir))}"
        env = {"env_vars": {"MODELDECK_JOB_ID": f"{tag}-{i}", "RAY_JOB_STOP_WAIT_TIME_S": "3"}}
        submissions.append((entry, f"direct-{tag}-{i}", env))
    began = time.monotonic()
    for entry, sid, env in submissions:
        client.submit_job(entrypoint=entry, submission_id=sid, runtime_env=env)
    pending = {sid for _, sid, _ in submissions}
    while pending:
        for sid in list(pending):
            status = client.get_job_status(sid)
            if status.is_terminal():
                assert str(status.value) == "SUCCEEDED", (sid, status)
                pending.discard(sid)
        if pending:
            time.sleep(POLL)
    return time.monotonic() - began


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mdrb", dir="/tmp"))
    temp = base / "ray"
    deck: Deck | None = None
    try:
        url, head_start = start_head(temp)
        count, rss = head_memory(temp)
        mib = rss / 2**20
        print(f"ray head: started in {head_start:.1f}s; {count} processes, {mib:.0f} MiB RSS")
        repo = base / "repo"
        write_model(repo, "noop", NOOP, **{"model.json": json.dumps({"executor": "ray"})})
        (repo / "train.csv").write_text("x,label\n1,0\n2,1\n")
        deck = Deck(home=base / "home")
        deck.add_project("p", repo)
        deck.add_dataset("p", "train", repo / "train.csv", target="label")
        # Warm both paths once (the head's first workers, imports), then measure.
        _, warm = through_modeldeck(deck, url, 1)
        direct(deck, url, warm, base, "warm")
        ratios = []
        for r in range(args.rounds):
            md, ids = through_modeldeck(deck, url, args.jobs)
            dr = direct(deck, url, ids, base, f"r{r}")
            ratios.append(md / dr)
            print(
                f"round {r + 1}: {args.jobs} jobs: modeldeck {md:.2f}s, "
                f"direct JobSubmissionClient {dr:.2f}s, ratio {md / dr:.2f}x"
            )
        count, rss = head_memory(temp)
        print(f"ray head after the jobs: {count} processes, {rss / 2**20:.0f} MiB RSS")
        worst = max(ratios)
        verdict = "ok" if worst <= TARGET else "OVER TARGET"
        print(f"worst ratio {worst:.2f}x (target <= {TARGET}x): {verdict}")
        done = all(deck.job(j).status in FINAL_STATUSES for j in ids)
        return 0 if worst <= TARGET and done else 1
    finally:
        if deck is not None:
            deck.close()
        stop_head()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
