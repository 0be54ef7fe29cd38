"""Where a no-op job's dispatch goes: SQL statements and transactions per job, and a profile.

    .venv/bin/python tests/bench/profile_dispatch.py [--jobs 60] [--workers 2] [--top 25]

Queues N no-op training jobs, then runs the real ``modeldeck engine --exit-when-idle
--workers W`` command in this process (``core.cli.main``, as the console script does) with
SQLAlchemy event listeners on every engine and cProfile on the engine's thread (the command
drives the engine from the main thread). It prints, per job:

- transactions (write = ``BEGIN IMMEDIATE``, read = deferred) and statements by kind
  (verb and table), with the time spent inside the driver for each kind;
- which modeldeck function issued them (the innermost frame under ``core/`` but
  ``core/db.py`` and ``core/rawsql.py``);
- the wall time inside the engine's phases (inclusive, nested: ``_start`` holds ``_launch``
  holds ``_spawn``), measured by wrapping those methods with a timer, which costs far less than
  a profiler;
- the CPU time of the whole engine process (all its threads) and of its children (the fork
  server and, through it, the jobs' processes): what each side costs the machine a job;
- with ``--cprofile``, the engine's own functions by cumulative and own time (cProfile slows
  the engine down by about half again: read its figures as shares, not as times).

The engine's code is not changed: only listeners and timers around its methods are added, in
this process. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import re
import resource
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import fresh_deck, reap_adopted, settle_files, write_repo  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine as SqlEngine  # noqa: E402

from core import cli, engine  # noqa: E402
from core.engine.dispatcher import Dispatcher  # noqa: E402
from core.engine.executor import ForkServer  # noqa: E402
from core.engine.follower import Follower  # noqa: E402
from core.engine.ingest import Ingest  # noqa: E402
from core.engine.lease import Lease  # noqa: E402
from core.engine.outcome import Outcomes  # noqa: E402
from core.engine.recovery import Recovery  # noqa: E402
from core.engine.scheduler import Scheduler  # noqa: E402

PHASES = (
    "tick",
    "_dispatch",
    "_start",
    "_spec",
    "_launch",
    "_spawn",
    "_record_started",
    "_follow",
    "_ingest_events",
    "_collect",
    "_finish",
    "_renew_lease",
    "_next_fire_at",
    "_fire_schedules",
    "_recover",
    "_sleep_time",
)

PHASE_METHODS = (
    (Dispatcher, "dispatch"),
    (Dispatcher, "_claim"),
    (Dispatcher, "_launch"),
    (Follower, "record_started"),
    (Follower, "follow"),
    (Follower, "collect"),
    (Outcomes, "finish"),
    (Outcomes, "finish_many"),
    (Follower, "ending"),
    (Ingest, "ingest"),
    (Lease, "renew"),
    (Scheduler, "fire"),
    (Recovery, "recover"),
)

CORE = str(ROOT / "core") + os.sep
PLUMBING = {str(ROOT / "core" / name) for name in ("db.py", "rawsql.py")}
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+\"?(\w+)", re.IGNORECASE)


def kind(sql: str) -> str:
    """A statement's verb and first table: ``SELECT job``, ``UPDATE job``, ``BEGIN``."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb in ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE"):
        return " ".join(words[:2]).upper() if verb in ("BEGIN", "PRAGMA") else verb
    table = _TABLE.search(sql)
    return f"{verb} {table.group(1) if table else '?'}"


def caller() -> str:
    """The innermost modeldeck function on the stack, but the database plumbing
    (``core/db.py``, ``core/rawsql.py``): ``follower.record_started``, ``jobs.end``."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(CORE) and name not in PLUMBING:
            return f"{Path(name).stem}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "(other)"


class Phases:
    """Calls and inclusive wall seconds of the engine's methods, by a timer around each."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.main = threading.get_ident()

    def wrap(self, cls: type, name: str, label: str) -> None:
        inner = getattr(cls, name, None)
        if inner is None:  # the engine's code moved on: time what is still there
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                if threading.get_ident() == self.main:  # the thread the command drives
                    self.calls[label] += 1
                    self.seconds[label] += time.perf_counter() - t0
                    self.cpu[label] += time.thread_time() - c0

        setattr(cls, name, timed)

    def install(self) -> None:
        for name in PHASES:
            self.wrap(engine.Engine, name, name)
        for cls, name in PHASE_METHODS:  # core/engine/ as phases: their methods by class
            self.wrap(cls, name, f"{cls.__name__}.{name}")
        self.wrap(ForkServer, "spawn", "ForkServer.spawn (round trip)")
        self.wrap(threading.Event, "wait", "Event.wait (idle: nothing to do)")


