"""TUI benchmarks (a script, not collected by pytest): run ``python tests/bench/bench_tui.py``
(``--reps N`` rounds of the first paint, 15 by default; ``--paint-only`` skips the log part).

1. Time to first paint of the Jobs tab with 100,000 jobs in the project, against an empty
   project (target: at most 1.5x). The two are measured in alternation, N rounds each; the
   bench prints both medians with their quartiles, the ratio of the medians, and the median
   of the per-round ratios, so that the noise of a shared machine is visible. Each round
   starts after a full garbage collection (untimed; see ``measured``).
2. Keypress-to-screen latency on the Job screen while the job prints 100,000 lines a second
   (target: p95 under 100 ms), and the process's memory while it streams.

"Paint" is the moment Textual composes a frame for the terminal (App._display is called
with the update); a key is "on screen" when the first frame after its action ran is made.
Keys are posted to the app the way the terminal driver posts them, without Pilot's waits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from core.engine import Engine  # noqa: E402
from core.models import Job, Project  # noqa: E402
from core.service import Deck  # noqa: E402
from tui.app import ModelDeckApp  # noqa: E402
from tui.logview import LogPane  # noqa: E402
from tui.screens.job import JobScreen  # noqa: E402
from tui.screens.project import ProjectScreen  # noqa: E402
from tui.tabs.jobs import JobsPane  # noqa: E402

JOBS = 100_000
SIZE = (120, 40)

STREAM = """
import time


def train(context):
    hp = context.hyperparameters
    rate, seconds = int(hp.get("rate", 100000)), float(hp.get("seconds", 20))
    batch = rate // 20
    start = time.time()
    i = 0
    while time.time() - start < seconds:
        tick = time.time()
        for _ in range(batch):
            print(f"step {i}: loss 0.{i % 9973:04d} lr 0.001 some padding to look like a log")
            i += 1
        time.sleep(max(0.0, tick + 0.05 - time.time()))
    print(f"printed {i} lines in {time.time() - start:.1f}s")
