"""The two floors stay apart: ``core`` never imports the TUI, and the job's runner stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _modules_after(code: str) -> set[str]:
    """Top-level module names loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return {name.split(".")[0] for name in json.loads(proc.stdout.splitlines()[-1])}


def test_core_never_imports_textual_or_tui() -> None:
    loaded = _modules_after("import core.service, core.engine, core.cli")
    assert "core" in loaded  # the probe really imported it
    assert "textual" not in loaded
    assert "tui" not in loaded


@pytest.mark.parametrize("module", ["core.runner", "core.forkserver", "core.procfs", "core.wakeup"])
def test_job_processes_import_no_orm_and_no_dataframes(module: str) -> None:
    """The runner and the fork server that jobs are forked from stay light."""
    loaded = _modules_after(f"import {module}")
    heavy = {"sqlalchemy", "sqlmodel", "pandas", "numpy", "sklearn", "textual", "tui", "httpx"}
    assert "core" in loaded
    assert loaded & heavy == set()
