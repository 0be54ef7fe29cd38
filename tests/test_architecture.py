"""The two floors stay apart: ``core`` never imports the TUI, and the job's runner stays light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _modules_after(code: str) -> set[str]:
    """Top-level module names loaded by a fresh interpreter after running ``code``."""
    return {name.split(".")[0] for name in _full_modules_after(code)}


def _full_modules_after(code: str) -> set[str]:
    """Module names (dotted) loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_core_never_imports_textual_or_tui() -> None:
    loaded = _modules_after("import core.service, core.engine, core.cli")
    assert "core" in loaded  # the probe really imported it
    assert "textual" not in loaded
    assert "tui" not in loaded


def test_no_module_of_core_names_textual_or_tui() -> None:
    """Every file under core/, imports anywhere in it (a function's lazy one too), not only
    what importing the service loads."""
    files = sorted((ROOT / "core").rglob("*.py"))
    assert len(files) > 50
    found = {
        str(path.relative_to(ROOT)): name
        for path in files
        for name in _imports(path)
        if name.split(".")[0] in ("textual", "tui")
    }
    assert found == {}


@pytest.mark.parametrize("module", ["core.runner", "core.forkserver", "core.procfs", "core.wakeup"])
def test_job_processes_import_no_orm_and_no_dataframes(module: str) -> None:
    """The runner and the fork server that jobs are forked from stay light."""
    loaded = _modules_after(f"import {module}")
    heavy = {"sqlalchemy", "sqlmodel", "pandas", "numpy", "sklearn", "textual", "tui", "httpx"}
    assert "core" in loaded
    assert loaded & heavy == set()


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The modules a source file imports (absolute names; ``from . import x`` resolved
    against its package), at its top level only or anywhere in it."""
    tree = ast.parse(path.read_text())
    where = path.relative_to(ROOT).parts if path.is_relative_to(ROOT) else (path.name,)
    package = ".".join(where[:-1])
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_the_engine_never_imports_the_service() -> None:
    """The engine takes a Store: the service's commands are not its business."""
    for path in sorted((ROOT / "core" / "engine").glob("*.py")):
        assert not {m for m in _imports(path) if m.startswith("core.service")}, path.name
    assert "core.service" not in _full_modules_after("import core.engine")


def test_the_tui_imports_the_engine_only_where_the_app_hosts_it() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tui").rglob("*.py")
        if any(m == "core.engine" or m.startswith("core.engine.") for m in _imports(path))
    )
    assert importers == ["tui/app.py"]


# What the runner imports only inside the jobs that need it (a built-in model's libraries).
RUNNER_DEFERRED = {"core.builtin", "core.monitoring.jobside", "pyarrow", "pyarrow.parquet"}


def _stdlib_only(module: str, seen: set[str]) -> list[str]:
    """The non-standard-library modules ``module`` (a core module) imports, following the
    core modules it imports."""
    if module in seen:
        return []
    seen.add(module)
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    bad: list[str] = []
    for name in sorted(_imports(path)):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if module == "core.runner" and name in RUNNER_DEFERRED:
            continue
        if name == "core" or name.startswith("core."):
            target = name if (ROOT / Path(*name.split(".")).with_suffix(".py")).exists() else None
            if target is None:  # ``from core import runner``: the module is the name after it
                continue
            bad += _stdlib_only(target, seen)
            continue
        bad.append(f"{module} imports {name}")
    return bad


@pytest.mark.parametrize("module", ["core.runner", "core.forkserver", "core.procfs"])
def test_job_processes_import_only_the_standard_library(module: str) -> None:
    """A job's process is forked from these: the standard library, and core modules that
    are themselves standard library only."""
    assert _stdlib_only(module, set()) == []


def test_the_standard_library_check_sees_a_third_party_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom sqlalchemy import text\n\ndef f():\n    import numpy\n")
    assert {"os", "sqlalchemy", "sqlalchemy.text", "numpy"} <= _imports(source)
    assert _imports(source, top_level_only=True) == {"os", "sqlalchemy", "sqlalchemy.text"}
