"""Engines on several hosts, simulated on one machine: each host a ``$MODELDECK_HOST`` and a
data home of its own, all on one database. Heartbeats (``engines``), a lost host's jobs,
schedules that fire once, a log followed from another host, the artifact store setting."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPTED_TRAINING, write_csv, write_model
from deploy_support import (
    add_fast_stages,
    add_ticker,
    approved_version,
    deploy,
    utc,
    wait_for,
    wait_served,
)
from sqlalchemy import update

from core.clock import FakeClock
from core.db import make_engine, write_session
from core.engine import Engine
from core.engine.common import RECOVER_EVERY
from core.engine.scheduler import Scheduler
from core.logchunks import ChunkLog, JobLog, LogCopy
from core.logs import LogIndex, LogReader
from core.models import EngineHeartbeat, EngineLease
from core.service import Deck

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Host:
    """One simulated host: its name, its data home, the shared database."""

    name: str
    home: Path
    db: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ, MODELDECK_HOST=self.name, MODELDECK_HOME=str(self.home))
        env["MODELDECK_DB"] = self.db
        return env

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui.entry", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=ROOT,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def spawn(self, *args: str, out: Path | None = None) -> subprocess.Popen:
        sink = open(out or os.devnull, "w")  # noqa: SIM115  (the child keeps it)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui.entry", *args],
            env=self.env(),
            cwd=ROOT,
            stdout=sink if out else subprocess.PIPE,
            stderr=subprocess.STDOUT if out else subprocess.PIPE,
            text=True,
        )
        sink.close()
        self.procs.append(proc)
        return proc

    def engine(self, *args: str) -> subprocess.Popen:
        out = self.home / f"engine-{len(self.procs)}.out"
        return self.spawn("engine", "--workers", "2", "--grace", "2", *args, out=out)

    def deck(self) -> Deck:
        return Deck(home=self.home, db=self.db)


@pytest.fixture
def shared_db(db_url: str | None, tmp_path: Path) -> str:
    """The one database of every host: the test's PostgreSQL database, or a SQLite file."""
    return db_url or f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture
def hosts(tmp_path: Path, shared_db: str) -> Iterator[dict[str, Host]]:
    made = {n: Host(n, tmp_path / f"home-{n}", shared_db) for n in ("alpha", "beta", "gamma")}
    for h in made.values():
        h.home.mkdir()
    yield made
    for h in made.values():
        for p in h.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def shared(hosts: dict[str, Host], repo: Path) -> Deck:
    """The test's own view of the shared database, with the project and a ticker model."""
    add_ticker(repo)
    d = hosts["alpha"].deck()
    d.add_project("proj", repo)
    d.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    return d


def engines_json(host: Host) -> list[dict]:
    return json.loads(host.ok("engines", "--json"))


LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def _update(db: str, statement: Any) -> None:
    engine = make_engine(db)
    try:
        with write_session(engine) as s:
            s.execute(statement)
            s.commit()
    finally:
        engine.dispose()


def set_last_seen(db: str, host: str, when: datetime = LONG_AGO) -> None:
    """Make a host's heartbeats look gone since ``when`` (as if its engines stopped beating
    then; by default long ago)."""
    _update(db, update(EngineHeartbeat).where(EngineHeartbeat.host == host).values(last_seen=when))


def expire_lease(db: str) -> None:
    """The lease of an engine of another host runs out (15 s), at once."""
    _update(db, update(EngineLease).values(expires_at=LONG_AGO))


def kill_group(pid: int | None) -> None:
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# -- heartbeats -----------------------------------------------------------------------------


