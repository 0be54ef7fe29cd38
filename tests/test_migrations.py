"""Schema changes go through Alembic: an older database is brought up to date on open, data kept."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from core.db import MIGRATIONS, current_revision, make_engine, sqlite_url
from core.service import Deck


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
    assert current_revision(deck.engine) == "0002"
    indexes = {ix["name"] for ix in inspect(deck.engine).get_indexes("job")}
    assert "ix_job_project_status" in indexes
    assert [p.name for p in deck.projects()] == ["legacy"]
    deck.close()


def test_the_migrations_build_exactly_the_tables_the_code_declares(deck: Deck) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with deck.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
