"""What the snapshot tests share: a UTC display, a fixed data home that runs take turns on,
and waiting until a screen shows its data before its picture is taken."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tui.app import ModelDeckApp
from tui.widgets import DeckTable

SIZE = (100, 30)


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


def fixed_home(lock: Path, build: Callable[[], Path]) -> Iterator[Path]:
    """Fixed data at a fixed path (paths show on screen): two runs on one machine take
    turns instead of rebuilding it under each other."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield build()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


async def settle(
    pilot: Pilot, condition: Callable[[], Any], timeout: float = 10.0, measure: bool = True
) -> None:
    """Wait until the screen shows its data (loaded on threads), then let it draw."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the screen did not load its data")
        await pilot.pause(0.05)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    if measure:
        await measure_tables(pilot)


async def measure_tables(pilot: Pilot) -> None:
    """Column widths are measured when a table next goes idle; a busy test machine may not
    give it that moment before the picture is taken, so measure now (every screen)."""
    for table in [t for screen in pilot.app.screen_stack for t in screen.query(DeckTable)]:
        table._new_rows.update(table.rows)
        table._require_update_dimensions = True
        await table._on_idle(None)  # type: ignore[arg-type]
        table._clear_caches()  # rows rendered at the old widths must not be reused
        table.refresh(layout=True)
    await pilot.pause(0.2)


def steady_cursor(app: ModelDeckApp) -> None:
    """A text field's cursor blinks: a picture taken later on a busy machine would catch it
    off. Keep it on (shown as it is the moment after a key)."""
    for field in app.screen.query(Input):
        field.cursor_blink = False


def rows(app: ModelDeckApp, selector: str) -> int:
    found = app.screen.query(selector)
    return found.first(DeckTable).row_count if found else 0


def engine_shown(app: ModelDeckApp) -> bool:
    return app.engine_status != ""
