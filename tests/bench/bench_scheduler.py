"""Scheduler cost with 1,000 active schedules: idle CPU of a real engine process, and how
late fires are (fire time to job creation) when all 1,000 come due in the same minute.

Run: .venv/bin/python tests/bench/bench_scheduler.py [--deployments 1000] [--idle 30]
Targets: idle under 1% of one core; p99 lateness under 1 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import SCRIPTED_TRAINING, write_csv, write_model  # noqa: E402
from deploy_support import add_fast_stages, approved_version  # noqa: E402

from core.engine import Engine  # noqa: E402
from core.service import Deck  # noqa: E402

IDLE_TARGET = 1.0  # percent of one core
P99_TARGET = 1.0  # seconds


def yearly(i: int) -> str:
    """The i-th of distinct yearly schedules (active but never due while we watch): an
    identical second deployment is refused, so each gets its own minute of January."""
    return f"{i % 60} {i // 60 % 24} {1 + i // 1440 % 28} 1 *"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    fields = data[data.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def setup(home: Path, n: int) -> tuple[Deck, list[str]]:
    repo = home.parent / "repo"
    write_model(repo, "scripted", SCRIPTED_TRAINING)
    add_fast_stages(repo)
    (repo / "data").mkdir()
    for name, rows in (("train", 60), ("test", 40)):
        write_csv(repo / "data" / f"{name}.csv", rows=rows)
    write_csv(repo / "data" / "score.csv", rows=20, target=False)
    deck = Deck(home=home)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "test", repo / "data" / "test.csv", target="label")
    deck.add_dataset("proj", "score", repo / "data" / "score.csv")
    engine = Engine(deck, workers=2, schedules=False)
    version = approved_version(deck, engine, "proj")
    t = time.monotonic()
    for i in range(n):
        deck.deploy(version, "score", yearly(i))
    assert engine.run_until_idle(600)
    engine.release_lease()
    deps = [d.id for d in deck.deployments("proj") if d.status == "active"]
    print(f"setup: {len(deps)} deployments in {time.monotonic() - t:.1f}s", flush=True)
    return deck, deps


class Watcher(threading.Thread):
    """Polls the database every 10 ms and notes, in real time, when each scheduled job
    appears: the engine's own timestamps cannot show how long its commits took."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.conn = sqlite3.connect(db, timeout=30, check_same_thread=False)
        self.seen: dict[str, tuple[float, str]] = {}
        self.last_rowid = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.01):
            rows = self.conn.execute(
                "SELECT rowid, id, json_extract(params, '$.fire_time') FROM job "
                "WHERE rowid > ? AND trigger = 'schedule' ORDER BY rowid",
                (self.last_rowid,),
            ).fetchall()
            now = time.time()
            for rowid, job_id, fire in rows:
                self.seen[job_id] = (now, fire)
                self.last_rowid = max(self.last_rowid, rowid)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deployments", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="modeldeck-bench-")) / "home"
    home.mkdir()
    deck, deps = setup(home, args.deployments)

    env = dict(os.environ, MODELDECK_HOME=str(home))
    env.pop("MODELDECK_DB", None)
    log = open(home / "engine.err", "w")  # noqa: SIM115
    engine = subprocess.Popen(
        [sys.executable, "-m", "tui.entry", "engine", "--workers", str(args.workers)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while deck.serving_engine() is None:
            if time.monotonic() > deadline:
                raise SystemExit("the engine never took the lease")
            time.sleep(0.1)
        time.sleep(3)  # past start-up and the first recovery pass

        # -- idle: 1,000 active schedules, nothing due, nothing queued
        c0, t0 = cpu_seconds(engine.pid), time.monotonic()
        time.sleep(args.idle)
        c1, t1 = cpu_seconds(engine.pid), time.monotonic()
        idle_pct = 100 * (c1 - c0) / (t1 - t0)
        print(
            f"idle: {c1 - c0:.3f}s CPU over {t1 - t0:.0f}s = {idle_pct:.2f}% of one core "
            f"({60 * (c1 - c0) / (t1 - t0):.2f} CPU s per minute)",
            flush=True,
        )

        # -- lateness: every schedule comes due at the same minute boundary
        now = datetime.now(UTC)
        if now.second > 45:  # leave time to switch 1,000 schedules before the boundary
            time.sleep(61 - now.second)
        t = time.monotonic()
        for dep in deps:
            deck.set_schedule(dep, "* * * * *")
        print(f"switched {len(deps)} schedules in {time.monotonic() - t:.1f}s", flush=True)
        boundary = deck.deployment(deps[0]).next_run_at
        assert all(deck.deployment(d).next_run_at == boundary for d in deps[:5])
        watcher = Watcher(home / "modeldeck.db")
        watcher.start()
        wait = (boundary - datetime.now(UTC)).total_seconds()
        time.sleep(max(0.0, wait))
        deadline = time.monotonic() + 120
        while len(watcher.seen) < len(deps) and time.monotonic() < deadline:
            time.sleep(0.1)
        watcher.halt.set()
        late = [
            seen - datetime.fromisoformat(fire).timestamp() for seen, fire in watcher.seen.values()
        ]
        print(f"fires: {len(late)} jobs created for the {boundary:%H:%M:%S} UTC boundary")
        if late:
            print(
                f"lateness (fire time to the job visible in the database, real time): "
                f"p50 {statistics.median(late):.3f}s, p99 {percentile(late, 99):.3f}s, "
                f"max {max(late):.3f}s",
                flush=True,
            )
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(10)
        except subprocess.TimeoutExpired:
            engine.kill()
        log.close()
    text = (home / "engine.err").read_text()
    locked = "database is locked" in text
    ok_idle = idle_pct < IDLE_TARGET
    ok_late = bool(late) and percentile(late, 99) < P99_TARGET and len(late) == len(deps)
    print(
        f"targets: idle < {IDLE_TARGET}% of a core: {'met' if ok_idle else 'MISSED'}; "
        f"p99 lateness < {P99_TARGET}s: {'met' if ok_late else 'MISSED'}; "
        f"'database is locked' in engine output: {'yes' if locked else 'no'}"
    )
    print(f"(data home kept at {home})")
    return 0 if ok_idle and ok_late and not locked else 1


if __name__ == "__main__":
    sys.exit(main())
