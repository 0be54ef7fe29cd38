"""A read command loads only what a read needs: the command line starts fast.

Each probe is a fresh interpreter that runs the CLI's code and then lists ``sys.modules``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import COMMANDS, build_parser
from core.service import Deck
from tests.conftest import ROOT

# Never on a read: migrations (only when the schema is behind), URLs (imports), cron maths
# (schedules), screens, data frames and models (jobs).
NOT_ON_A_READ = {
    "alembic",
    "httpx",
    "croniter",
    "textual",
    "tui",
    "pandas",
    "numpy",
    "pyarrow",
    "sklearn",
    "joblib",
}


def _run_cli(argv: list[str]) -> tuple[str, set[str]]:
    """What ``modeldeck ARGV`` printed, and the top-level modules loaded once it returned."""
    probe = (
        "import json, sys\n"
        "from core.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exc:\n"  # --help
        "    code = exc.code\n"
        "print('\\x00' + json.dumps([code, sorted(sys.modules)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    printed, _, tail = proc.stdout.rpartition("\x00")
    code, modules = json.loads(tail)
    assert code == 0, proc.stderr
    return printed, {name.split(".")[0] for name in modules}


@pytest.fixture
def queued(deck: Deck, project: str) -> str:
    """A job in the project (no engine: it stays queued)."""
    return deck.train(project, "scripted", "train").id


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "proj", "--json"],
        ["job", "{job}", "--json"],
        ["projects", "--json"],
        ["deployments", "proj", "--json"],
        ["datasets", "proj"],
        ["events", "{job}"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_read_loads_no_migrations_urls_cron_screens_or_frames(
    argv: list[str], home: Path, queued: str
) -> None:
    full = [word.format(job=queued) for word in argv] + ["--home", str(home)]
    printed, loaded = _run_cli(full)
    assert "sqlmodel" in loaded  # the probe really read the database
    if "--json" in argv and argv[0] in ("jobs", "job"):
        assert queued in printed  # ... and printed what a user asked for
    assert loaded & NOT_ON_A_READ == set()


def test_help_loads_no_database_layer() -> None:
    printed, loaded = _run_cli(["--help"])
    assert "jobs" in printed and "train" in printed  # the commands are listed
    assert loaded & ({"sqlalchemy", "sqlmodel"} | NOT_ON_A_READ) == set()
    assert "core.service" not in loaded


def test_the_command_list_matches_the_parser() -> None:
    """``COMMANDS`` names every command the full parser knows: none is missing (it would
    still work, with the slower full parser) and none is extra (it would be refused)."""
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == COMMANDS


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "jobs", "p", "--limit", "3", "--status", "failed"],
        ["--home", "/h", "train", "p", "m", "--dataset", "d", "--set", "a=1", "--detach"],
        ["--db=sqlite:////d.db", "schedule", "dep", "--next", "3", "--from", "2026-10-25T00:00"],
        ["project", "add", "p", "--repo", "/r", "--json"],
        ["dataset", "archive", "p", "d"],
        ["engine", "--workers", "2", "--exit-when-idle"],
        ["approve", "v", "--reason", "ok", "--evaluation", "j1", "--evaluation", "j2"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_the_one_command_parser_reads_as_the_full_one(argv: list[str]) -> None:
    from core.cli import _command_in

    command = _command_in(argv)
    assert command == next(word for word in argv if word in COMMANDS)
    assert vars(build_parser(command).parse_args(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["--json"], ["--home"], ["jobz", "p"], ["--hom", "/h", "jobs"], ["-h"]],
)
def test_anything_else_gets_the_full_parser(argv: list[str]) -> None:
    from core.cli import _command_in

    assert _command_in(argv) is None


def test_a_reader_that_went_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """``modeldeck … | head``: once the reader has gone, the command stops, with no
    traceback (the one handler for unexpected errors must not take a broken pipe)."""
    read, write = os.pipe()
    os.close(read)  # gone before anything is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tui.entry", "whoami", "--home", str(tmp_path / "home")],
            cwd=ROOT,
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0  # quietly, as `jobs | head -1` (see test_cli_exits.py)
    assert proc.stderr == b""


def test_the_console_script_holds_the_collector_until_the_database_opens(
    home: Path, queued: str
) -> None:
    """Start-up runs with rare cycle collections (core/collector.py); the command itself, an
    engine serving for days say, runs with the collector as it was, the start's objects
    frozen."""
    from core import collector

    probe = (
        "import gc, json, sys\n"
        "from core import collector\n"
        "from tui import entry\n"
        "seen = []\n"
        "real_release, real_main = collector.release, entry.main\n"
        "def release():\n"
        "    seen.append(gc.get_threshold()[0])\n"
        "    real_release()\n"
        "def main():\n"
        "    code = real_main()\n"
        "    print('\\x00' + json.dumps([code, seen, gc.isenabled(), gc.get_freeze_count()]))\n"
        "    return code\n"
        "collector.release = release\n"
        "entry.main = main\n"
        f"sys.argv = ['modeldeck', 'jobs', 'proj', '--home', {str(home)!r}]\n"
        "entry.run()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    printed, _, tail = proc.stdout.rpartition("\x00")
    code, seen, enabled, frozen = json.loads(tail)
    assert code == 0 and queued[:8] in printed, proc.stderr
    assert seen and seen[0] == collector.HOLD_THRESHOLD  # held while the command started
    assert enabled and frozen > 10_000  # on again once the database was opened


def test_the_collector_stays_off_when_it_was_turned_off_before() -> None:
    from core import collector

    gc.disable()
    try:
        collector.hold()
        collector.release()
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()