class Tally:
    """Statements, transactions and driver time, from SQLAlchemy's events on all engines."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.by_caller: Counter[str] = Counter()
        self.caller_seconds: defaultdict[str, float] = defaultdict(float)
        self.transactions: Counter[str] = Counter()
        self.started: dict[int, tuple[float, str, str]] = {}
        self.on = False

    def listen(self) -> None:
        event.listen(SqlEngine, "before_cursor_execute", self._before)
        event.listen(SqlEngine, "after_cursor_execute", self._after)
        event.listen(SqlEngine, "begin", self._begin)
        event.listen(SqlEngine, "commit", self._end("commit"))
        event.listen(SqlEngine, "rollback", self._end("rollback"))

    def _before(self, conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if self.on:
            self.started[id(cursor)] = (time.perf_counter(), kind(sql), caller())

    def _after(self, conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        got = self.started.pop(id(cursor), None)
        if got is None:
            return
        t0, what, who = got
        took = time.perf_counter() - t0
        self.statements[what] += 1
        self.seconds[what] += took
        self.by_caller[who] += 1
        self.caller_seconds[who] += took

    def _begin(self, conn: Any) -> None:
        if self.on:
            immediate = conn.get_execution_options().get("immediate")
            self.transactions["write" if immediate else "read"] += 1

    def _end(self, what: str) -> Any:
        def count(conn: Any) -> None:
            if self.on:
                self.transactions[what] += 1

        return count


def report(
    tally: Tally, phases: Phases, n: int, wall: float, profile: cProfile.Profile | None, top: int
) -> None:
    per = 1 / n
    total = sum(tally.statements.values())
    db = sum(tally.seconds.values())
    tx = tally.transactions
    print(f"engine command: {wall:.2f} s wall for {n} jobs ({1000 * wall / n:.1f} ms a job)")
    print(
        f"per job: {(tx['write'] + tx['read']) * per:.1f} transactions "
        f"({tx['write'] * per:.1f} write, {tx['read'] * per:.1f} read; "
        f"{tx['commit'] * per:.1f} commits, {tx['rollback'] * per:.1f} rollbacks), "
        f"{total * per:.1f} statements, {1000 * db * per:.2f} ms inside the driver"
    )
    print(f"\n  {'statements by kind':<34} {'per job':>8} {'ms/job':>8}")
    for what, count in tally.statements.most_common():
        print(f"  {what:<34} {count * per:8.2f} {1000 * tally.seconds[what] * per:8.3f}")
    print(f"\n  {'statements by caller':<34} {'per job':>8} {'ms/job':>8}")
    for who, count in tally.by_caller.most_common():
        print(f"  {who:<34} {count * per:8.2f} {1000 * tally.caller_seconds[who] * per:8.3f}")
    # CPU time of the engine's thread: what the engine costs, even on a loaded machine.
    print(
        f"\n  {'phase (inclusive wall time)':<34} {'calls':>8} {'ms/job':>8} {'ms/call':>8}"
        f" {'cpu ms/job':>10}"
    )
    for label, secs in sorted(phases.seconds.items(), key=lambda kv: -kv[1]):
        calls = phases.calls[label]
        print(
            f"  {label:<34} {calls:8d} {1000 * secs * per:8.2f} {1000 * secs / calls:8.2f}"
            f" {1000 * phases.cpu[label] * per:10.2f}"
        )
    if profile is None:
        return
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(r"/core/", top)
    print("\nthe engine's thread, cumulative (cProfile; the waits are idle time):")
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print("\n".join(lines[start:]))
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
    print("the engine's thread, own time (cProfile):")
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print("\n".join(lines[start:]))


def _cpu() -> dict[str, float]:
    """User + system CPU seconds of this process (all threads) and of its waited-for
    children (the fork server, and through it the jobs' processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--cprofile", action="store_true", help="also profile with cProfile")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="one training first, untimed, so that every timed one reuses the dataset's baseline",
    )
    parser.add_argument("--dump", help="with --cprofile: also save the profile to this file")
    parser.add_argument(
        "--pg",
        metavar="URL",
        help="a PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/postgres): the "
        "registry in a database of its own there, made and dropped by this run",
    )
    args = parser.parse_args()
    os.environ.pop("PYTHONUNBUFFERED", None)
    server = None
    with tempfile.TemporaryDirectory(prefix="modeldeck-profile-") as tmp:
        root = Path(tmp)
        settle_files(root)
        repo = write_repo(root, 1)
        db = None
        if args.pg:
            from bench_pg import Server

            server = Server(args.pg)
            db = server.create("profile")
        deck = fresh_deck(root, repo, "profile", db=db)
        if args.warm:
            deck.train("bench", "noop", "d")
            warm = ["engine", "--exit-when-idle", "--home", str(deck.home)]
            with contextlib.redirect_stderr(io.StringIO()):
                cli.main([*warm, "--db", db] if db else warm)
        ids = [deck.train("bench", "noop", "d").id for _ in range(args.jobs)]
        home = str(deck.home)
        tally = Tally()
        tally.listen()
        argv = ["engine", "--exit-when-idle", "--workers", str(args.workers), "--home", home]
        if db:
            argv += ["--db", db]
        phases = Phases()
        phases.install()
        profile = cProfile.Profile() if args.cprofile else None
        tally.on = True
        reap_adopted()  # the warm-up engine's fork servers: not counted with the run's
        cpu0 = _cpu()
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            if profile is not None:
                profile.enable()
            code = cli.main(argv)
            if profile is not None:
                profile.disable()
        wall = time.perf_counter() - t0
        reap_adopted()
        cpu = {k: v - cpu0[k] for k, v in _cpu().items()}
        tally.on = False
        if code != 0:
            raise SystemExit(f"the engine command exited {code}")
        failed = [j for j in ids if deck.job(j).status != "completed"]
        if failed:
            raise SystemExit(f"{len(failed)} job(s) did not complete")
        deck.close()
        report(tally, phases, args.jobs, wall, profile, args.top)
        print(
            f"\nCPU ms a job: the engine process {1000 * cpu['self'] / args.jobs:.1f} (all its "
            f"threads), its children {1000 * cpu['children'] / args.jobs:.1f} (the fork "
            "server and the jobs' processes)"
        )
        if profile is not None and args.dump:
            profile.dump_stats(args.dump)
    if server is not None:
        server.close()


if __name__ == "__main__":
    main()
