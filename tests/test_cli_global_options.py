"""Global options (--json, --home, --db) work before and after the command, for every command.

Each command runs for real (``core.cli.main``, in this process, jobs only queued with
``--detach``) against a copy of a prepared data home, while ``$MODELDECK_HOME`` names another,
empty home: a command that ignored ``--home`` would act on the empty one and fail or show
nothing, and one that ignored ``--json`` would print a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_support import Home, prepare_home, run_main

from core.cli import build_parser, main
from core.service import Deck
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return prepare_home(tmp_path_factory.mktemp("global"))


@dataclass
class Case:
    args: Callable[[Home], list[str]]
    check: Callable[[Home, Deck, Any], None]  # (home, deck on the home, stdout as JSON or text)
    json: bool = True


def _queued(h: Home, d: Deck, out: Any) -> None:
    assert out["status"] == "queued"
    assert d.job(out["id"]).status == "queued"


CASES: dict[str, Case] = {
    "demo": Case(lambda h: ["demo", "--no-tui"], lambda h, d, out: _is(out["repo"], str(h.repo))),
    "tui": Case(lambda h: ["tui"], lambda h, d, out: None, json=False),  # checked by open_tui
    "engine": Case(
        lambda h: ["engine", "--exit-when-idle", "--workers", "1"],
        lambda h, d, out: _is(d.job(h.queued).status, "completed"),
        json=False,
    ),
    "db": Case(
        lambda h: ["db", "current"],
        lambda h, d, out: _is((out["database"], out["revision"]), (d.store.db_shown, out["head"])),
    ),
    "engines": Case(
        lambda h: ["engines"], lambda h, d, out: _is(out, [e.to_json() for e in d.hosts.engines()])
    ),
    "config": Case(
        lambda h: ["config", "get", "artifacts"],
        lambda h, d, out: _is(out["value"], str(d.home / "artifacts")),
    ),
    "projects": Case(
        lambda h: ["projects"], lambda h, d, out: _is({p["name"] for p in out}, {"proj", "demo"})
    ),
    "project": Case(
        lambda h: ["project", "add", "new", "--repo", str(h.repo)],
        lambda h, d, out: _is((out["name"], d.project("new").repo), ("new", str(h.repo))),
    ),
    "models": Case(
        lambda h: ["models", "proj"], lambda h, d, out: _is([m["name"] for m in out], ["scripted"])
    ),
    "versions": Case(
        lambda h: ["versions", "proj"],
        lambda h, d, out: _is({v["id"] for v in out}, {h.approved, h.evaluated}),
    ),
    "version": Case(
        lambda h: ["version", h.approved], lambda h, d, out: _is(out["version"]["id"], h.approved)
    ),
    "compare": Case(
        lambda h: ["compare", h.approved, h.evaluated],
        lambda h, d, out: _is([v["id"] for v in out["versions"]], [h.approved, h.evaluated]),
    ),
    "deployments": Case(
        lambda h: ["deployments", "proj"],
        lambda h, d, out: _is([x["id"] for x in out], [h.deployment]),
    ),
    "datasets": Case(
        lambda h: ["datasets", "proj"],
        lambda h, d, out: _is({x["name"] for x in out}, {"train", "test", "score"}),
    ),
    "dataset": Case(
        lambda h: ["dataset", "add", "proj", "extra", str(h.extra_csv)],
        lambda h, d, out: _is({x.name for x in d.datasets("proj")} >= {"extra"}, True),
    ),
    "train": Case(
        lambda h: ["train", "proj", "scripted", "--dataset", "train", "--detach"], _queued
    ),
    "evaluate": Case(lambda h: ["evaluate", h.approved, "--dataset", "test", "--detach"], _queued),
    "approve": Case(lambda h: ["approve", h.evaluated, "--reason", "ok", "--detach"], _queued),
    "reject": Case(lambda h: ["reject", h.evaluated, "--reason", "no", "--detach"], _queued),
    "deploy": Case(lambda h: ["deploy", h.approved, "--dataset", "score", "--detach"], _queued),
    "retire": Case(lambda h: ["retire", h.deployment, "--detach"], _queued),
    "import": Case(lambda h: ["import", "proj", "byom", str(h.byom_file), "--detach"], _queued),
    "stats": Case(lambda h: ["stats", h.approved, "--dataset", "test", "--detach"], _queued),
    "predict": Case(lambda h: ["predict", h.deployment, "--detach"], _queued),
    "rerun": Case(lambda h: ["rerun", h.train_job, "--detach"], _queued),
    "schedule": Case(
        lambda h: ["schedule", h.deployment, "--next", "2"],
        lambda h, d, out: _is((out["id"], len(out["preview"])), (h.deployment, 2)),
    ),
    "drift": Case(lambda h: ["drift", h.deployment], lambda h, d, out: _is(out, None)),
    "performance": Case(lambda h: ["performance", h.deployment], lambda h, d, out: _is(out, [])),
    "deployment": Case(
        lambda h: ["deployment", "set", h.deployment, "--warn-psi", "0.2", "--alert-psi", "0.3"],
        lambda h, d, out: _is(d.monitoring.thresholds(h.deployment), (0.2, 0.3)),
    ),
    "jobs": Case(
        lambda h: ["jobs", "proj"],
        lambda h, d, out: _is({h.train_job, h.queued} <= {j["id"] for j in out}, True),
    ),
    "job": Case(lambda h: ["job", h.train_job], lambda h, d, out: _is(out["id"], h.train_job)),
    "logs": Case(lambda h: ["logs", h.train_job], lambda h, d, out: _is(out["lines"], ["line 0"])),
    "events": Case(
        lambda h: ["events", h.train_job],
        lambda h, d, out: _is([e["kind"] for e in out][-1], "completed"),
    ),
    "stop": Case(
        lambda h: ["stop", h.queued],
        lambda h, d, out: _is((out["status"], d.job(h.queued).status), ("cancelled",) * 2),
    ),
    "alert": Case(
        lambda h: [
            "alert",
            "add",
            "proj",
            "--webhook",
            "https://hooks.example.com/x",
            "--on",
            "failed",
        ],
        lambda h, d, out: _is([a.id for a in d.alerts.list("proj")], [out["id"]]),
    ),
    "whoami": Case(lambda h: ["whoami"], lambda h, d, out: _is(out["user"], d.team.whoami().user)),
    "history": Case(
        lambda h: ["history", "proj"],
        lambda h, d, out: _is(len(out) > 0, True),
    ),
}


def _is(got: Any, want: Any) -> None:
    assert got == want


def _commands() -> list[str]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def test_every_command_has_a_case() -> None:
    assert sorted(CASES) == _commands()


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("command", _commands())
def test_global_options_act_in_either_position(
    command: str,
    position: str,
    prepared: Home,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "given"
    shutil.copytree(prepared.path, home)
    default = tmp_path / "default"
    default.mkdir()
    monkeypatch.setenv("MODELDECK_HOME", str(default))
    monkeypatch.delenv("MODELDECK_DB", raising=False)
    case = CASES[command]
    options = ["--home", str(home)] + (["--json"] if case.json else [])
    args = case.args(prepared)
    argv = options + args if position == "before" else args + options

    opened: list[argparse.Namespace] = []

    def open_tui(ns: argparse.Namespace) -> int:
        opened.append(ns)
        return 0

    r = run_main(argv, capsys, open_tui=open_tui)
    assert r.code == 0, r.err
    if command == "tui":
        assert [ns.home for ns in opened] == [str(home)]
        return
    data = json.loads(r.out) if case.json else r.out
    deck = Deck(home=home)
    try:
        case.check(prepared, deck, data)
    finally:
        deck.close()
    assert not list(default.iterdir()), "the default home was touched"


@pytest.mark.parametrize("command", _commands())
def test_parsed_options_are_the_same_in_either_position(command: str, prepared: Home) -> None:
    parser = build_parser()
    args = CASES[command].args(prepared)
    options = ["--json", "--home", "/h", "--db", "sqlite:////d.db"]
    before = vars(parser.parse_args(options + args))
    after = vars(parser.parse_args(args + options))
    assert before == after
    assert (before["json"], before["home"], before["db"]) == (True, "/h", "sqlite:////d.db")
    plain = vars(parser.parse_args(args))
    assert (plain["json"], plain["home"], plain["db"]) == (False, None, None)


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--bogus"], "(see `modeldeck --help`)"),
        (["train", "proj"], "(see `modeldeck train --help`)"),
        (["project", "add"], "(see `modeldeck project add --help`)"),
    ],
)
def test_a_parse_error_names_the_help_of_its_command(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and line.endswith(hint), line


def _console(args: list[str], home: Path, stdout: Any) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it (``tui.entry.run``: no interpreter teardown)."""
    env = dict(os.environ, MODELDECK_HOME=str(home))
    env.pop("MODELDECK_DB", None)
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.entry", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def made(home: Path) -> Path:
    """``home`` with its database (a read refuses a home that has none)."""
    Deck(home=home).store.close()
    return home


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    made(tmp_path)
    with open("/dev/full", "w") as full:
        result = _console(["jobs", "--json"], tmp_path, full)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "error: could not write the output: [Errno 28] No space left on device"
    )


