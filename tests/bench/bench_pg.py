"""Engines on several hosts sharing one PostgreSQL database, against Procrastinate, in one run.

    .venv/bin/python tests/bench/bench_pg.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                                             [--jobs 300] [--latency 30] [--parts a,w,s,b]

(a) Drain: N no-op training jobs queued from three processes (``modeldeck train --detach``,
    N/3 each), then three ``modeldeck engine --workers 2 --exit-when-idle`` processes, each a
    host of its own (``$MODELDECK_HOST``, a data home each), started at once: the time from
    their start until they exit, their queue empty (as for the peer; the moment the last job
    became final is printed too). Each job must have run exactly once (one
    ``started`` event), all three hosts must have run some, none may be left queued or
    running.
    Peer: Procrastinate on the same server (a database of its own): N jobs deferred first,
    then three ``procrastinate worker --concurrency 2 --one-shot`` processes started at once
    (the same 3 x 2 parallelism), each task running the bare command a no-op job amounts to
    (``python -c "import training"`` in the model's folder) as a subprocess; the time from
    their start until they exit (every job done). Target: modeldeck at or below it.
    The jobs are the no-op job of issue 9: one untimed training first records the dataset's
    baseline, so that every timed training reuses it (its process imports neither numpy nor
    pyarrow). ``--cold-dataset`` times the first trainings of the dataset instead: the ones
    that start before its baseline is recorded compute it (each engine then starts a
    statistics fork server with numpy and pyarrow, about 0.25 CPU s each); Procrastinate then
    also runs with a command that imports the same (``SAME_IMPORTS``), for comparison.
    Each side's CPU seconds are printed: its processes and their children (the engines' fork
    servers and jobs too: this process adopts them, a subreaper), and the server's (its
    processes' CPU from /proc, before and after).
(w) Warm drain: the same, with the workers already serving (engines are daemons): the three
    engines (``modeldeck engine --workers 2``) or the three Procrastinate workers start and
    settle first; then three processes, each ready and waiting for a go, queue N/3 jobs
    each at once (``Deck.train``; Procrastinate's ``defer``); the time from the go until
    every job is done (both sides watched the same way: one count query every 20 ms on a
    connection of the bench's own). Process start-up (the interpreter, SQLAlchemy, psycopg:
    about half a CPU second an engine) is out of both figures.
(s) Standing queue: the drain of a queue that stands when the workers serve, as for a
    daemon: the three engines (or Procrastinate workers) start and settle, are paused
    (``SIGSTOP``, outside any transaction), the N jobs are queued as in (w), then the workers
    resume (``SIGCONT``) at once; the time from their resumption until every job is done
    (watched as in (w)). Neither start-up nor queueing is in it: the drain alone, as daemons
    see it; (a) and (w) say what process start and queueing add on each side. It prints the
    machine's CPU a job in the drain (both sides' processes and the server's) and the CPU
    time the hypervisor stole meanwhile (noise on a shared host).
(b) Latency: with the three engines idle, a job queued by another process: from its commit
    (``created_at``) until it is ``running`` (``started_at``), p50 and p99. Target p99 < 100 ms.

Not collected by pytest. Figures are for this machine and this run; both sides share its CPUs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench_core import fresh_deck, reap_adopted, settle_files, write_repo  # noqa: E402

from core.runner import become_subreaper  # noqa: E402
from core.service import Deck  # noqa: E402

HOSTS = ("alpha", "beta", "gamma")
PEER_APP = """
import os
import subprocess
import sys

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG"]))


@app.task(name="bare")
def bare() -> None:
    subprocess.run(
        [sys.executable, "-c", os.environ["BENCH_PAYLOAD"]], cwd=os.environ["BENCH_MODEL"],
        check=True,
    )