def test_engines_lists_each_engine_by_host_and_marks_a_stale_one(hosts, shared, shared_db) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    assert engines_json(beta) == []
    a = alpha.engine()
    b = beta.engine("--workers", "3")
    wait_for(lambda: len(shared.hosts.engines()) == 2, what="both to beat")
    rows = engines_json(beta)
    by_host = {r["host"]: r for r in rows}
    assert set(by_host) == {"alpha", "beta"}
    assert by_host["alpha"]["pid"] == a.pid and by_host["alpha"]["workers"] == 2
    assert by_host["beta"]["pid"] == b.pid and by_host["beta"]["workers"] == 3
    assert all(r["stale"] is False and r["running"] == 0 for r in rows)
    # On SQLite the one holding the lease serves, the other stands by (it dispatches nothing).
    wanted = ["serving"] * 2 if shared.store.shared_queue else ["serving", "standing by"]
    wait_for(lambda: sorted(r["state"] for r in engines_json(beta)) == wanted, what="states")
    assert shared.hosts.summary().serving == len([w for w in wanted if w == "serving"])
    assert all(r["last_seen"].endswith("Z") and r["version"] for r in rows)

    # A job running on one of them is counted where it runs.
    job = shared.train("proj", "ticker", "train", {"lines": 100_000, "every": 0.01}).id
    wait_for(lambda: shared.job(job).pid, what="the job to start")
    host, pgid = shared.job(job).host, shared.job(job).pid  # it leads its group
    wait_for(
        lambda: {e.host: e.running for e in shared.hosts.engines()}[host] == 1,
        what="the heartbeat to count the job",
    )

    # An engine that stops beating (killed, hung, its host gone) is marked stale, not dropped.
    a.kill()
    a.wait(10)
    set_last_seen(shared_db, "alpha", datetime.now(UTC) - timedelta(minutes=1))  # its last beat
    shown = beta.ok("engines")
    line = next(x for x in shown.splitlines() if x.startswith("alpha"))
    assert line.rstrip().endswith("stale"), shown
    assert "UTC" in line  # times on screen carry their zone
    # One that stops cleanly leaves the list.
    b.send_signal(signal.SIGTERM)
    b.wait(20)
    assert [(r["host"], r["stale"]) for r in engines_json(alpha)] == [("alpha", True)]
    # The host's engine restarts: the killed one's row leaves the list, as stopped when it
    # was last seen (no stale row for a day beside the new engine).
    a = alpha.engine()
    try:
        wait_for(
            lambda: (
                [(r["host"], r["pid"], r["stale"]) for r in engines_json(beta)]
                == [("alpha", a.pid, False)]
            ),
            what="only the new engine listed",
        )
    finally:
        a.kill()
        a.wait(10)
    kill_group(pgid)


