"""Service and CLI fixes from a review and a field trial, through the real CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Result

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