"""


class Server:
    """Fresh databases on the server, dropped at the end."""

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        self.url = make_url(url).set(drivername="postgresql")
        self.admin = psycopg.connect(
            self.url.render_as_string(hide_password=False), autocommit=True
        )
        self.made: list[str] = []

    def create(self, name: str) -> str:
        name = f"{name}_{os.getpid()}"
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        for name in self.made:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


def env_for(root: Path, host: str, db: str) -> dict[str, str]:
    env = dict(os.environ, MODELDECK_HOST=host, MODELDECK_HOME=str(root / f"home-{host}"))
    env["MODELDECK_DB"] = db
    env.pop("PYTHONUNBUFFERED", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def modeldeck(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tui.entry", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def setup_deck(root: Path, db: str) -> Deck:
    """Project ``bench`` with the no-op model and dataset ``d`` of the core bench."""
    return fresh_deck(root, write_repo(root, 1), "bench", db=db)


def record_baseline(root: Path, deck: Deck, db: str) -> None:
    """One training run first (untimed): the dataset's baseline is recorded, and every timed
    training reuses it (else the first trainings of each engine compute it, with numpy and
    pyarrow: a few tenths of a CPU second each, and a statistics fork server per engine)."""
    deck.train("bench", "noop", "d")
    env = env_for(root, "alpha", db)
    modeldeck("engine", "--workers", "1", "--exit-when-idle", env=env).wait(120)
    reap_adopted()
    if [j.status for j in deck.jobs()] != ["completed"]:
        raise SystemExit("the training that records the baseline did not complete")


def queue_from_three(root: Path, db: str, n: int) -> None:
    """N jobs queued by three processes at once (a script each queues its share)."""
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from core.service import Deck
        deck = Deck(db=sys.argv[2])
        for _ in range(int(sys.argv[3])):
            deck.train("bench", "noop", "d")
        """
    )
    procs = []
    for i, host in enumerate(HOSTS):
        share = n // 3 + (1 if i < n % 3 else 0)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(ROOT), db, str(share)],
                env=env_for(root, host, db),
                cwd=ROOT,
            )
        )
    for p in procs:
        if p.wait(300) != 0:
            raise SystemExit("queueing failed")


def children_cpu() -> float:
    """CPU seconds of this process's ended children and theirs (user + system)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def server_cpu() -> float | None:
    """CPU seconds the local PostgreSQL server has used: its postmaster's ended children
    (backends that have closed) and its live processes. None where /proc does not tell."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if name.startswith("postgres"):
            procs[int(entry.name)] = (int(fields[1]), [int(f) for f in fields[11:15]])
    roots = [pid for pid, (ppid, _) in procs.items() if ppid not in procs]
    if len(roots) != 1:
        return None
    ticks = sum(procs[roots[0]][1][2:]) + sum(sum(t[:2]) for _, t in procs.values())
    return ticks / tick


def drain_modeldeck(root: Path, deck: Deck, db: str, n: int) -> tuple[float, float, float | None]:
    """Seconds until every job is final, and the CPU seconds of the engines (with their
    fork servers and job processes) and of the server."""
    before = {j.id for j in deck.jobs(limit=100)}  # the baseline's training
    queue_from_three(root, db, n)
    cpu0, server0 = children_cpu(), server_cpu()
    t0, wall0 = time.perf_counter(), time.time()
    engines = [
        modeldeck("engine", "--workers", "2", "--exit-when-idle", env=env_for(root, h, db))
        for h in HOSTS
    ]
    # As for the peer: until the engines exit, their queue empty (nothing polls beside them).
    for e in engines:
        e.wait(600)
    took = time.perf_counter() - t0
    reap_adopted()  # their fork servers, and so their jobs (a subreaper, see main)
    cpu = children_cpu() - cpu0
    server = server_cpu()
    jobs = [j for j in deck.jobs(limit=n + 100) if j.id not in before]
    assert len(jobs) == n, len(jobs)
    bad = [j for j in jobs if j.status != "completed"]
    if bad:
        raise SystemExit(f"{len(bad)} job(s) did not complete, e.g. {bad[0].status} {bad[0].error}")
    twice = [j.id for j in jobs if sum(e.kind == "started" for e in deck.events(j.id)) != 1]
    if twice:
        raise SystemExit(f"{len(twice)} job(s) did not start exactly once, e.g. {twice[0]}")
    by_host = Counter(j.host for j in jobs)
    if set(by_host) != set(HOSTS):
        raise SystemExit(f"not every host ran jobs: {dict(by_host)}")
    runs = sorted((j.finished_at - j.started_at).total_seconds() for j in jobs)
    last = max(j.finished_at for j in jobs).timestamp() - wall0
    print(
        f"  ran exactly once each; by host: {dict(sorted(by_host.items()))}; "
        f"started -> final p50 {statistics.median(runs):.2f}s; the last job final at "
        f"{last:.2f}s, the engines gone at {took:.2f}s"
    )
    return took, cpu, None if server is None or server0 is None else server - server0


