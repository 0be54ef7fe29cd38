"""Copying a registry from one database into another, empty one (``modeldeck db copy``).

Every table of the schema is copied, in the order its foreign keys need (parents first), so a
table that a later revision adds is copied without a change here. Only the engine lease is
left out: it names an engine of the old database. A job's log stays a file in the data home.
"""

from __future__ import annotations

from sqlalchemy import Integer, Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from core import models  # noqa: F401  (registers the tables)
from core.db import current_revision, head_revision, migrate
from core.errors import ModelDeckError
from core.text import storable

# Who serves the old database (its lease, its engines' heartbeats): nothing to carry over.
SKIPPED = frozenset({"engine_lease", "engine_heartbeat"})
CHUNK = 1000  # rows read and inserted at a time


def tables() -> list[Table]:
    """The tables copied, parents before the tables that point at them."""
    return [t for t in SQLModel.metadata.sorted_tables if t.name not in SKIPPED]


def refuse_unless_empty(target: Engine, shown: str) -> None:
    """A one-line refusal unless ``target`` holds no rows and no tables but modeldeck's."""
    ours = {t.name for t in SQLModel.metadata.sorted_tables} | {"alembic_version"}
    with target.connect() as conn:
        names = inspect(conn).get_table_names()
        strangers = sorted(set(names) - ours)
        if strangers:
            raise ModelDeckError(
                f"the database {shown} is not empty (it has a table {strangers[0]}): "
                "copy into an empty database"
            )
        for name in sorted(set(names) & ours - {"alembic_version"}):
            table = SQLModel.metadata.tables[name]
            if conn.execute(select(func.count()).select_from(table)).scalar():
                raise ModelDeckError(
                    f"the database {shown} is not empty (table {name} has rows): "
                    "copy into an empty database"
                )


def _copy_table(src: Connection, dst: Connection, table: Table) -> int:
    copied = 0
    rows = src.execute(select(table)).mappings()
    while batch := rows.fetchmany(CHUNK):
        # A NUL written before jobs' text was kept without one (SQLite stored it; PostgreSQL
        # cannot): as ␀, as it is stored now.
        dst.execute(table.insert(), [{k: storable(v) for k, v in row.items()} for row in batch])
        copied += len(batch)
    return copied


def _restart_ids(dst: Connection, table: Table) -> None:
    """A PostgreSQL table with a serial id continues after the ids copied into it."""
    pk = list(table.primary_key.columns)
    if dst.dialect.name != "postgresql" or len(pk) != 1 or not isinstance(pk[0].type, Integer):
        return
    name, column = table.name, pk[0].name
    dst.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('\"{name}\"', '{column}'), "
            f'COALESCE((SELECT MAX("{column}") FROM "{name}"), 0) + 1, false)'
        )
    )


def copy_registry(source: Engine, target: Engine, shown: str) -> dict[str, int]:
    """Copy every row of ``source`` into the empty database ``target`` (its schema made
    first), in one transaction: the rows copied per table. Nothing is copied when any of
    it fails."""
    if current_revision(source) != head_revision():
        migrate(source)
    refuse_unless_empty(target, shown)
    migrate(target)
    counts: dict[str, int] = {}
    # One read transaction on the source (a consistent snapshot), one write on the target.
    with source.connect() as src, target.connect() as dst, dst.begin():
        refuse_unless_empty(target, shown)  # again, now that the schema exists
        for table in tables():
            counts[table.name] = _copy_table(src, dst, table)
            _restart_ids(dst, table)
    return counts
