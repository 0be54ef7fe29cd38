"""The service's shape: ``Deck`` a thin facade over small modules, no class in core/ over 400
lines (the CLI a module per subject), and a list of versions, or of models, read in a fixed
number of statements however many it shows."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from deploy_support import add_fast_stages, approved_version, deploy
from sqlalchemy import event

from core.engine import Engine
from core.service import Deck
from tests.conftest import ROOT

MAX_CLASS_LINES = 400
T = TypeVar("T")


def test_no_class_in_core_is_over_400_lines() -> None:
    sizes = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                name = f"{path.relative_to(ROOT)}:{node.name}"
                sizes[name] = (node.end_lineno or node.lineno) - node.lineno + 1
    assert "core/service.py:Deck" in sizes and "core/cli/session.py:Cli" in sizes
    too_big = {n: s for n, s in sizes.items() if s > MAX_CLASS_LINES}
    assert too_big == {}


def test_each_cli_command_is_run_by_the_module_the_parser_names() -> None:
    """``RUN_BY`` says which module of ``core.cli`` runs a command (only that module is
    imported): that module runs it, and no other module claims it."""
    import importlib

    from core.cli.parser import RUN_BY

    claimed = {}
    for where in sorted({w for w in RUN_BY.values() if w is not None}):
        for command in importlib.import_module(f"core.cli.{where}").RUN:
            claimed[command] = where
    assert claimed == {c: w for c, w in RUN_BY.items() if w is not None}
    assert [c for c, w in RUN_BY.items() if w is None] == ["tui"]  # main opens the TUI


@pytest.fixture
def engine(deck: Deck, project: str, repo: Path) -> Iterator[Engine]:
    add_fast_stages(repo)
    e = Engine(deck, workers=1)
    try:
        yield e
    finally:
        e.shutdown()


def counted(deck: Deck, listing: Callable[[], T]) -> tuple[int, T]:
    """How many SQL statements ``listing()`` takes, and what it returned."""
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(deck.engine, "before_cursor_execute", count)
    try:
        got = listing()
    finally:
        event.remove(deck.engine, "before_cursor_execute", count)
    return len(seen), got


def statements(deck: Deck, project: str) -> tuple[int, list[str]]:
    """How many SQL statements listing the project's versions takes, and the list (as the
    CLI shows it: label, status, last job type)."""
    n, views = counted(deck, lambda: deck.versions(project))
    return n, [f"{v.label} {v.status} {v.last_job.type if v.last_job else '-'}" for v in views]


def models_shown(deck: Deck, project: str) -> tuple[int, list[str]]:
    """How many SQL statements listing the project's models takes, and the list (as the
    CLI shows it: name, versions, latest, deployed, last job)."""
    n, views = counted(deck, lambda: deck.models(project))
    return n, [
        f"{m.name} {m.versions} v{m.latest_version} {m.latest_status} "
        f"deployed {m.deployed_versions} last {m.last_job.type if m.last_job else '-'}"
        for m in views
    ]


def test_listing_versions_takes_the_same_statements_for_one_version_as_for_three(
    deck: Deck, engine: Engine, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recording ended jobs is not what is counted here (it runs at most once a second).
    monkeypatch.setattr(deck, "settle", lambda every=1.0: None)
    first = deck.train(project, "scripted", "train", {"lines": 1})
    assert engine.run_until_idle(30)
    one, shown = statements(deck, project)
    assert shown == ["scripted v1 trained train"]
    for _ in range(2):
        deck.train(project, "scripted", "train", {"lines": 1})
        assert engine.run_until_idle(30)
    version = deck.job(first.id).version
    assert version
    deck.evaluate(version, "test")
    assert engine.run_until_idle(30)
    three, shown = statements(deck, project)
    # Each version shows its own latest job: v1 its evaluation, the others their training.
    assert shown == [
        "scripted v3 trained train",
        "scripted v2 trained train",
        "scripted v1 evaluated evaluate",
    ]
    assert three == one


def test_listing_models_takes_the_same_statements_however_many_models_it_shows(
    deck: Deck, engine: Engine, project: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deck, "settle", lambda every=1.0: None)
    before, shown = models_shown(deck, project)
    names = [line.split()[0] for line in shown]
    assert all(line.endswith("0 vNone None deployed [] last -") for line in shown), shown
    shutil.copytree(repo / "models" / "scripted", repo / "models" / "later")
    deck.train(project, "later", "train", {"lines": 1})
    deck.train(project, "scripted", "train", {"lines": 1})
    assert engine.run_until_idle(30)
    deploy(deck, engine, approved_version(deck, engine, project))  # scripted's second version
    after, shown = models_shown(deck, project)
    # Each model shows its own versions and its own newest job, not the project's.
    expected = {name: f"{name} 0 vNone None deployed [] last -" for name in names}
    expected["later"] = "later 1 v1 trained deployed [] last train"
    expected["scripted"] = "scripted 2 v2 deployed deployed [2] last deploy"
    assert shown == [expected[name] for name in sorted(expected)]
    assert len(shown) == len(names) + 1
    assert after == before