def running_process(pid: int) -> bool:
    """Whether ``pid`` is a process that runs (not gone, not a zombie left to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def ticking_on(host: Any, shared: Deck) -> tuple[subprocess.Popen, str, Any]:
    """An engine of ``host`` running a long ticker job: the engine, the job, its view."""
    engine = host.engine()
    job = shared.train("proj", "ticker", "train", {"lines": 100_000, "every": 0.01}).id
    running = wait_for(
        lambda: (j := shared.job(job)).status == "running" and j.pid and j, what="job start"
    )
    return engine, job, running


def test_lost_after_is_refused_below_two_heartbeats(hosts) -> None:
    done = hosts["alpha"].run("engine", "--lost-after", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --lost-after must be at least 4 seconds (two heartbeats)"
    ]


# -- a host that is gone --------------------------------------------------------------------


def test_a_job_of_a_host_not_seen_for_lost_after_fails_as_lost(
    hosts, shared, shared_db, tmp_path
) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    store = tmp_path / "store"  # the artifact store every host mounts
    store.mkdir()
    alpha.ok("config", "set", "artifacts", str(store))
    a, job, running = ticking_on(alpha, shared)
    assert running.host == "alpha"
    staging = store / ".staging" / job  # where its process writes its version's files
    assert staging.is_dir()
    # Set again while alpha's engine serves: said that it keeps its store until it restarts.
    again = beta.run("config", "set", "artifacts", str(store))
    assert again.returncode == 0 and "keep their artifact store until they restart" in again.stderr
    try:
        a.kill()  # kill -9: the host's engine is gone, and nothing beats for it
        a.wait(10)
        set_last_seen(shared_db, "alpha", datetime.now(UTC) - timedelta(minutes=1))
        # Followed from beta meanwhile: it says when the host falls silent (its log stops).
        said = alpha.home.parent / "followed.txt"
        follow = beta.spawn("logs", job, "--follow", out=said)
        note = "modeldeck: host alpha not heard from for "
        wait_for(lambda: note in said.read_text(), timeout=30, what="the silence said")
        expire_lease(shared_db)  # the dead lease of another host runs out (15 s) at once
        b = beta.engine("--lost-after", "4")
        wait_for(lambda: shared.job(job).status == "failed", timeout=30, what="the job lost")
        assert follow.wait(30) == 1  # as a job command: the job did not complete
        assert said.read_text().splitlines()[-1].startswith(f"modeldeck: job {job} failed: lost")
        final = shared.job(job)
        assert final.error == "lost"
        [ended] = [e for e in shared.events(job) if e.kind == "failed"]
        assert "its host alpha has not been seen" in ended.details["reason"]
        assert ended.details["host"] == "alpha" and ended.details["lost_after"] == 4
        assert b.poll() is None
        # Followed from beta, which reads the copy alpha made: it says it may stop short.
        followed = beta.run("logs", job, "--follow")
        assert followed.returncode == 1  # what alpha copied before it died, if anything
        assert followed.stderr.splitlines() == [
            f"modeldeck: job {job} failed: lost (its host alpha was not seen for a while: its "
            "log is what that host had copied, and may stop short)"
        ]
        # Beta leaves the staging folder to the job's process, which still runs on alpha
        # (it would fail writing its files there): through a recovery round or two.
        wait_served(shared, b.pid, 2 * RECOVER_EVERY)
        assert staging.is_dir()
        # Alpha comes back: the process of its job, failed as lost meanwhile, is ended.
        assert running_process(running.pid)
        alpha.engine()
        wait_for(
            lambda: any(e.kind == "processes_killed" for e in shared.events(job)),
            timeout=30,
            what="the kill",
        )
        assert not running_process(running.pid)
        [killed] = [e for e in shared.events(job) if e.kind == "processes_killed"]
        assert "still running on alpha after the job was failed as lost" in killed.message
        assert shared.job(job).status == "failed"
        # What it wrote while alpha was gone reached the database: beta reads it all.
        written = (alpha.home / "jobs" / job / "log.txt").read_text().splitlines()
        assert len(written) > 10
        assert json.loads(beta.ok("logs", job, "--json"))["lines"] == written
        # Its process ended, alpha's engine clears the folder.
        wait_for(lambda: not staging.exists(), timeout=30, what="the staging folder to go")
    finally:
        kill_group(running.pid)


def test_a_stop_from_another_host_says_when_the_jobs_host_has_no_engine(
    hosts, shared, shared_db
) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    a, job, running = ticking_on(alpha, shared)
    try:
        a.kill()  # kill -9: nothing on alpha can signal the job now
        a.wait(10)
        set_last_seen(shared_db, "alpha")
        done = beta.run("stop", job, timeout=30)
        assert done.returncode == 0 and done.stdout == f"job {job} stopping\n"
        assert done.stderr.splitlines() == [
            f"modeldeck: the stop of job {job} is recorded, but its host alpha has no engine "
            "running: the job stops when one starts there, or fails as lost once the host is "
            "not seen for the engines' --lost-after"
        ]
        assert shared.job(job).status == "stopping"
    finally:
        kill_group(running.pid)


def test_a_host_seen_within_lost_after_keeps_its_jobs(hosts, shared, shared_db) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    a = alpha.engine()
    job = shared.train("proj", "ticker", "train", {"lines": 100_000, "every": 0.01}).id
    pid = wait_for(lambda: shared.job(job).pid, what="the job to start")
    try:
        # alpha's engine stops (its job runs on), and another host's engine serves: alpha
        # was seen moments ago, so its job is left to it.
        a.send_signal(signal.SIGTERM)
        a.wait(20)
        b = beta.engine("--lost-after", "60")
        wait_for(lambda: [e.host for e in shared.hosts.engines()] == ["beta"], what="beta")
        wait_served(shared, b.pid, 2 * RECOVER_EVERY)  # recoveries of beta's
        assert shared.job(job).status == "running"
        assert b.poll() is None
    finally:
        kill_group(pid)


# -- schedules ------------------------------------------------------------------------------


def test_a_due_schedule_fires_once_when_two_engines_fire_at_once(
    tmp_path: Path, repo: Path, shared_db: str
) -> None:
    clock = FakeClock(utc(2026, 3, 2, 12, 0))
    add_fast_stages(repo)
    deck = Deck(home=tmp_path / "one", db=shared_db, clock=clock)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "test", repo / "data" / "test.csv", target="label")
    deck.add_dataset("proj", "score", repo / "data" / "score.csv")
    engine = Engine(deck, workers=2, poll=0.05, schedules=False)
    other: Deck | None = None
    try:
        version = approved_version(deck, engine, "proj")
        deps = [deploy(deck, engine, version, f"{m} * * * *") for m in (0, 1, 2)]
        other = Deck(home=tmp_path / "two", db=shared_db, clock=clock)  # another host's
        schedulers = [Scheduler(deck.store), Scheduler(other.store)]
        for hour in (13, 14):
            clock.set(utc(2026, 3, 2, hour, 5))
            barrier = threading.Barrier(2)

            def fire(s: Scheduler, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                s.fire()

            threads = [threading.Thread(target=fire, args=(s,)) for s in schedulers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            for s in schedulers:  # and again, one after the other: nothing is due any more
                s.fire()
            assert engine.run_until_idle(60)  # the runs end before the next fire (no overlap)
        for minute, dep in enumerate(deps):
            fired = [j for j in deck.jobs(deployment=dep) if j.trigger == "schedule"]
            times = sorted(j.params["fire_time"] for j in fired)
            assert times == [f"2026-03-02T{h}:0{minute}:00.000Z" for h in (13, 14)]
    finally:
        engine.shutdown()
        if other is not None:
            other.close()
        deck.close()


# -- logs from another host ----------------------------------------------------------------


# Prints 100 lines, waits while a ``hold`` file is next to its dataset, prints one more,
# waits while a ``hold2`` file is there, prints the last 99.
GATED = """
import time


