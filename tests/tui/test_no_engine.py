"""What the TUI says when no engine serves: next runs marked "(no engine)" on the Deployments
tab, and the quit dialog's word on schedules."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from deploy_support import add_fast_stages, approved_version, deploy
from tui_support import wait_for

from core.engine import Engine
from core.service import Deck
from tui.app import ModelDeckApp
from tui.modals import QuitDialog
from tui.screens.project import ProjectScreen
from tui.tabs.deployments import DeploymentsPane
from tui.widgets import DeckTable

SIZE = (120, 40)


@pytest.fixture
def scheduled(deck: Deck, project: str, repo: Path) -> str:
    add_fast_stages(repo)
    engine = Engine(deck, workers=2)
    dep = deploy(deck, engine, approved_version(deck, engine, project), "0 6 * * *")
    engine.release_lease()
    return dep


async def next_run_shown(deck: Deck, dep: str) -> str:
    app = ModelDeckApp(deck, project="proj", run_engine=False, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("3")
        table = app.screen.query_one(DeploymentsPane).query_one(DeckTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        return str(table.get_cell(dep, "next run"))


async def test_next_run_says_no_engine_while_none_serves(deck: Deck, scheduled: str) -> None:
    shown = await next_run_shown(deck, scheduled)
    assert shown.endswith(" (no engine)") and "06:00 UTC" in shown
    engine = Engine(deck, workers=1)
    engine.start()  # an engine serves (another process, as far as the TUI knows): it
    try:  # renews its lease however long the app takes to start on a loaded machine
        deadline = time.monotonic() + 60
        while not engine.holds_lease and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert engine.holds_lease
        assert "(no engine)" not in await next_run_shown(deck, scheduled)
    finally:
        engine.shutdown()


async def test_the_mark_goes_once_an_engine_serves_while_the_tab_is_shown(
    deck: Deck, scheduled: str
) -> None:
    """An engine that takes the lease after the tab's first fetch changes nothing else (no
    job, no event): the tab still drops the mark, without being opened again."""
    app = ModelDeckApp(deck, project="proj", run_engine=False, poll=0.1)
    engine = Engine(deck, workers=1)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
            await pilot.press("3")
            table = app.screen.query_one(DeploymentsPane).query_one(DeckTable)
            await wait_for(pilot, lambda: table.row_count == 1)
            assert str(table.get_cell(scheduled, "next run")).endswith(" (no engine)")
            engine.tick()
            assert engine.holds_lease
            await wait_for(
                pilot, lambda: "(no engine)" not in str(table.get_cell(scheduled, "next run"))
            )
    finally:
        engine.release_lease()


async def test_quit_dialog_mentions_schedules(deck: Deck) -> None:
    app = ModelDeckApp(deck, run_engine=False, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.push_screen(QuitDialog(2))
        await wait_for(pilot, lambda: bool(app.screen.query(".question")))
        text = " ".join(str(app.screen.query_one(".question").render()).split())
        assert "2 jobs are still running" in text
        assert "Schedules fire only while an engine runs" in text
        assert "`modeldeck engine`" in text