"""


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_home() -> tuple[Deck, Path]:
    home = Path(tempfile.mkdtemp(prefix="modeldeck-bench-tui-"))
    repo = home / "repo"
    model = repo / "models" / "stream"
    model.mkdir(parents=True)
    (model / "training.py").write_text(textwrap.dedent(STREAM))
    data = repo / "data.csv"
    data.write_text("x,label\n1,0\n2,1\n")
    deck = Deck(home=home / "home")
    for name in ("big", "empty"):
        deck.add_project(name, repo)
        deck.add_dataset(name, "train", data, target="label")
    return deck, home


def insert_jobs(deck: Deck, project: str, n: int) -> float:
    """Bulk-insert ``n`` finished jobs (fine for a benchmark: no events, no logs)."""
    t0 = time.perf_counter()
    with deck.reader() as s:
        pid = s.exec(Project.__table__.select().where(Project.name == project)).first().id  # type: ignore[attr-defined]
    base = datetime(2025, 1, 1, tzinfo=UTC)
    statuses = ("completed", "completed", "completed", "failed", "cancelled")
    types = ("train", "evaluate", "batch_predict", "compute_stats")
    rows = [
        {
            "id": f"j-{i:012x}",
            "project_id": pid,
            "type": types[i % len(types)],
            "status": statuses[i % len(statuses)],
            "trigger": "manual",
            "actor": "bench",
            "params": {},
            "outputs": [],
            "created_at": base + timedelta(seconds=i),
            "started_at": base + timedelta(seconds=i),
            "finished_at": base + timedelta(seconds=i + 3),
            "exit_code": 0,
            "next_seq": 1,
            "events_offset": 0,
        }
        for i in range(n)
    ]
    with deck.engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(Job.__table__.insert(), rows[start : start + 10_000])  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def spy_frames(app: ModelDeckApp) -> list[float]:
    """Timestamps of the frames the app composes for the terminal."""
    frames: list[float] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        original(screen, renderable)

    app._display = display  # type: ignore[method-assign]
    return frames


async def until(condition: Callable[[], Any], timeout: float = 30.0) -> float:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"waited too long for {condition}")
        await asyncio.sleep(0.001)
    return time.perf_counter()


async def first_paint(deck: Deck, project: str) -> tuple[float, float]:
    """Seconds from opening a project on its Jobs tab to the first frame showing its jobs,
    and the CPU seconds the process spent meanwhile (all its threads: less swayed than the
    wall clock by other processes on a shared machine)."""
    app = ModelDeckApp(deck, project=None, run_engine=False)
    async with app.run_test(size=SIZE):
        frames = spy_frames(app)
        await asyncio.sleep(0.3)
        t0, cpu0 = time.perf_counter(), time.process_time()
        app.push_screen(ProjectScreen(project, tab="jobs"))
        await until(
            lambda: (
                isinstance(app.screen, ProjectScreen)
                and bool(app.screen.query(JobsPane))
                and app.screen.query_one(JobsPane).shown_once
            )
        )
        shown = time.perf_counter()
        await until(lambda: frames and frames[-1] >= shown)
        return frames[-1] - t0, time.process_time() - cpu0


async def key_latency(deck: Deck, job_id: str, keys: list[str], rounds: int) -> dict[str, Any]:
    app = ModelDeckApp(deck, project=None, run_engine=False)
    out: dict[str, list[float]] = {k: [] for k in keys}
    async with app.run_test(size=SIZE):
        frames = spy_frames(app)
        app.open_job(job_id)
        await until(lambda: isinstance(app.screen, JobScreen) and bool(app.screen.query(LogPane)))
        pane = app.screen.query_one(LogPane)
        await until(lambda: pane.total > 50_000)
        rss = [rss_mb()]
        totals = [pane.total]
        for i in range(rounds):
            for key in keys:
                before = (pane.follow, pane.wrap, pane.log_widget.scroll_y)
                t0 = time.perf_counter()
                app.post_message(events.Key(key, key if len(key) == 1 else None))
                changed = await until(
                    lambda before=before: (
                        (pane.follow, pane.wrap, pane.log_widget.scroll_y) != before
                    )
                )
                await until(lambda changed=changed: frames and frames[-1] >= changed)
                out[key].append(frames[-1] - t0)
                await asyncio.sleep(0.05 + 0.01 * (i % 5))
            if i % 10 == 0:
                rss.append(rss_mb())
                totals.append(pane.total)
        lines_in_widget = len(pane.lines)
    return {"latency": out, "rss": rss, "totals": totals, "window": lines_in_widget}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    """Median and quartiles in milliseconds: ``123.4 ms (p25 110, p75 140)``."""
    q1, _, q3 = statistics.quantiles(values, n=4)
    median = statistics.median(values)
    return f"{median * 1000:7.1f} ms (p25 {q1 * 1000:4.0f}, p75 {q3 * 1000:4.0f})"


async def measured(deck: Deck, project: str) -> tuple[float, float]:
    """One round of ``first_paint``, the garbage of the rounds before collected first (not
    timed): a full collection goes through every object of the process, and the apps of the
    earlier rounds (Textual keeps up to 1,024 of their widgets' style caches) made it long.
    Without it, whichever round crossed the collector's threshold paid for all of them: most
    often the project with more rows to draw, whatever those rows cost themselves."""
    gc.collect()
    return await first_paint(deck, project)


async def paint_rounds(deck: Deck, reps: int) -> None:
    # Warm up imports and caches once, then alternate the two projects.
    await first_paint(deck, "empty")
    await first_paint(deck, "big")
    empty, big = [], []
    for _ in range(reps):
        empty.append(await measured(deck, "empty"))
        big.append(await measured(deck, "big"))
    print(f"\n1. Jobs tab, time to first paint ({reps} rounds, alternating)")
    for i, what in ((0, "wall clock"), (1, "CPU time")):
        e = [x[i] for x in empty]
        b = [x[i] for x in big]
        ratio = statistics.median(b) / statistics.median(e)
        rounds = statistics.median(x / y for x, y in zip(b, e, strict=True))
        print(f"   {what}")
        print(f"     empty project:      {spread(e)}")
        print(f"     100,000 jobs:       {spread(b)}")
        print(f"     ratio of medians:   {ratio:7.2f}x   (target <= 1.5x)")
        print(f"     median round ratio: {rounds:7.2f}x")
        print(f"     all (ms), empty: {[round(x * 1000) for x in e]}")
        print(f"     all (ms), big:   {[round(x * 1000) for x in b]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="rounds of the first paint")
    parser.add_argument("--paint-only", action="store_true", help="skip the log benchmark")
    args = parser.parse_args()
    os.environ.setdefault("TZ", "UTC")
    deck, home = make_home()
    print(f"data home: {home}")
    took = insert_jobs(deck, "big", JOBS)
    print(f"inserted {JOBS:,} jobs in {took:.1f}s")
    await paint_rounds(deck, args.reps)
    if args.paint_only:
        deck.close()
        return

    # A job printing 100,000 lines a second, run by an engine on its own thread.
    engine = Engine(deck)
    engine.start()
    try:
        job = deck.train("empty", "stream", "train", {"rate": 100_000, "seconds": 25})
        t0 = time.perf_counter()
        while deck.job(job.id).status != "running":
            if time.perf_counter() - t0 > 30:
                raise TimeoutError("the streaming job did not start")
            await asyncio.sleep(0.05)
        result = await key_latency(deck, job.id, ["f", "w", "up", "end"], rounds=25)
        lines_before = deck.log_index(job.id).refresh()
        await asyncio.sleep(1.0)
        rate = (deck.log_index(job.id).refresh() - lines_before) / 1.0
        deck.stop(job.id)
        deck.wait(job.id, timeout=20)
    finally:
        engine.shutdown()
    print(f"\n2. Job screen while the job prints lines (measured rate: {rate:,.0f} lines/s)")
    all_latencies: list[float] = []
    for key, values in result["latency"].items():
        all_latencies += values
        print(
            f"   key {key!r:6} p50 {pct(values, 50) * 1000:6.1f} ms   "
            f"p95 {pct(values, 95) * 1000:6.1f} ms   max {max(values) * 1000:6.1f} ms"
        )
    p95 = pct(all_latencies, 95)
    print(f"   all keys           p95 {p95 * 1000:6.1f} ms   (target < 100 ms)")
    print(
        f"   log lines in the file while measuring: {result['totals'][0]:,} -> "
        f"{result['totals'][-1]:,}; lines held by the widget: {result['window']:,}"
    )
    print("   process RSS (MB) while streaming: " + " -> ".join(f"{x:.0f}" for x in result["rss"]))
    deck.close()


if __name__ == "__main__":
    asyncio.run(main())