def peer_for(root: Path, db: str, model_dir: Path, payload: str) -> tuple[dict[str, str], Any]:
    """The environment of Procrastinate's processes on ``db``, and its app (its schema
    applied there) in this process."""
    (root / "peer_app.py").write_text(PEER_APP)
    env = dict(os.environ, BENCH_PG=db, BENCH_MODEL=str(model_dir))
    env["PYTHONPATH"] = f"{root}{os.pathsep}{ROOT}"
    env["BENCH_PAYLOAD"] = payload
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    os.environ.update(BENCH_PG=db, BENCH_MODEL=str(model_dir))
    import peer_app  # type: ignore[import-not-found]

    peer_app = importlib.reload(peer_app)  # its app on this run's database
    with peer_app.app.open():
        peer_app.app.schema_manager.apply_schema()
    return env, peer_app


def drain_procrastinate(
    root: Path, db: str, model_dir: Path, n: int, payload: str
) -> tuple[float, float, float | None, dict[str, str]]:
    """Seconds until the workers exit (every job done), their CPU seconds (with the
    commands they ran) and the server's, and the workers' environment."""
    env, peer_app = peer_for(root, db, model_dir, payload)
    with peer_app.app.open():
        for _ in range(n):
            peer_app.bare.defer()
    procrastinate = str(Path(sys.executable).with_name("procrastinate"))
    cpu0, server0 = children_cpu(), server_cpu()
    t0 = time.perf_counter()
    workers = [
        subprocess.Popen(
            [procrastinate, "--app=peer_app.app", "worker", "--concurrency", "2", "--one-shot"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    for w in workers:
        w.wait(600)
    took = time.perf_counter() - t0
    cpu, server = children_cpu() - cpu0, server_cpu()
    import psycopg

    with psycopg.connect(db) as conn:
        done = conn.execute(
            "SELECT status, count(*) FROM procrastinate_jobs GROUP BY status"
        ).fetchall()
    if n and dict(done) != {"succeeded": n}:
        raise SystemExit(f"procrastinate did not run every job once: {dict(done)}")
    return took, cpu, None if server is None or server0 is None else server - server0, env


MODELDECK_QUEUER = """
import sys
sys.path.insert(0, sys.argv[1])
from core.service import Deck
deck = Deck(db=sys.argv[2])
deck.project("bench")  # connected and warm
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[3])):
    deck.train("bench", "noop", "d")
"""
PEER_QUEUER = """
import sys
import peer_app
with peer_app.app.open():
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(sys.argv[1])):
        peer_app.bare.defer()
"""


def queue_at_once(argvs: list[list[str]], envs: list[dict[str, str]], cwd: Path) -> float:
    """Start the queueing processes, wait until each is ready, then tell them all to go;
    the monotonic time of the go."""
    procs = [
        subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for argv, env in zip(argvs, envs, strict=True)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    cpu = 0.0
    for p in procs:
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu += ru.ru_utime + ru.ru_stime
        if p.returncode != 0:
            raise SystemExit("queueing failed")
    print(f"    queued in {time.perf_counter() - go:.2f}s, the queuers' CPU {cpu:.2f}s")
    return go


def wait_until(db: str, query: str, n: int, timeout: float = 600) -> float:
    """Poll ``query`` (a count) every 20 ms on a connection of its own until it is ``n``;
    the monotonic time it was seen."""
    import psycopg

    deadline = time.perf_counter() + timeout
    with psycopg.connect(db, autocommit=True) as conn:
        while time.perf_counter() < deadline:
            if conn.execute(query).fetchone()[0] >= n:  # type: ignore[index]
                return time.perf_counter()
            time.sleep(0.02)
    raise SystemExit(f"not done within {timeout:g}s")


def shares(n: int) -> list[int]:
    return [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]


def machine_cpu() -> tuple[float, float]:
    """The machine's CPU seconds so far, busy (every process, the server's too) and stolen
    (by the hypervisor, for other machines: noise this run cannot control), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def held(workers: list[subprocess.Popen], db: str, standing: bool) -> Callable[[], float | None]:
    """For a standing queue: the workers paused (``SIGSTOP``) while the jobs are queued, and
    a function that resumes them (``SIGCONT``) and returns the moment it did. A pause that
    caught a worker inside a transaction (its locks would hold the queuers up) is undone and
    tried again; should one slip through, a watchdog resumes them after two minutes and the
    run stops. Without ``standing``, nothing is paused and the function returns None."""
    import psycopg

    if not standing:
        return lambda: None

    def resume() -> float:
        for w in workers:
            w.send_signal(signal.SIGCONT)
        return time.perf_counter()

    def quiet(conn: Any) -> bool:
        """No backend of the database is in a statement or a transaction: seen twice, 50 ms
        apart (a statement sent just before the stop shows once its backend has read it)."""
        for _ in range(2):
            time.sleep(0.05)
            if conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND (state = 'active' OR state LIKE 'idle in transaction%')"
            ).fetchone()[0]:
                return False
        return True

    with psycopg.connect(db, autocommit=True) as conn:
        for _ in range(100):
            for w in workers:
                w.send_signal(signal.SIGSTOP)
            if quiet(conn):
                break
            resume()
            time.sleep(0.05)
        else:
            raise SystemExit("the workers were never paused outside a transaction")
    fired = threading.Event()
    watchdog = threading.Timer(120, lambda: (fired.set(), resume()))
    watchdog.daemon = True
    watchdog.start()

    def release() -> float:
        watchdog.cancel()
        if fired.is_set():
            raise SystemExit("a paused worker held the queuers up: run again")
        return resume()

    return release


def stop_all(workers: list[subprocess.Popen]) -> None:
    for w in workers:
        w.send_signal(signal.SIGCONT)  # a paused one ends too
        w.terminate()
    for w in workers:
        w.wait(30)


def drained(
    workers: list[subprocess.Popen],
    db: str,
    queuers: tuple[list[list[str]], list[dict[str, str]], Path],
    done_query: str,
    n: int,
    standing: bool,
) -> tuple[float, float, float]:
    """With the ``workers`` serving: the ``queuers`` (argvs, envs, cwd) queue at a go, the
    workers paused meanwhile for a standing queue (``held``); the seconds from the go (or
    the resumption) until ``done_query`` counts ``n``, and the machine's busy and stolen CPU
    seconds from then (``machine_cpu``)."""
    resume = held(workers, db, standing)
    go = queue_at_once(*queuers)
    go = resume() or go
    cpu0 = machine_cpu()
    done = wait_until(db, done_query, n)
    cpu1 = machine_cpu()
    return done - go, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]


def warm_modeldeck(
    root: Path, deck: Deck, db: str, n: int, standing: bool = False
) -> tuple[float, float, float]:
    before = deck.count_jobs()
    engines = [modeldeck("engine", "--workers", "2", env=env_for(root, h, db)) for h in HOSTS]
    try:
        while len([e for e in deck.hosts.engines() if not e.stale]) < len(HOSTS):
            time.sleep(0.05)
        time.sleep(1.0)  # their fork servers up, their spares forked
        queuers = (
            [[sys.executable, "-c", MODELDECK_QUEUER, str(ROOT), db, str(k)] for k in shares(n)],
            [env_for(root, h, db) for h in HOSTS],
            ROOT,
        )
        final = "SELECT count(*) FROM job WHERE status IN ('completed', 'failed', 'cancelled')"
        took = drained(engines, db, queuers, final, before + n, standing)
    finally:
        stop_all(engines)
        reap_adopted()
    failed = deck.count_jobs(status=["failed", "cancelled"])
    if failed:
        raise SystemExit(f"{failed} job(s) did not complete")
    return took


def warm_procrastinate(
    root: Path, db: str, model_dir: Path, n: int, standing: bool = False
) -> tuple[float, float, float]:
    env, _ = peer_for(root, db, model_dir, "import training")
    procrastinate = str(Path(sys.executable).with_name("procrastinate"))
    workers = [
        subprocess.Popen(
            [procrastinate, "--app=peer_app.app", "worker", "--concurrency", "2"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        time.sleep(3.0)  # started and listening (each imports procrastinate and psycopg)
        queuers = (
            [[sys.executable, "-c", PEER_QUEUER, str(k)] for k in shares(n)],
            [env] * 3,
            root,
        )
        final = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        return drained(workers, db, queuers, final, n, standing)
    finally:
        stop_all(workers)


def warm(root: Path, deck: Deck, db: str, server: Server, n: int, standing: bool) -> None:
    peer_db = server.create(f"procrastinate_bench_{'s' if standing else 'w'}")
    ours, our_cpu, our_steal = warm_modeldeck(root, deck, db, n, standing)
    theirs, their_cpu, their_steal = warm_procrastinate(
        root, peer_db, root / "repo/models/noop", n, standing
    )
    verdict = "ok" if ours <= theirs else "MISSED"
    what = (
        f"(s) standing queue: 3 engines x 2 workers serving, {n} jobs queued while they were "
        "paused, from their resumption"
        if standing
        else f"(w) warm: 3 engines x 2 workers already serving, {n} jobs queued from three "
        "processes at once"
    )
    print(
        f"{what}: {ours:.2f}s; Procrastinate 3 x 2: {theirs:.2f}s; ratio "
        f"{ours / theirs:.2f}x (target at or below: {verdict})"
    )
    if standing:  # (w)'s go comes before the queueing: its CPU would mix both
        print(
            f"    the machine's CPU from the resumption (the server's too): modeldeck "
            f"{1000 * our_cpu / n:.1f} ms a job, Procrastinate {1000 * their_cpu / n:.1f} ms; "
            f"stolen by the hypervisor: {our_steal:.2f}s and {their_steal:.2f}s"
        )


def latency(root: Path, deck: Deck, db: str, samples: int) -> list[float]:
    engines = [modeldeck("engine", "--workers", "2", env=env_for(root, h, db)) for h in HOSTS]
    try:
        while len([e for e in deck.hosts.engines() if not e.stale]) < len(HOSTS):
            time.sleep(0.05)
        out = []
        env = env_for(root, "queuer", db)
        cmd = [sys.executable, "-m", "tui.entry", "train", "bench", "noop", "--dataset", "d"]
        for _ in range(samples):
            time.sleep(0.3)  # idle again: every engine asleep until woken or its poll
            proc = subprocess.run(
                [*cmd, "--detach"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            job = deck.wait(proc.stdout.split()[0], timeout=30)
            out.append((job.started_at - job.created_at).total_seconds() * 1000)
        return sorted(out)
    finally:
        for e in engines:
            e.terminate()
            e.wait(30)


# What a modeldeck training's process imports beyond the model's code when it computes its
# dataset's baseline (--cold-dataset): the job runner, numpy and pyarrow.
SAME_IMPORTS = "import training, core.runner, core.monitoring.jobside"


def cpu_text(cpu: float, server: float | None, n: int) -> str:
    text = f"CPU {cpu:.1f}s, {1000 * cpu / n:.0f} ms a job"
    if server is not None:
        text += f"; server {server:.1f}s, {1000 * server / n:.0f} ms a job"
    return text


def start_cpu(argv: list[str], cwd: Path, env: dict[str, str], runs: int = 3) -> float:
    """CPU seconds of a worker that starts, finds its queue empty and exits (with what it
    started: an engine's fork server), the median of ``runs``."""
    cpus = []
    for _ in range(runs):
        cpu0 = children_cpu()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reap_adopted()
        cpus.append(children_cpu() - cpu0)
    return statistics.median(cpus)


# What any engine process on modeldeck's storage pays before it does anything of its own:
# SQLModel (with SQLAlchemy's ORM and pydantic), SQLAlchemy's PostgreSQL dialect, psycopg,
# one connection and its first statement. Then the same without the layers above: what an
# engine's store could cost at best without SQLModel, and without SQLAlchemy.
_CONNECT = """
import sys
from sqlalchemy import create_engine, text
with create_engine(sys.argv[1].replace("postgresql://", "postgresql+psycopg://", 1)).connect() as c:
    c.execute(text("SELECT 1"))
"""
STACKS = {
    "SQLModel, SQLAlchemy, psycopg (the engine's stack)": "import sqlmodel\n" + _CONNECT,
    "SQLAlchemy Core, psycopg": _CONNECT,
    "psycopg alone": """
import sys
import psycopg
with psycopg.connect(sys.argv[1]) as c:
    c.execute("SELECT 1")
""",
}


def drain(root: Path, deck: Deck, db: str, server: Server, n: int, cold: bool) -> None:
    ours, our_cpu, our_server = drain_modeldeck(root, deck, db, n)
    engine = [sys.executable, "-m", "tui.entry", "engine", "--workers", "2", "--exit-when-idle"]
    our_start = start_cpu(engine, ROOT, env_for(root, HOSTS[0], db))
    stacks = {
        name: start_cpu([sys.executable, "-c", code, db], ROOT, env_for(root, HOSTS[0], db))
        for name, code in STACKS.items()
    }
    model = root / "repo/models/noop"
    peers = {}
    commands = [("bare", "import training"), ("same imports", SAME_IMPORTS)]
    for name, payload in commands[: 2 if cold else 1]:
        db_peer = server.create(f"procrastinate_bench_{len(peers)}")
        *peers[name], env = drain_procrastinate(root, db_peer, model, n, payload)
        if name == "bare":
            worker = [str(Path(sys.executable).with_name("procrastinate")), "--app=peer_app.app"]
            peer_start = start_cpu(
                [*worker, "worker", "--concurrency", "2", "--one-shot"], root, env
            )
    verdict = "ok" if ours <= peers["bare"][0] else "MISSED"
    print(
        f"(a) 3 engines x 2 workers drain {n} no-op jobs"
        f"{' (the first trainings of the dataset: its baseline computed)' if cold else ''}: "
        f"{ours:.2f}s ({cpu_text(our_cpu, our_server, n)})"
    )
    for name, (took, cpu, on_server) in peers.items():
        print(
            f"    Procrastinate 3 x 2, {name} command: {took:.2f}s "
            f"({cpu_text(cpu, on_server, n)}); ratio {ours / took:.2f}x"
        )
    print(f"    target: at or below Procrastinate's bare command: {verdict}")
    # What bounds it: each side's start (and stop) alone, on its drained queue; the rest is
    # what the jobs cost.
    peer_cpu = peers["bare"][1]
    print(
        f"    a worker's start and stop alone (empty queue, median of 3): modeldeck engine "
        f"{our_start:.2f} CPU s, Procrastinate worker {peer_start:.2f} CPU s; three of each: "
        f"{3 * (our_start - peer_start):.1f} of the {our_cpu - peer_cpu:.1f} CPU s between them"
    )
    print(
        f"    CPU a job beyond the starts: modeldeck {1000 * (our_cpu - 3 * our_start) / n:.1f} "
        f"ms, Procrastinate {1000 * (peer_cpu - 3 * peer_start) / n:.1f} ms"
    )
    # The floor under the starts: each storage stack alone (its imports and one connection),
    # against the whole peer worker. The first is the engine's; the others, what a store
    # without SQLModel, or without SQLAlchemy, could reach at best.
    cores = os.cpu_count() or 1
    print("    the storage stack alone (imports, one connection), and the best it allows:")
    for name, stack in stacks.items():
        floor = peers["bare"][0] + 3 * (stack - peer_start) / cores
        print(
            f"      {name}: {stack:.2f} CPU s a process ({stack / our_start:.0%} of the "
            f"engine's start); with jobs as cheap as the peer's, at best {floor:.2f}s on "
            f"{cores} CPU(s) ({floor / peers['bare'][0]:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--latency", type=int, default=30)
    parser.add_argument("--parts", default="a,w,s,b", help="which parts to run (a,w,s,b)")
    parser.add_argument(
        "--cold-dataset",
        action="store_true",
        help="(a) on a dataset with no baseline yet: its first trainings compute it (the other "
        "parts always time trainings that reuse it)",
    )
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="drop the kernel's caches before (root; see bench_core.settle_files)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not become_subreaper():  # the engines' fork servers are adopted: their CPU counts
        print("(not a subreaper here: modeldeck's CPU leaves out its fork servers and jobs)")
    server = Server(args.pg)
    try:
        with tempfile.TemporaryDirectory(prefix="modeldeck-bench-pg-") as tmp:
            root = Path(tmp)
            db = server.create("modeldeck_bench")
            deck = setup_deck(root, db)
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), {args.jobs} jobs")
            # Every part times the no-op job of issue 9, whose dataset's baseline is recorded:
            # by one untimed training, else (--cold-dataset) by (a)'s first trainings.
            if not ("a" in parts and args.cold_dataset):
                record_baseline(root, deck, db)
            # modeldeck's jobs create files; Procrastinate's do not
            settle_files(root, drop_caches=args.drop_caches)
            if "a" in parts:
                drain(root, deck, db, server, args.jobs, args.cold_dataset)
            if "w" in parts:
                warm(root, deck, db, server, args.jobs, standing=False)
            if "s" in parts:
                warm(root, deck, db, server, args.jobs, standing=True)
            if "b" not in parts:
                return
            ms = latency(root, deck, db, args.latency)
            p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
            verdict = "ok" if p99 < 100 else "MISSED"
            print(
                f"(b) commit -> running, engines idle: p50 {statistics.median(ms):.0f} ms, "
                f"p99 {p99:.0f} ms, max {ms[-1]:.0f} ms  (p99 < 100 ms {verdict})"
            )
            deck.close()
    finally:
        server.close()


if __name__ == "__main__":
    main()
