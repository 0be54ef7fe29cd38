"""Service and CLI fixes from a review and a field trial, through the real CLI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from deploy_support import add_fast_stages, approved_version, deploy

from core.engine import Engine
from core.service import Deck

Cli = Callable[..., Result]


def ok(result: Result) -> Result:
    assert result.code == 0, (result.code, result.out, result.err)
    return result


def refused(result: Result) -> str:
    """The one-line error of a refused command."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    return lines[0]


def jobs(cli: Cli) -> list[dict[str, Any]]:
    listed = ok(cli("jobs", "--json")).json()
    assert isinstance(listed, list)
    return listed


@pytest.fixture
def engine(deck: Deck, project: str, repo: Path) -> Iterator[Engine]:
    """An engine on the test's home, the scripted model given fast stages."""
    add_fast_stages(repo)
    e = Engine(deck, workers=1)
    try:
        yield e
    finally:
        e.shutdown()


# -- import: a file that cannot be read --------------------------------------------------


def unreadable_files(tmp_path: Path) -> list[Path]:
    """Files that exist and cannot be read: /proc/self/mem (whose page 0 is never mapped:
    reading it fails even for root) and, when not root, a file with mode 000."""
    found = [Path("/proc/self/mem")]
    if os.geteuid() != 0:
        locked = tmp_path / "locked.joblib"
        locked.write_bytes(b"x")
        locked.chmod(0)
        found.append(locked)
    return found


def test_an_import_of_a_file_that_cannot_be_read_is_refused_in_one_line(
    cli: Cli, project: str, tmp_path: Path
) -> None:
    for path in unreadable_files(tmp_path):
        line = refused(cli("import", project, "byom", str(path)))
        assert line.startswith("error: cannot read model file '"), line
        assert "mem" in line or "locked" in line
    assert jobs(cli) == []  # nothing queued


def test_an_import_checks_the_project_and_model_before_reading_the_file(
    cli: Cli, project: str
) -> None:
    # The file would fail to read: these refusals come first, so it is never read.
    line = refused(cli("import", "nosuch", "byom", "/proc/self/mem"))
    assert "unknown project 'nosuch'" in line
    line = refused(cli("import", project, "clf", "/proc/self/mem"))
    assert "'clf' is a code model of proj" in line


# -- schedule: no deployment made identical to another -----------------------------------


def test_a_schedule_change_that_makes_a_deployment_identical_to_another_is_refused(
    cli: Cli, deck: Deck, engine: Engine, project: str
) -> None:
    version = approved_version(deck, engine, project)
    first = deploy(deck, engine, version, "0 6 * * *")
    second = deploy(deck, engine, version, "0 7 * * *", "Europe/Berlin")

    def schedules() -> dict[str, tuple[str, str]]:
        listed = ok(cli("deployments", project, "--json")).json()
        return {d["id"]: (d["schedule"], d["timezone"]) for d in listed}

    before = schedules()
    assert before == {first: ("0 6 * * *", "UTC"), second: ("0 7 * * *", "Europe/Berlin")}
    # The cron and zone together would make `second` a copy of `first`.
    line = refused(cli("schedule", second, "--cron", "0 6 * * *", "--timezone", "UTC"))
    assert f"an identical deployment is active: {first}" in line, line
    assert schedules() == before  # nothing changed
    ok(cli("schedule", second, "--cron", "0 6 * * *"))  # 06:00 in Berlin: not a copy
    after = schedules()
    assert after[second] == ("0 6 * * *", "Europe/Berlin")
    # So would the zone alone.
    line = refused(cli("schedule", second, "--timezone", "UTC"))
    assert f"an identical deployment is active: {first}" in line, line
    assert schedules() == after
    # A deployment is not identical to itself: giving its own schedule again is fine.
    ok(cli("schedule", first, "--cron", "0 6 * * *", "--timezone", "UTC"))
