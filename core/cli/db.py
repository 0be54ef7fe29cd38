"""The database commands: ``db upgrade``, ``db current`` and ``db copy --to URL``."""

from __future__ import annotations

from pathlib import Path

from core.cli.session import Cli


def _target(cli: Cli) -> tuple[Path, str]:
    """The data home and the database URL the command acts on (a URL refused: no home
    made)."""
    from core.home import resolve_db_url, resolve_home

    home = resolve_home(cli.args.home)
    return home, resolve_db_url(home, cli.args.db)


def _shown(engine: object) -> str:
    from core.db import shown_url

    return shown_url(engine.url)  # type: ignore[attr-defined]


def db(cli: Cli) -> int:
    from core.db import (
        current_revision,
        head_revision,
        make_engine,
        migrate,
        newer_than_known,
        sqlite_file_missing,
    )
    from core.home import home_db_url, make_home

    sub = cli.args.db_cmd
    if sub == "copy":
        return _copy(cli)
    home, url = _target(cli)
    # An upgrade makes the data home (reading makes nothing): first when the database file
    # goes in it, else once the database took the upgrade (a refusal leaves none behind).
    made_first = sub == "upgrade" and url == home_db_url(home)
    if made_first:
        make_home(home)
    if sub == "current" and sqlite_file_missing(url):
        if cli.json:
            from core.cli.output import out

            out({"database": url, "revision": None, "head": head_revision(), "before": None})
        else:
            from core.cli.output import say

            say(f"database {url}: no database file yet (`modeldeck db upgrade` makes it)")
        return 0
    engine = make_engine(url)
    try:
        shown = _shown(engine)
        before = _revision(engine, current_revision)
        if sub == "upgrade":
            before = migrate(engine)  # type: ignore[arg-type]  # as found under its lock
        after = _revision(engine, current_revision) if sub == "upgrade" else before
    finally:
        engine.dispose()  # type: ignore[attr-defined]
    if sub == "upgrade" and not made_first:
        make_home(home)
    head = head_revision()
    if cli.json:
        from core.cli.output import out

        out({"database": shown, "revision": after, "head": head, "before": before})
        return 0
    from core.cli.output import say

    if sub == "upgrade":
        done = "already at" if before == after else f"upgraded from {before or 'nothing'} to"
        say(f"database {shown}: {done} revision {after}")
    else:
        if after == head:
            state = "up to date"
        elif newer_than_known(after):
            state = f"newer than this modeldeck's {head}: use a newer modeldeck"
        else:
            state = f"behind {head}: run `modeldeck db upgrade`"
        say(f"database {shown}: revision {after or 'none'} ({state})")
    return 0


def _revision(engine: object, current_revision: object) -> str | None:
    from sqlalchemy.exc import OperationalError

    from core.db import unreachable

    try:
        return current_revision(engine)  # type: ignore[operator]
    except OperationalError as exc:
        raise unreachable(exc, _shown(engine)) from None


def _copy(cli: Cli) -> int:
    from core.db import check_url, current_revision, is_postgres, make_engine
    from core.dbcopy import copy_registry
    from core.errors import ModelDeckError
    from core.home import require_made

    to = cli.args.to
    if not is_postgres(to):
        raise ModelDeckError(f"--to takes a postgresql:// URL, not {to.split(':', 1)[0]!r}")
    check_url(to)
    home, url = _target(cli)
    # What is copied must be there: copying from a home that is not (a typo in --home) made
    # one, and copied its nothing.
    require_made(home, url)
    source = make_engine(url)
    target = make_engine(to)
    try:
        shown = _shown(target)
        if url == to:
            raise ModelDeckError("--to names the database being copied")
        _revision(target, current_revision)  # reachable: else one line saying why
        counts = copy_registry(source, target, shown)  # type: ignore[arg-type]
    finally:
        source.dispose()  # type: ignore[attr-defined]
        target.dispose()
    if cli.json:
        from core.cli.output import out

        out({"to": shown, "tables": counts})
        return 0
    from core.cli.output import say

    rows = sum(counts.values())
    say(f"copied {rows} row(s) of {len(counts)} table(s) into {shown}")
    for name, n in counts.items():
        say(f"  {name}: {n}")
    say("job logs stay files in this data home: run with this --home and --db URL to read them")
    return 0


RUN = {"db": db}
