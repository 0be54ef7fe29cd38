"""Commit to ``running`` for a job queued by another process's store while an engine is
idle: PostgreSQL (LISTEN/NOTIFY) against SQLite (the abstract-socket poke) in the same run.

The engine polls every 5 s, so only a wake-up starts a job sooner. Each job is queued once
the previous one has ended (the engine is idle again); the delay is the job's ``started_at``
(its claim) minus its ``created_at`` (its queueing), both read from the same clock.

Run: MODELDECK_TEST_PG=postgresql://postgres@127.0.0.1:5432/postgres \\
     .venv/bin/python tests/bench/bench_pg_wakeup.py [--jobs 30]
Target: p99 under 100 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import SCRIPTED_TRAINING, write_csv, write_model  # noqa: E402

from core.engine import Engine  # noqa: E402
from core.service import Deck  # noqa: E402

P99_TARGET = 0.100


def delays(db: str | None, jobs: int, work: Path) -> list[float]:
    repo = work / "repo"
    write_model(repo, "scripted", SCRIPTED_TRAINING)
    (repo / "data").mkdir(parents=True, exist_ok=True)
    write_csv(repo / "data" / "train.csv")
    deck = Deck(home=work / "engine-home", db=db)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    engine = Engine(deck, workers=1, poll=5.0)
    engine.start()
    # Another store queues: only the database (NOTIFY) or the socket (poke) carries it.
    other = Deck(home=work / "engine-home" if db is None else work / "other-home", db=db)
    out: list[float] = []
    try:
        time.sleep(1.0)
        for _ in range(jobs):
            job = other.train("proj", "scripted", "train", {"lines": 0})
            done = deck.wait(job.id, timeout=120)
            assert done.status == "completed", done
            out.append((done.started_at - done.created_at).total_seconds())
            time.sleep(0.2)  # idle again: its listener waits
    finally:
        engine.shutdown()
        other.close()
        deck.close()
    return out


def show(name: str, values: list[float]) -> float:
    values = sorted(values)
    p50 = statistics.median(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    print(f"{name:10} n={len(values)}  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")
    return p99


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    pg = os.environ.get("MODELDECK_TEST_PG")
    if not pg:
        print("set MODELDECK_TEST_PG=postgresql://USER@HOST:PORT/postgres", file=sys.stderr)
        return 2
    import psycopg

    name = f"modeldeck_bench_{os.getpid()}"
    admin = psycopg.connect(pg, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        from sqlalchemy.engine import make_url

        url = make_url(pg).set(database=name).render_as_string(hide_password=False)
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            sqlite = show("sqlite", delays(None, args.jobs, Path(a)))
            postgres = show("postgres", delays(url, args.jobs, Path(b)))
        print(f"postgres/sqlite p99 ratio {postgres / max(sqlite, 1e-6):.2f}")
        verdict = "met" if postgres < P99_TARGET else "NOT met"
        print(f"target p99 < {P99_TARGET * 1000:.0f} ms: {verdict}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
