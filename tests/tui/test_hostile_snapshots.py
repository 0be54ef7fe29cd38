"""Pictures of the screens of a project whose every user field holds Rich markup and escape
sequences (tests/tui/hostile_data.py): the text shows literally, control characters as
visible stand-ins (``^[``), nothing styled by the user's brackets."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hostile_data as H
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from core.service import Deck
from tui.app import ModelDeckApp
from tui.logview import LogPane
from tui.modals import ConfirmDialog, ReasonPrompt
from tui.screens.event import EventScreen
from tui.screens.job import JobScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable

SIZE = (100, 30)
ROOT = Path(tempfile.gettempdir()) / "modeldeck-hostile-snapshots"  # paths show on screen


@pytest.fixture(scope="module", autouse=True)
def utc_display() -> Iterator[None]:
    """Times are shown in the local zone: make it UTC for stable pictures."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """Built at a fixed path: two runs on one machine take turns."""
    with open(ROOT.parent / "modeldeck-hostile-snapshots.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield H.build(ROOT)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def deck(home: Path) -> Iterator[Deck]:
    d = H.deck_at_now(home)
    yield d
    d.close()


def app_for(deck: Deck, project: str | None = H.PROJECT) -> ModelDeckApp:
    return ModelDeckApp(deck, project=project, run_engine=False, poll=0.1)


def rows(app: ModelDeckApp, selector: str) -> int:
    found = app.screen.query(selector)
    return found.first(DeckTable).row_count if found else 0


async def settle(pilot: Pilot, condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until the screen shows its data (loaded on threads), then let it draw."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the screen did not load its data")
        await pilot.pause(0.05)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)


def engine_shown(app: ModelDeckApp) -> bool:
    return app.engine_status != ""


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
        for field in app.screen.query(Input):  # a blinking cursor, caught off on a busy machine
            field.cursor_blink = False
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_hostile_retire_question(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot, lambda: rows(app, "#deployments-table") == 1 and engine_shown(app))
        await pilot.press("R")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmDialog))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
