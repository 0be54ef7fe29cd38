"""PostgreSQL as a store: what only it does. Several engines claim from one queue and each job
runs once; a job queued in another process wakes them through LISTEN/NOTIFY; the migrations
build the models' schema; ``db copy`` moves a SQLite registry into an empty database and
refuses a non-empty one; without psycopg a PostgreSQL URL is one line naming the extra."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from core import db, pgwakeup
from core.engine import Engine
from core.service import Deck
from tests.conftest import ROOT, PgServer, ok, refused


@pytest.fixture
def pg(pg_server: PgServer) -> str:
    url = pg_server.fresh()
    yield url
    pg_server.drop(url)


def test_the_migrations_build_exactly_the_schema_of_the_models(pg: str, tmp_path: Path) -> None:
    deck = Deck(home=tmp_path, db=pg)
    try:
        assert deck.store.shared_queue
        with deck.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == []
    finally:
        deck.close()


def test_two_engines_share_the_queue_and_run_every_job_exactly_once(
    pg: str, tmp_path: Path, repo: Path
) -> None:
    deck = Deck(home=tmp_path / "a", db=pg)
    other = Deck(home=tmp_path / "b", db=pg)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    ids = [deck.train("proj", "scripted", "train", {"lines": 1}).id for _ in range(8)]
    engines = [Engine(deck, workers=2, poll=0.05), Engine(other, workers=2, poll=0.05)]
    try:
        for engine in engines:
            engine.start()
        for job_id in ids:
            job = deck.wait(job_id, timeout=120)
            assert job.status == "completed", (job.error, [e.message for e in deck.events(job_id)])
        starts = Counter(
            e.details.get("engine") for j in ids for e in deck.events(j) if e.kind == "started"
        )
        assert sum(starts.values()) == len(ids)  # one start each: nobody ran a job twice
        assert set(starts) <= {engines[0].id, engines[1].id}
        versions = sorted(v.number for v in deck.versions("proj"))
        assert versions == list(range(1, len(ids) + 1))  # each its own, none lost
    finally:
        for engine in engines:
            engine.shutdown()
        other.close()
        deck.close()


def test_the_lease_holder_leaves_a_live_peer_engine_its_running_job(
    pg: str, tmp_path: Path, repo: Path
) -> None:
    """Engines sharing the queue each follow their own jobs to the end: the lease holder's
    recovery takes over only jobs whose engine has gone (or a job command's). Taking over a
    live peer's job read its outcome from the wrong home and failed it as lost."""
    deck = Deck(home=tmp_path / "a", db=pg)
    other = Deck(home=tmp_path / "b", db=pg)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    holder = Engine(deck, workers=1, poll=0.05)
    peer = Engine(other, workers=1, poll=0.05)
    try:
        holder.start()  # takes the lease; its one worker then runs a long job
        busy = deck.train("proj", "scripted", "train", {"sleep": 8}).id
        assert wait_for(lambda: deck.job(busy).status == "running")
        peer.start()
        job_id = deck.train("proj", "scripted", "train", {"sleep": 4}).id  # the peer's
        job = deck.wait(job_id, timeout=120)  # the holder recovers every 2 s meanwhile
        assert holder.holds_lease
        kinds = [e.kind for e in deck.events(job_id)]
        assert job.status == "completed", (job.error, kinds)
        assert "reattached" not in kinds and "recovered" not in kinds
        started = [e.details.get("engine") for e in deck.events(job_id) if e.kind == "started"]
        assert started == [peer.id]
        assert deck.wait(busy, timeout=120).status == "completed"
    finally:
        holder.shutdown()
        peer.shutdown()
        other.close()
        deck.close()


def wait_for(check: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_notification_from_another_process_wakes_a_listening_engine(
    pg: str, tmp_path: Path
) -> None:
    deck = Deck(home=tmp_path, db=pg)
    heard = threading.Event()
    listener = deck.store.listen(heard.set)
    try:
        assert isinstance(listener, pgwakeup.Listener)
        code = (
            "from core.store import Store; import sys; "
            "s = Store(sys.argv[1], sys.argv[2]); s.notify('j-x'); s.close()"
        )
        subprocess.run([sys.executable, "-c", code, str(tmp_path), pg], check=True, cwd=ROOT)
        assert heard.wait(30), "no notification arrived"
    finally:
        if listener is not None:
            listener.close()
        deck.close()


def test_an_idle_engine_starts_a_job_queued_elsewhere_long_before_its_poll(
    pg: str, tmp_path: Path, repo: Path
) -> None:
    deck = Deck(home=tmp_path / "a", db=pg)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    poll = 600.0  # only a wake-up can start the job in this test's time
    engine = Engine(deck, workers=1, poll=poll)
    engine.start()
    try:
        time.sleep(0.5)  # the engine is idle, listening
        other = Deck(home=tmp_path / "b", db=pg)  # another process's store: no shared listener
        job = other.train("proj", "scripted", "train", {"lines": 0})
        other.close()
        # Ended within the wait, a tenth of the poll: only the wake-up can have started it.
        assert deck.wait(job.id, timeout=poll / 10).status == "completed"
    finally:
        engine.shutdown()
        deck.close()


def test_db_copy_moves_a_sqlite_registry_and_refuses_a_non_empty_database(
    pg: str, tmp_path: Path, repo: Path
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "MODELDECK_DB"}
    env["MODELDECK_HOME"] = str(home)

    def run(*args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
        e = dict(env, **({"MODELDECK_DB": db} if db else {}))
        return subprocess.run(
            [sys.executable, "-m", "tui.entry", *args],
            capture_output=True,
            text=True,
            env=e,
            cwd=ROOT,
            timeout=300,
        )

    from tests.conftest import Result

    def res(p: subprocess.CompletedProcess[str]) -> Result:
        return Result(p.returncode, p.stdout, p.stderr)

    ok(res(run("project", "add", "proj", "--repo", str(repo))))
    ok(
        res(
            run(
                "dataset",
                "add",
                "proj",
                "train",
                str(repo / "data" / "train.csv"),
                "--target",
                "label",
            )
        )
    )
    ok(res(run("train", "proj", "scripted", "--dataset", "train")))
    before = {cmd: res(run(cmd, "proj", "--json")).json() for cmd in ("models", "jobs")}
    job_id = before["jobs"][0]["id"]
    # A NUL in a job's event, as modeldeck kept it on SQLite before it stored ␀ for one
    # (PostgreSQL refuses a NUL in text): copied as ␀.
    with sqlite3.connect(home / "modeldeck.db") as conn:
        conn.execute(
            "UPDATE job_event SET message = message || ? WHERE job_id = ? AND seq = 1",
            (" \x00", job_id),
        )
    events_before = res(run("events", job_id, "--json")).json()
    assert events_before[0]["message"].endswith(" \x00")

    # An engine serving the SQLite home meanwhile is not carried over as serving PostgreSQL.
    serving = subprocess.Popen(
        [sys.executable, "-m", "tui.entry", "engine"],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not res(run("engines", "--json")).json():
            assert time.monotonic() < deadline, "the engine never beat"
            time.sleep(0.1)
        copied = ok(res(run("db", "copy", "--to", pg, "--json"))).json()
    finally:
        serving.terminate()
        serving.wait(30)
    assert res(run("engines", "--json", db=pg)).json() == []
    assert "engine_heartbeat" not in copied["tables"]
    assert copied["tables"]["job"] == 1 and copied["tables"]["project"] == 1
    assert copied["tables"]["job_event"] == len(events_before)

    after = {cmd: res(run(cmd, "proj", "--json", db=pg)).json() for cmd in ("models", "jobs")}
    assert after == before
    events_before[0]["message"] = events_before[0]["message"].replace("\x00", "␀")
    assert res(run("events", job_id, "--json", db=pg)).json() == events_before
    assert ok(res(run("logs", job_id, db=pg))).out == ok(res(run("logs", job_id))).out
    # New rows continue after the copied ids.
    ok(res(run("train", "proj", "scripted", "--dataset", "train", db=pg)))
    assert len(res(run("jobs", "proj", "--json", db=pg)).json()) == 2

    line = refused(res(run("db", "copy", "--to", pg)))
    assert "is not empty" in line
    line = refused(res(run("db", "copy", "--to", "sqlite:////tmp/x.db")))
    assert "postgresql://" in line


def test_a_postgresql_url_without_psycopg_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        "from tui.entry import main; sys.exit(main(sys.argv[1:]))"
    )
    env = dict(os.environ, MODELDECK_HOME=str(tmp_path), MODELDECK_DB="postgresql://x@127.0.0.1/y")
    proc = subprocess.run(
        [sys.executable, "-c", code, "projects"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    from tests.conftest import Result

    line = refused(Result(proc.returncode, proc.stdout, proc.stderr))
    assert "uv sync --extra postgres" in line


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, MODELDECK_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "tui.entry", "projects", "--db", "postgresql://x@127.0.0.1:1/y"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    from tests.conftest import Result

    line = refused(Result(proc.returncode, proc.stdout, proc.stderr))
    assert line.startswith("error: cannot open the database postgresql://x@127.0.0.1:1/y")


def _drop_pooled_connections(deck: Deck, pg: str) -> None:
    """The server ends the backends of ``deck``'s pooled connections (a restart, a DBA's
    ``pg_terminate_backend``); the pool does not know."""
    import psycopg

    with deck.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with psycopg.connect(pg, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_the_server_dropped_while_it_sat_idle_is_replaced_unseen(
    pg: str, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deck = Deck(home=tmp_path, db=pg)
    try:
        deck.add_project("proj", repo)
        _drop_pooled_connections(deck, pg)
        monkeypatch.setattr(db, "PING_IDLE", 0.0)  # every pooled connection has sat long enough
        assert [p.name for p in deck.projects()] == ["proj"]
    finally:
        deck.close()


def test_a_connection_dropped_while_in_use_fails_once_then_the_pool_starts_afresh(
    pg: str, tmp_path: Path, repo: Path
) -> None:
    deck = Deck(home=tmp_path, db=pg)
    try:
        deck.add_project("proj", repo)
        _drop_pooled_connections(deck, pg)  # used a moment ago: not pinged
        with pytest.raises(OperationalError):
            deck.projects()
        assert [p.name for p in deck.projects()] == ["proj"]
    finally:
        deck.close()


def test_a_listener_whose_connection_dropped_closes_without_leaving_descriptors(
    pg: str, tmp_path: Path
) -> None:
    import psycopg

    deck = Deck(home=tmp_path, db=pg)
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):  # the engine's way: a dropped listener is closed, then listens anew
            listener = deck.store.listen(lambda: None)
            assert isinstance(listener, pgwakeup.Listener)
            with psycopg.connect(pg, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'modeldeck-wakeup' AND datname = current_database()"
                )
            assert wait_for(lambda listener=listener: not listener.alive, timeout=30)
            listener.close()
            listener.close()  # again: nothing
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        deck.close()


def test_upgrades_run_at_once_say_which_one_upgraded(pg_server: PgServer, tmp_path: Path) -> None:
    """Four ``db upgrade`` commands started together on an empty database: one migrates it
    and says so; the others wait for it and say it was already there."""
    name = f"{pg_server.prefix}_upgrades"
    pg_server.admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.db_url(name)
    env = dict(os.environ, MODELDECK_HOME=str(tmp_path), MODELDECK_DB=url)
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tui.entry", "db", "upgrade"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for _ in range(4)
        ]
        said = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
        assert [p.returncode for p in procs] == [0] * 4
        head = db.head_revision()
        assert said == sorted(
            [f"database {url}: upgraded from nothing to revision {head}"]
            + [f"database {url}: already at revision {head}"] * 3
        )
    finally:
        pg_server.drop(url)


@pytest.mark.parametrize("raw", [[], ["--raw"]], ids=["lines", "raw"])
def test_a_followed_log_goes_on_when_the_server_drops_its_connection(
    pg: str, tmp_path: Path, repo: Path, raw: list[str]
) -> None:
    """``logs --follow`` outlives a connection the server ended (a restart, a DBA's
    ``pg_terminate_backend``): it says so once, tries again, and follows to the end."""
    import psycopg

    deck = Deck(home=tmp_path, db=pg)
    follow = None
    try:
        deck.add_project("proj", repo)
        deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
        job = deck.train("proj", "scripted", "train", {"lines": "5", "sleep": "4"})
        engine = Engine(deck, workers=1)
        engine.start()
        try:
            assert wait_for(lambda: deck.job(job.id).status == "running")
        finally:
            engine.shutdown()  # the job runs on; a later engine re-attaches to it
        deck.close()  # the only connections of the database left: the follower's
        env = dict(os.environ, MODELDECK_HOME=str(tmp_path), MODELDECK_DB=pg)
        follow = subprocess.Popen(
            [sys.executable, "-m", "tui.entry", "logs", job.id, "--follow", *raw],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert follow.stdout is not None
        seen = [follow.stdout.readline() for _ in range(6)]  # following: the job sleeps
        assert seen == [*(f"line {i}\n" for i in range(5)), "sleeping\n"]
        with psycopg.connect(pg, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'modeldeck'"
            ).fetchall()
        assert ended
        deck = Deck(home=tmp_path, db=pg)
        engine = Engine(deck, workers=1)
        try:
            assert engine.run_until_idle(60)
        finally:
            engine.shutdown()
        rest, errors = follow.communicate(timeout=60)
        assert follow.returncode == 0, errors
        assert rest == ""
        assert "lost the connection to the database" in errors and "Traceback" not in errors
        assert "connected to the database again" in errors
        assert errors.endswith(f"modeldeck: job {job.id} completed\n")
    finally:
        if follow is not None and follow.poll() is None:
            follow.kill()
        deck.close()


def test_a_schema_the_server_refuses_to_make_is_one_line(
    pg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL whose options leave no schema to create in (``search_path``): the migration
    is refused by the server, in one line, and no home is made (it was a traceback)."""
    from core.cli import main

    url = pg + "?options=-c%20search_path%3Dnowhere"
    for args in (["projects"], ["db", "upgrade"]):
        assert main([*args, "--db", url, "--home", str(tmp_path / "home")]) == 2, args
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, err
        assert err.startswith("error: cannot bring the database's schema to revision "), err
        assert "no schema has been selected" in err
    assert not (tmp_path / "home").exists()