def train(context):
    def wait(name):
        gate = context.dataset.path.with_name(name)
        while gate.exists():
            time.sleep(0.02)

    for i in range(100):
        print(f"tick {i}", flush=True)
    wait("hold")
    print("tick 100", flush=True)
    wait("hold2")
    for i in range(101, 200):
        print(f"tick {i}", flush=True)
"""


def test_a_log_followed_from_another_hosts_home_gets_every_line_live(hosts, shared, repo) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    write_model(repo, "gated", GATED)
    hold, hold2 = repo / "data" / "hold", repo / "data" / "hold2"
    hold.touch()
    hold2.touch()
    alpha.engine()
    job = shared.train("proj", "gated", "train").id
    wait_for(lambda: shared.job(job).status == "running", what="the job to start")
    assert not (beta.home / "jobs" / job).exists()  # nothing of it on beta's disk
    follow = beta.spawn("logs", job, "--follow")
    assert follow.stdout is not None
    got = [follow.stdout.readline() for _ in range(100)]  # live: the job is still running
    assert got == [f"tick {i}\n" for i in range(100)]
    assert shared.job(job).status == "running"
    # A line printed after the follower started reaches it while the job still runs (held
    # by ``hold2``): followed live, not read once the job ended. (If it never came, the
    # readline would block until pytest's timeout.)
    hold.unlink()
    assert follow.stdout.readline() == "tick 100\n"
    assert shared.job(job).status == "running"
    hold2.unlink()
    rest = follow.stdout.read()  # (communicate() would skip what readline() buffered)
    assert follow.wait(60) == 0
    assert rest.splitlines() == [f"tick {i}" for i in range(101, 200)]
    assert follow.stderr is not None and follow.stderr.read() == f"modeldeck: job {job} completed\n"
    assert shared.job(job).status == "completed"

    # The log survives its host: alpha's files gone, beta still reads every line.
    import shutil

    shutil.rmtree(alpha.home / "jobs" / job)
    assert beta.ok("logs", job).splitlines() == [f"tick {i}" for i in range(200)]
    lines = json.loads(beta.ok("logs", job, "--json"))["lines"]
    assert lines == [f"tick {i}" for i in range(200)]


def test_a_decision_jobs_log_is_in_the_database_too(deck: Deck, project: str, repo: Path) -> None:
    """An approval runs in the engine, not as a process it follows: its log reaches the
    database with its outcome, so another host reads it (it read nothing)."""
    add_fast_stages(repo)
    engine = Engine(deck, workers=2)
    try:
        approved_version(deck, engine, project)
    finally:
        engine.shutdown()
    [job] = deck.jobs(job_type="approve")
    written = deck.log_path(job.id).read_bytes()
    assert b"approved version" in written
    with ChunkLog(deck.store, job.id).open() as fh:
        assert fh.read() == written


def test_log_chunks_hold_the_files_bytes_at_the_same_offsets(tmp_path: Path, deck: Deck) -> None:
    from core.jobs import queued_job_rows
    from core.lifecycle import JobType

    project = deck.add_project("p", tmp_path)
    row, event = queued_job_rows(JobType.train, project.id, at=deck.now(), actor=deck.store.actor())
    from sqlalchemy import insert

    from core.models import Job, JobEvent

    with deck.writer() as s:
        s.execute(insert(Job), [row])
        s.execute(insert(JobEvent), [event])
        s.commit()
    job_id = row["id"]
    path = deck.log_path(job_id)
    path.parent.mkdir(parents=True)
    copy = LogCopy(deck.store)
    written = b""
    pieces = [b"one\n", b"two \x1b[31mred\x1b[0m\nthr", b"ee\r\n", "é\n".encode() * 3000, b"last"]
    for piece in pieces:
        with open(path, "ab") as fh:
            fh.write(piece)
        written += piece
        copy.copy(job_id)
    copy.forget(job_id)
    LogCopy(deck.store).copy(job_id, final=True)  # another engine resumes where it was left
    chunks = ChunkLog(deck.store, job_id)
    assert chunks.size() == len(written)
    with chunks.open() as fh:
        for at in (0, 3, 17, len(written) - 2):
            fh.seek(at)
            assert fh.read(5000) == written[at : at + 5000]
    path_lines = LogReader(path).read(final=True)
    assert LogReader(chunks).read(final=True) == path_lines
    assert LogIndex(chunks).read(2, 5) == LogIndex(path).read(2, 5)
    path.unlink()  # not on this host: a job's log is then read from the database
    assert LogReader(JobLog(deck.store, job_id)).read(final=True) == path_lines


# -- the artifact store ---------------------------------------------------------------------


def test_config_artifacts_puts_versions_files_in_the_store(hosts, repo, tmp_path) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    alpha.ok("db", "upgrade")  # the shared database, made (a read makes none)
    listed = json.loads(alpha.ok("config", "list", "--json"))
    assert listed == [
        {
            "key": "artifacts",
            "value": str(alpha.home / "artifacts"),
            "updated_at": None,
            "default": True,
        }
    ]
    store = tmp_path / "store"
    for bad, why in (
        (["config", "set", "artifacts", str(tmp_path / "none")], "is not a folder on this host"),
        (["config", "set", "colour", "red"], "no setting 'colour': there are artifacts"),
        (["config", "get", "colour"], "no setting 'colour'"),
    ):
        done = alpha.run(*bad)
        assert done.returncode == 2 and why in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert json.loads(beta.ok("config", "get", "artifacts", "--json"))["default"] is True
    store.mkdir()
    quiet = alpha.run("config", "set", "artifacts", str(store))  # no engine serves: no note
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert beta.ok("config", "get", "artifacts").strip() == str(store)  # every host's

    write_model(repo, "scripted", SCRIPTED_TRAINING)
    write_csv(repo / "data" / "train.csv")
    # The setting is what is tested: the setup and the checks of what it did go in-process.
    with contextlib.closing(alpha.deck()) as deck:
        deck.add_project("proj", repo)
        deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
        beta.engine("--exit-when-idle")
        job = json.loads(alpha.ok("train", "proj", "scripted", "--dataset", "train", "--json"))
        assert job["status"] == "completed", job
        folder = Path(deck.version_detail(job["version"]).artifact_dir)
        assert folder.parent.parent.parent == store
        assert (folder / "weights.txt").read_text() == "42"
        beta_artifacts = beta.home / "artifacts"
        assert not beta_artifacts.exists() or not any(beta_artifacts.iterdir())

        # A host that cannot use the store (not mounted there) refuses to start its engine.
        store.rename(tmp_path / "elsewhere")
        done = beta.run("engine")
        assert done.returncode == 2
        refusal = [
            f"error: the artifact store (`modeldeck config set artifacts`) {store} "
            "is not a folder on this host"
        ]
        assert done.stderr.strip().splitlines() == refusal
        # So does a job command that would run its job itself (no engine serves): nothing
        # queued.
        done = alpha.run("train", "proj", "scripted", "--dataset", "train")
        assert done.returncode == 2 and done.stderr.strip().splitlines() == refusal
        assert [j.id for j in deck.jobs()] == [job["id"]]


# -- PostgreSQL: engines dispatching side by side ----------------------------------------------


# A tenth of a second a job: the queue outlasts an engine that a busy machine is slow to serve.
BRIEF = "import time\ndef train(context):\n    time.sleep(0.1)\n"
QUEUE = """
import sys
from core.service import Deck
deck = Deck()
for _ in range(int(sys.argv[1])):
    deck.train("proj", "noop", "train")
