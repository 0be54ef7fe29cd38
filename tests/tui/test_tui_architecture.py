"""The TUI's own arrows: screens reach each other through the app's ``open_*`` methods, and
no screen or tab imports a screen module (the shared base of screens aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TUI = Path(__file__).resolve().parents[2] / "tui"
SHARED = {"tui.screens", "tui.screens.base"}  # the package and the base every screen extends


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # ``from tui.screens import job`` imports the module tui.screens.job
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def screen_imports(path: Path) -> set[str]:
    return {
        m
        for m in imported_modules(path)
        if m.startswith("tui.screens.") and m not in SHARED and m.count(".") == 2
    }


MODULES = sorted(
    p
    for folder in ("screens", "tabs")
    for p in (TUI / folder).glob("*.py")
    if p.name != "__init__.py"
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_screen_or_tab_imports_a_screen(path: Path) -> None:
    assert screen_imports(path) == set(), "go through ModelDeckApp.open_* instead"


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    """The rule would hold trivially if the parser missed the imports it is about."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def go(self):\n"
        "    from tui.screens.job import JobScreen\n"
        "    from tui.screens import event\n"
        "    from tui.screens.base import DeckScreen\n"
    )
    assert screen_imports(sample) == {"tui.screens.job", "tui.screens.event"}


def test_the_screens_and_tabs_are_all_checked() -> None:
    names = {f"{p.parent.name}/{p.stem}" for p in MODULES}
    assert {"screens/job", "screens/event", "tabs/jobs", "tabs/models"} <= names
