"""Core statements run straight on the driver's cursor: the engine's hot path.

SQLAlchemy spends most of a statement's time on its own bookkeeping (the compiled cache's
key, an execution context, a result object, events): about 60% of the engine thread's time
per job went there (py-spy on ``modeldeck engine``). The engine's statements
are the same few every job, built once, so each is compiled here once per dialect and run
on the DB-API cursor of the connection it is given, inside that connection's transaction.

What SQLAlchemy would do for such a statement is done here too, from its compiled form:
the bind processors (datetimes on SQLite, JSON), expanding ``IN`` lists, result processors
and DB-API errors raised as SQLAlchemy's (``OperationalError``, ``IntegrityError``; a lost
connection invalidated), so callers catch the same exceptions. A statement this cannot run
as SQLAlchemy would (Python-side column defaults to fill in) is refused when first run.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement

_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")


class Rows:
    """What a statement returned: its rows (named tuples) and the driver's row count."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise exc.NoResultFound("no row") if not self.rows else exc.MultipleResultsFound()
        return self.rows[0]

    def all(self) -> list[Any]:
        return self.rows


class _Prepared:
    """One statement compiled for one dialect (and one set of given columns, for an
    ``INSERT`` or ``UPDATE`` whose values come with its parameters)."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect, keys: Sequence[str] | None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            raise ValueError(f"statement with Python-side defaults: {compiled.string[:60]}")
        self.sql = compiled.string
        self.positional = compiled.positional
        self.order = list(compiled.positiontup or ())
        self.expanding = set(_POSTCOMPILE.findall(self.sql))
        self.processors = dict(compiled._bind_processors)
        self.binds = compiled.construct_params(_check=False)  # values compiled in, by bind name
        columns = getattr(compiled, "_result_columns", None) or []
        self.types = [c[3] for c in columns]  # (keyname, name, objects, type) a column
        # Its result processors, once the driver said its columns' type codes (a float
        # column's on psycopg depends on them).
        self.result: list[Any] | None = None
        self.row = namedtuple("Row", [c[0] for c in columns], rename=True) if columns else None

    def args(self, params: Mapping[str, Any]) -> tuple[str, Any]:
        values = {**self.binds, **params}
        for name, process in self.processors.items():
            if name in values:  # None too, as SQLAlchemy does: JSON's None is 'null'
                value = values[name]
                values[name] = (
                    [process(v) for v in value] if name in self.expanding else process(value)
                )
        sql = self.sql
        if self.expanding:
            sql, values = self._expand(values)
        if self.positional:
            args: list[Any] = []
            for name in self.order:
                if name in self.expanding:
                    args.extend(values[name])
                else:
                    args.append(values[name])
            return sql, args
        return sql, values

    def _expand(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Each expanding list as one parameter a value, in the paramstyles of the two
        drivers: ``IN (?, ?)`` (sqlite3's qmark) or ``IN (%(ids_0)s, %(ids_1)s)`` (psycopg's
        pyformat)."""
        out = dict(values)

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            items = list(values[name])
            if not items:
                raise _Fallback
            if self.positional:
                return ", ".join("?" * len(items))
            del out[name]
            keys = [f"{name}_{i}" for i in range(len(items))]
            out.update(zip(keys, items, strict=True))
            return ", ".join(f"%({k})s" for k in keys)

        return _POSTCOMPILE.sub(one, self.sql), out


class _Fallback(Exception):
    """A statement to run through SQLAlchemy after all (an empty ``IN`` list)."""


# Where a dialect keeps its statements compiled here: on the dialect itself, so that they go
# with it (their bind processors refer to it: a cache beside it would keep it alive).
_CACHE = "_modeldeck_rawsql"


def _prepared(stmt: ClauseElement, dialect: Dialect, keys: Sequence[str] | None) -> _Prepared:
    by_stmt: dict[Any, _Prepared] | None = getattr(dialect, _CACHE, None)
    if by_stmt is None:
        by_stmt = {}
        setattr(dialect, _CACHE, by_stmt)
    key = (stmt, tuple(keys) if keys else None)
    prepared = by_stmt.get(key)
    if prepared is None:
        prepared = by_stmt[key] = _Prepared(stmt, dialect, keys)
    return prepared


def run(
    conn: Connection,
    stmt: ClauseElement,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Rows:
    """Run ``stmt`` (built once, at import) with ``params`` (a list: many rows of one
    ``INSERT``) on ``conn``'s driver connection, in its transaction. As in SQLAlchemy, an
    ``INSERT`` or ``UPDATE`` also sets the columns its parameters name."""
    many = isinstance(params, list)
    if many and not params:
        return Rows([], 0)  # no rows to insert
    first = params[0] if many else (params or {})  # type: ignore[index]
    keys = sorted(first) if getattr(stmt, "is_dml", False) else None
    dialect = conn.dialect
    prepared = _prepared(stmt, dialect, keys)
    try:
        if many:
            pairs = [prepared.args(p) for p in params]  # type: ignore[union-attr]
            sql, args = pairs[0][0], [a for _, a in pairs]
        else:
            sql, args = prepared.args(first)
    except _Fallback:
        result = conn.execute(stmt, params)  # type: ignore[arg-type]
        rows = list(result) if result.returns_rows else []
        return Rows(rows, result.rowcount)
    if not conn.in_transaction():
        conn.begin()  # as SQLAlchemy's own execute would (its begin listeners run)
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = dbapi_conn.cursor()
    # Its listeners see the statement as they see SQLAlchemy's (a profiler, a test's tally).
    before, after = conn.dispatch.before_cursor_execute, conn.dispatch.after_cursor_execute
    if before:
        before(conn, cursor, sql, args, None, many)
    try:
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
        description = cursor.description
        fetched = cursor.fetchall() if description is not None else []
        rowcount = cursor.rowcount
        if prepared.result is None and description is not None:
            prepared.result = [
                kind._cached_result_processor(dialect, column[1])
                for kind, column in zip(prepared.types, description, strict=False)
            ]
    except dialect.loaded_dbapi.Error as error:
        _raise(conn, cursor, sql, args, error)
    else:
        if after:
            after(conn, cursor, sql, args, None, many)
    finally:
        cursor.close()
    if prepared.row is None:
        return Rows([], rowcount)
    make, processors = prepared.row, prepared.result or []
    if any(processors):
        fetched = [
            tuple(p(v) if p is not None else v for p, v in zip(processors, r, strict=False))
            for r in fetched
        ]
    return Rows([make(*r) for r in fetched], rowcount)


def _raise(conn: Connection, cursor: Any, sql: str, args: Any, error: Exception) -> None:
    """``error`` as SQLAlchemy raises a driver's error (its class by the driver's); a lost
    connection is invalidated, so the pool does not hand it out again."""
    dialect = conn.dialect
    dbapi_conn = conn.connection.dbapi_connection
    invalidated = dialect.is_disconnect(error, dbapi_conn, cursor)
    if invalidated:
        conn.invalidate(error)
    raise exc.DBAPIError.instance(
        sql,
        args,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated,
        dialect=dialect,
    ) from error