"""
DRAINED = 60  # jobs in the test (tests/bench/bench_pg.py drains 300)


@pytest.mark.postgres_only("several engines dispatch at once on PostgreSQL only (one lease)")
def test_three_engines_drain_jobs_queued_from_three_processes_once_each(
    backend, hosts, shared, repo
) -> None:
    write_model(repo, "noop", BRIEF)
    everyone = list(hosts.values())
    for h in everyone:
        h.engine("--workers", "2")
    # All three serve (an engine beats before its first claim) before the jobs come; else two
    # could drain them all while the third still imports.
    wait_for(lambda: len(shared.hosts.engines()) == 3, timeout=60, what="all three to beat")
    queuers = [
        subprocess.Popen([sys.executable, "-c", QUEUE, str(DRAINED // 3)], env=h.env(), cwd=ROOT)
        for h in everyone
    ]
    for q in queuers:
        assert q.wait(120) == 0
    wait_for(
        lambda: shared.count_jobs(status=["queued", "running", "stopping"]) == 0,
        timeout=180,
        what="the queue to drain",
    )
    jobs = shared.jobs(limit=1000)
    assert len(jobs) == DRAINED
    assert {j.status for j in jobs} == {"completed"}
    for j in jobs:  # exactly once: one claim, one process, one end
        kinds = [e.kind for e in shared.events(j.id)]
        assert kinds.count("started") == 1 and kinds.count("completed") == 1, (j.id, kinds)
    ran = {j.host for j in jobs}
    assert ran == {"alpha", "beta", "gamma"}, ran


@pytest.mark.postgres_only("several engines dispatch at once on PostgreSQL only (one lease)")
def test_an_engine_killed_mid_run_re_attaches_to_its_jobs_when_it_returns(
    backend, hosts, shared
) -> None:
    alpha, beta = hosts["alpha"], hosts["beta"]
    a = alpha.engine()
    job = shared.train("proj", "ticker", "train", {"lines": 100_000, "every": 0.01}).id
    pid = wait_for(lambda: shared.job(job).pid, what="the job to start on alpha")
    try:
        b = beta.engine()
        wait_for(lambda: len(shared.hosts.engines()) == 2, what="beta to beat")
        a.kill()  # kill -9 mid-run; beta serves on, and leaves alpha's job to alpha
        a.wait(10)
        wait_served(shared, b.pid, 2 * RECOVER_EVERY)  # recoveries of beta's
        assert shared.job(job).status == "running"
        alpha.engine()  # back within --lost-after
        wait_for(
            lambda: "reattached" in [e.kind for e in shared.events(job)],
            timeout=60,
            what="alpha to re-attach",
        )
        assert shared.stop(job).status == "stopping"  # alpha follows it: it stops it
        done = wait_for(
            lambda: (j := shared.job(job)).status == "cancelled" and j,
            timeout=60,
            what="the job to stop",
        )
        lines = beta.ok("logs", job).splitlines()
        assert lines[:50] == [f"tick {i}" for i in range(50)] and len(lines) > 50, done
    finally:
        kill_group(pid)


@pytest.mark.postgres_only("several engines dispatch at once on PostgreSQL only (one lease)")
def test_an_engine_without_the_lease_claims_in_its_first_round(
    backend, hosts, shared, repo
) -> None:
    """Its first round recovers (it has just started), and claims after that: it does not
    leave the queued jobs to the others for a poll's length (the bench's engines each lost
    a quarter of a second so)."""
    write_model(repo, "noop", BRIEF)
    holder = Engine(hosts["alpha"].deck(), workers=1)
    late = Engine(hosts["beta"].deck(), workers=2)
    try:
        holder.tick()
        assert holder.holds_lease
        job = shared.train("proj", "noop", "train")
        assert late.shares_queue and not late.holds_lease
        late.tick()  # its first round
        assert set(late.running) == {job.id}
        assert shared.job(job.id).status == "running"
        assert late.run_until_idle(timeout=60)
        assert shared.job(job.id).status == "completed"
    finally:
        late.shutdown()
        holder.shutdown()


def killed_engine_row(deck: Deck, seen: datetime, suffix: str) -> int:
    """The heartbeat of an engine of this host last seen at ``seen``, whose process is gone
    (a pid that ran and ended); its pid."""
    from core.procfs import HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    with deck.store.writer() as s:
        s.add(
            EngineHeartbeat(
                id=f"{HOST}:{dead.pid}:{suffix}",
                host=HOST,
                pid=dead.pid,
                workers=2,
                running=0,
                version="x",
                started_at=seen,
                last_seen=seen,
            )
        )
        s.commit()
    return dead.pid


def test_an_engine_of_this_host_whose_process_is_gone_is_stale_at_once(shared: Deck) -> None:
    """Killed a moment after its last heartbeat: not listed as serving or standing by until
    its heartbeat ages (nothing serves meanwhile)."""
    dead = killed_engine_row(shared, shared.store.now(), "def")
    [engine] = [e for e in shared.hosts.engines() if e.pid == dead]
    assert (engine.state, engine.stale) == ("stale", True)


def test_an_engine_killed_while_another_of_its_host_serves_leaves_the_list(
    shared: Deck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only a starting engine tidies its host's rows: a serving one looks again now and
    then (TIDY_EVERY), so an engine killed after its peer started is not listed as stale for
    a day; it is marked stopped when it was last seen (its host's last sighting kept)."""
    from core.clock import utc as in_utc
    from core.engine import heartbeat
    from core.procfs import HOST, engine_id

    monkeypatch.setattr(heartbeat, "BEAT_EVERY", 0.0)
    monkeypatch.setattr(heartbeat, "TIDY_EVERY", 0.0)
    beating = heartbeat.Heartbeat(shared.store, engine_id(object()), 1)
    beating.beat(0)  # it started first
    seen = shared.store.now() - timedelta(seconds=30)
    dead = killed_engine_row(shared, seen, "abc")
    assert [e.stale for e in shared.hosts.engines() if e.pid == dead] == [True]
    beating.beat(0)
    assert [e.pid for e in shared.hosts.engines()] == [os.getpid()]
    with shared.store.reader() as s:
        row = s.get(EngineHeartbeat, f"{HOST}:{dead}:abc")
        assert row is not None and in_utc(row.stopped_at) == in_utc(row.last_seen) == seen
