"""Schema changes go through Alembic: an older database is brought up to date on open, data kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from core.db import MIGRATIONS, current_revision, head_revision, make_engine, sqlite_url
from core.service import Deck

pytestmark = pytest.mark.sqlite_only(
    reason="the SQLite schema of each revision; PostgreSQL's: test_postgres.py"
)

HEAD = head_revision()  # the newest revision file: several branches add theirs


def test_a_database_at_the_first_revision_is_upgraded_and_keeps_its_data(
    tmp_path: Path, repo: Path
) -> None:
    home = tmp_path / "old-home"
    home.mkdir()
    engine = make_engine(sqlite_url(home / "modeldeck.db"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO project (id, name, repo, created_at) "
                "VALUES ('p-000000000001', 'legacy', :repo, '2026-01-01 00:00:00.000000')"
            ),
            {"repo": str(repo)},
        )
    assert current_revision(engine) == "0001"
    engine.dispose()

    deck = Deck(home=home)
    assert current_revision(deck.engine) == HEAD
    indexes = {ix["name"] for ix in inspect(deck.engine).get_indexes("job")}
    assert "ix_job_project_status" in indexes
    assert [p.name for p in deck.projects()] == ["legacy"]
    deck.close()


def test_statistics_kept_on_a_version_become_a_record_of_their_job(
    tmp_path: Path, repo: Path
) -> None:
    home = tmp_path / "old-home"
    home.mkdir()
    engine = make_engine(sqlite_url(home / "modeldeck.db"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "0002")
    t0, t1 = "2026-01-01 00:00:00.000000", "2026-01-01 00:05:00.000000"
    rows = [
        "INSERT INTO project (id, name, repo, created_at) VALUES ('p-1', 'old', :repo, :t0)",
        "INSERT INTO dataset (id, project_id, name, path, format, created_at) "
        "VALUES ('d-1', 'p-1', 'train', '/x.csv', 'csv', :t0)",
        "INSERT INTO model (id, project_id, name, kind, created_at) "
        "VALUES ('m-1', 'p-1', 'clf', 'code', :t0)",
        "INSERT INTO model_version (id, model_id, number, status, artifact_dir, hyperparameters,"
        " source, statistics, created_at, updated_at) VALUES ('v-1', 'm-1', 1, 'trained', '/a',"
        ' \'{}\', \'{}\', \'{"rows": 3, "dataset": "train", "columns": {"x": '
        '{"count": 3}}}\', :t0, :t1)',
        "INSERT INTO metrics_record (version_id, at, metrics) VALUES ('v-1', :t0, '{}')",
        "INSERT INTO job (id, project_id, type, status, trigger, actor, version_id, dataset_id,"
        " params, created_at, finished_at, outputs, next_seq, events_offset) VALUES ('j-1',"
        " 'p-1', 'compute_stats', 'completed', 'manual', 'me', 'v-1', 'd-1', '{}', :t0, :t1,"
        " '[]', 1, 0)",
    ]
    with engine.begin() as conn:
        for sql in rows:
            conn.execute(text(sql), {"repo": str(repo), "t0": t0, "t1": t1})
    engine.dispose()

    deck = Deck(home=home)
    assert current_revision(deck.engine) == HEAD
    [run] = deck.version_detail("v-1").statistics
    assert (run.job_id, run.dataset, run.rows, run.columns) == (
        "j-1",
        "train",
        3,
        {"x": {"count": 3}},
    )
    assert deck.version("v-1").statistics[0].job_id == "j-1"
    deck.close()


def test_the_migrations_build_exactly_the_tables_the_code_declares(deck: Deck) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with deck.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_a_database_at_0003_gains_archives_hashes_and_retire_reasons(
    tmp_path: Path, repo: Path
) -> None:
    home = tmp_path / "old-home"
    home.mkdir()
    engine = make_engine(sqlite_url(home / "modeldeck.db"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "0003")
    t0 = "2026-01-01 00:00:00.000000"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO project (id, name, repo, created_at) VALUES ('p-1', 'old', :r, :t)"),
            {"r": str(repo), "t": t0},
        )
        conn.execute(
            text(
                "INSERT INTO dataset (id, project_id, name, path, format, rows, created_at) "
                "VALUES ('d-1', 'p-1', 'train', :path, 'csv', 60, :t)"
            ),
            {"path": str(repo / "data" / "train.csv"), "t": t0},
        )
    engine.dispose()

    deck = Deck(home=home)
    assert current_revision(deck.engine) == HEAD
    columns = {
        table: {c["name"] for c in inspect(deck.engine).get_columns(table)}
        for table in ("project", "dataset", "deployment")
    }
    assert "archived_at" in columns["project"]
    assert {"archived_at", "sha256", "id_column"} <= columns["dataset"]
    assert "retire_reason" in columns["deployment"]
    [p] = deck.projects()
    assert (p.name, p.archived_at) == ("old", None)
    [d] = deck.datasets("old")
    assert (d.name, d.rows, d.sha256, d.archived_at) == ("train", 60, None, None)
    deck.close()


def test_a_database_at_0004_records_its_jobs_as_run_by_the_local_executor(
    tmp_path: Path, repo: Path
) -> None:
    home = tmp_path / "old-home"
    home.mkdir()
    engine = make_engine(sqlite_url(home / "modeldeck.db"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "0004")
    t0 = "2026-01-01 00:00:00.000000"
    job = (
        "INSERT INTO job (id, project_id, type, status, trigger, actor, params, created_at,"
        " outputs, next_seq, events_offset, host, pid, pgid, proc_start) VALUES (:id, 'p-1',"
        " 'train', :status, 'manual', 'me', '{}', :t, '[]', 1, 0, :host, :pid, :pgid, :start)"
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO project (id, name, repo, created_at) VALUES ('p-1', 'old', :r, :t)"),
            {"r": str(repo), "t": t0},
        )
        ran = {"host": "box", "pid": 4242, "pgid": 4242, "start": 1234.5}
        conn.execute(text(job), {"id": "j-ran", "status": "completed", "t": t0, **ran})
        never = {"host": None, "pid": None, "pgid": None, "start": None}
        conn.execute(text(job), {"id": "j-queued", "status": "queued", "t": t0, **never})
    engine.dispose()

    deck = Deck(home=home)
    assert current_revision(deck.engine) == HEAD
    with deck.engine.connect() as conn:
        got = dict(
            conn.execute(text("SELECT id, executor || ' ' || coalesce(handle, '-') FROM job")).all()
        )
    assert got == {
        "j-ran": 'local {"pid": 4242, "pgid": 4242, "start": 1234.5}',
        "j-queued": "local -",
    }
    assert (deck.job("j-ran").pid, deck.job("j-ran").status) == (4242, "completed")
    deck.close()


def test_db_current_reads_a_data_home_that_is_not_there_without_making_it(
    tmp_path: Path,
) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    home = tmp_path / "not-yet"
    env = {k: v for k, v in os.environ.items() if k != "MODELDECK_DB"}

    def db(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui.entry", "db", *args, "--home", str(home)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )

    said = db("current")
    assert said.returncode == 0, said.stderr
    url = sqlite_url(home / "modeldeck.db")
    assert (
        said.stdout == f"database {url}: no database file yet (`modeldeck db upgrade` makes it)\n"
    )
    assert json.loads(db("current", "--json").stdout)["revision"] is None
    assert not home.exists()  # nothing made
    assert db("upgrade").returncode == 0
    assert db("current").stdout == f"database {url}: revision {HEAD} (up to date)\n"