def test_a_command_started_without_stdout_leaves_quietly_with_its_code(tmp_path: Path) -> None:
    """``modeldeck ... >&-``: Python has no ``sys.stdout`` at all."""
    env = dict(os.environ, MODELDECK_HOME=str(made(tmp_path)))
    for args, code in ((["--help"], 0), (["jobs", "--json"], 0), (["job", "j-none"], 2)):
        shell = f"exec {sys.executable} -m tui.entry {' '.join(args)} >&-"
        result = subprocess.run(
            ["sh", "-c", shell], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, timeout=120
        )
        assert result.returncode == code, (args, result.stderr)
        assert "Traceback" not in result.stderr and "ignored" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("db", "says"),
    [
        ("", "the database URL cannot be empty"),
        ("garbage", "the database URL cannot be read"),
        ("postgresql://ana:s3cret@127.0.0.1:notaport/x", "the database URL cannot be read"),
        ("mysql://x/y", "SQLite or PostgreSQL, not mysql"),
        ("sqlite://", "a SQLite database in memory would be gone with this command"),
        ("sqlite:///:memory:", "a SQLite database in memory would be gone with this command"),
        ("sqlite:////nonexistent/dir/x.db", "no database file at /nonexistent/dir/x.db: "),
        ("sqlite:///" + __file__, "file is not a database"),  # a file, but no database
        # libpq would pick a database named after the user, and it would be set up
        ("postgresql://", "the database URL names no database"),
        ("postgresql://127.0.0.1", "the database URL names no database"),
        ("postgresql+psycopg2://ana:s3cret@127.0.0.1/x", "with psycopg 3, not postgresql+psycopg2"),
        # a password in the query is masked as one in user:password@
        ("postgresql://nobody_here@127.0.0.1:1/x?password=s3cret", "x?password=***: "),
        # bytes of the command line that are not UTF-8 (a traceback, until refused)
        ("postgresql://ana@127.0.0.1/x\udcff", "the database URL is not valid UTF-8"),
        ("postgresql://ana@127.0.0.1/x?password=s3cret\udcff", "the database URL is not valid"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_one_line(
    db: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODELDECK_HOME", str(tmp_path))
    monkeypatch.delenv("MODELDECK_DB", raising=False)
    assert main(["--db", db, "projects"]) == 2
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert out == "" and line.startswith("error: ") and says in line, line
    assert "s3cret" not in line
    assert not (tmp_path / "modeldeck.db").exists()


@pytest.mark.parametrize("at", ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_a_history_time_past_the_calendar_is_one_line(
    at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELDECK_HOME", str(made(tmp_path)))
    monkeypatch.delenv("MODELDECK_DB", raising=False)
    assert main(["history", "anything", "--at", at]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --at takes an ISO 8601 time") and "years 1 to 9999" in line


def test_a_schema_newer_than_this_modeldeck_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database another, newer modeldeck upgraded: said so, not a traceback from alembic,
    and ``db current`` does not call it behind."""
    import sqlite3

    monkeypatch.setenv("MODELDECK_HOME", str(tmp_path))
    monkeypatch.delenv("MODELDECK_DB", raising=False)
    assert main(["db", "upgrade"]) == 0
    with sqlite3.connect(tmp_path / "modeldeck.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    capsys.readouterr()
    for args in (["projects"], ["db", "upgrade"]):
        assert main(args) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("error: the database's schema is at revision 9999, newer than"), line
    assert main(["db", "current"]) == 0
    assert "revision 9999 (newer than this modeldeck's " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["db", "copy", "--to", " "], "--to cannot be empty: give a postgresql://"),
        (["jobs", "p", "--status", "queued", "--limit", "1"], None),  # a control: accepted
        (["deploy", "v-1", "--dataset", "d", "--timezone", ""], "leave it out instead"),
        # not the user data dir, not the working directory
        (["projects", "--home", ""], "--home cannot be empty: leave it out instead"),
        (["project", "add", "p", "--repo", " "], "--repo cannot be empty: give the model"),
    ],
)
def test_an_empty_option_says_what_to_do_instead(
    argv: list[str],
    says: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An option that may be left out says so; one that is required (``db copy --to``)
    says what it wants, not to leave it out."""
    monkeypatch.setenv("MODELDECK_HOME", str(tmp_path))
    if says is None:
        main(argv)
        assert "cannot be empty" not in capsys.readouterr().err
        return
    assert main(argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert says in line, line


@pytest.mark.parametrize("name", ["h?a", "h#a", "h%41", "hé", "h a"])
def test_a_home_s_name_is_part_of_its_database_s_path(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder's name with a ``?`` (a URL's query), a ``#``, a ``%`` (an escape), or beyond
    ASCII (a user named josé): the database is in that folder, not elsewhere (``h?a`` and
    ``h?b`` shared ``h``), and no traceback."""
    home = tmp_path / name
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    assert main(["project", "add", "mine", "--repo", str(repo), "--home", str(home)]) == 0
    assert (home / "modeldeck.db").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "repo"])
    other = tmp_path / name.replace("a", "b").replace("41", "42").replace("é", "è")
    capsys.readouterr()
    assert main(["projects", "--home", str(other), "--json"]) == 2  # not the one in h
    assert f"error: no modeldeck data in {other}: " in capsys.readouterr().err
    assert main(["db", "current", "--home", str(home)]) == 0
    assert f"database sqlite:///{home}/modeldeck.db: " in capsys.readouterr().out


def test_a_home_or_database_file_that_is_not_there_is_refused_and_not_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --home or --db: a read, or a change to what should be there, says there is
    nothing there and leaves nothing behind; only what can start an empty home makes one."""
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    typo, db = tmp_path / "hoem", tmp_path / "x.db"
    refusals = {
        ("projects", "--home", str(typo)): f"no modeldeck data in {typo}: check --home and ",
        ("jobs", "--status", "bogus", "--home", str(typo)): f"no modeldeck data in {typo}: ",
        ("train", "p", "m", "--dataset", "d", "--home", str(typo)): "no modeldeck data in ",
        ("approve", "v-1", "--reason", "ok", "--home", str(typo)): "no modeldeck data in ",
        ("projects", "--db", f"sqlite:///{db}"): f"no database file at {db}: check --db and ",
        ("project", "add", "p", "--repo", str(tmp_path / "nope"), "--home", str(typo)): (
            f"repository folder '{tmp_path / 'nope'}' does not exist"
        ),
        # What may start in an empty home refuses first what it was given.
        ("project", "add", "p", "--repo", str(repo), "--home", str(typo), "--db", "mysql://x"): (
            "modeldeck keeps its registry in SQLite or PostgreSQL, not mysql"
        ),
        ("db", "upgrade", "--home", str(typo), "--db", "mysql://x"): "modeldeck keeps its ",
        ("engine", "--ray-address", "", "--home", str(typo)): "--ray-address cannot be empty",
        # A copy of nothing (it made the home, and copied its no rows)
        ("db", "copy", "--to", "postgresql://ana@127.0.0.1:1/x", "--home", str(typo)): (
            f"no modeldeck data in {typo}: "
        ),
    }
    for args, says in refusals.items():
        capsys.readouterr()
        assert main(list(args)) == 2, args
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"error: {says}") and err.count("\n") == 1, err
    assert main(["whoami", "--home", str(typo)]) == 0  # the login: no database to ask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    # What can start in an empty home makes it: a project's first add, an upgrade.
    assert main(["project", "add", "p", "--repo", str(repo), "--home", str(typo)]) == 0
    assert main(["db", "upgrade", "--db", f"sqlite:///{db}"]) == 0
    assert main(["projects", "--home", str(typo)]) == 0
    assert main(["projects", "--db", f"sqlite:///{db}"]) == 0


def test_a_locked_or_damaged_sqlite_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the database itself refuses a command is one line, not SQLAlchemy's traceback:
    a write lock held by another process past the busy timeout (its real error, without the
    30 s wait), and a damaged file."""
    import sqlite3

    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from core.errors import database_refusal

    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        with pytest.raises(OperationalError) as locked, engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        engine.dispose()
    finally:
        holder.close()
    said = str(database_refusal(locked.value))
    assert said.startswith("the database is locked: a write transaction has held it")
    # An error of the statement, not of the file: no refusal (its traceback is wanted).
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError) as json_error:
        conn.execute("SELECT json_extract('{', '$.a')")
    conn.close()
    assert database_refusal(OperationalError("SELECT", {}, json_error.value)) is None

    home = tmp_path / "home"
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    assert main(["project", "add", "mine", "--repo", str(repo), "--home", str(home)]) == 0
    db = home / "modeldeck.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as fh:  # pages past the header overwritten
        fh.seek(2 * 4096)
        fh.write(b"\xa5" * 4096 * 8)
    capsys.readouterr()
    assert main(["jobs", "--home", str(home)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the database file is damaged (") and "backup" in line, line


def test_a_home_that_is_a_file_is_not_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["projects", "--home", str(afile)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"error: cannot use {afile} as the data home: not a folder"


@pytest.mark.parametrize(
    "argv",
    [
        ["deployment", "set", "dep-1", "--alert-psi", "\u0661"],  # an Arabic-Indic one: it was 1
        ["deployment", "set", "dep-1", "--warn-psi", "1_0"],  # it was 10
        ["engine", "--workers", "\u0663"],
        ["engine", "--grace", "1_5"],
        ["schedule", "dep-1", "--next", "1_0"],
        ["jobs", "--limit", "\uff15"],  # a fullwidth 5
    ],
)
def test_a_number_is_written_in_ascii_digits(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Python's int() and float() also read (other scripts' digits, ``_`` between
    digits) is refused in one line, before anything is opened or changed."""
    assert main([*argv, "--home", str(tmp_path / "home")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: argument ") and err.count("\n") == 1, err
    assert not (tmp_path / "home").exists()
