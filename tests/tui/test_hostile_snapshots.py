"""Pictures of the screens of a project whose every user field holds Rich markup and escape
sequences (tests/tui/hostile_data.py): the text shows literally, control characters as
visible stand-ins (``^[``), nothing styled by the user's brackets."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hostile_data as H
import pytest
import snapshot_support
from snapshot_support import (
    SIZE,
    engine_shown,
    fixed_home,
    rows,
    steady_cursor,
    utc_display,  # noqa: F401  (an autouse fixture)
)
from textual.pilot import Pilot

from core.service import Deck
from tui.app import ModelDeckApp
from tui.logview import LogPane
from tui.modals import ReasonPrompt, RetirePrompt
from tui.screens.event import EventScreen
from tui.screens.job import JobScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable

ROOT = Path(tempfile.gettempdir()) / "modeldeck-hostile-snapshots"  # paths show on screen


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    yield from fixed_home(ROOT.parent / "modeldeck-hostile-snapshots.lock", lambda: H.build(ROOT))


@pytest.fixture
def deck(home: Path) -> Iterator[Deck]:
    d = H.deck_at_now(home)
    yield d
    d.close()


def app_for(deck: Deck, project: str | None = H.PROJECT) -> ModelDeckApp:
    return ModelDeckApp(deck, project=project, run_engine=False, poll=0.1)


async def settle(pilot: Pilot, condition: Callable[[], Any]) -> None:
    """Wait until the screen shows its data, then let it draw (tables as they measure)."""
    await snapshot_support.settle(pilot, condition, measure=False)


def test_hostile_projects(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck, project=None)

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#projects") == 1 and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize(
    ("key", "table", "count"),
    [
        ("1", "#models-table", 3),
        ("2", "#jobs-table", 11),
        ("3", "#deployments-table", 1),
        ("4", "#datasets-table", 2),
    ],
)
def test_hostile_tabs(snap_compare: Any, deck: Deck, key: str, table: str, count: int) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press(key)
        await settle(pilot, lambda: rows(app, table) == count and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_hostile_job_screen(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    job = next(j for j in reversed(deck.jobs(H.PROJECT, job_type="train", limit=10)))

    async def ready(pilot: Pilot) -> None:
        app.open_job(job.id)
        await settle(
            pilot,
            lambda: (
                isinstance(app.screen, JobScreen)
                and bool(app.screen.query(LogPane))
                and len(app.screen.query_one(LogPane).lines) > 0
                and rows(app, "#events") > 3
            ),
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("kind", ["progress", "failed"])
def test_hostile_event_screen(snap_compare: Any, deck: Deck, kind: str) -> None:
    app = app_for(deck)
    job = next(j for j in deck.jobs(H.PROJECT, job_type="train", limit=10) if j.error)
    event = next(e for e in deck.events(job.id) if e.kind == kind)

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))
        app.push_screen(EventScreen(event, job))
        await settle(pilot, lambda: isinstance(app.screen, EventScreen))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_hostile_version_screen(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    version = next(v for v in deck.versions(H.PROJECT) if v.status == "deployed")

    async def ready(pilot: Pilot) -> None:
        app.push_screen(VersionScreen(version.id))
        await settle(
            pilot,
            lambda: (
                isinstance(app.screen, VersionScreen)
                and app.screen.detail is not None
                and rows(app, "#lineage") > 0
            ),
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_hostile_approve_dialog(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    evaluated = next(v for v in deck.versions(H.PROJECT) if v.status == "evaluated")

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))
        table = app.screen.query_one("#models-table", DeckTable)
        table.move_cursor(row=table.get_row_index(evaluated.id))
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        steady_cursor(app)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_hostile_retire_question(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot, lambda: rows(app, "#deployments-table") == 1 and engine_shown(app))
        await pilot.press("R")
        await settle(pilot, lambda: isinstance(app.screen, RetirePrompt))
        steady_cursor(app)  # its reason field has the focus

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
