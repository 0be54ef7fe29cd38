"""What the TUI says when no engine serves: next runs marked "(no engine)" on the Deployments
tab, the quit dialog's word on schedules, and the top bar on a read-only data home."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_support import add_fast_stages, approved_version, deploy
from tui_support import screen_text, wait_for

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


@contextlib.contextmanager
def read_only_mount(home: Path) -> Iterator[Callable[[], None]]:
    """A tmpfs on ``home``, made read-only by the function it gives (tests run as root, whom
    file modes do not stop: a read-only mount stops root too)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a tmpfs needs root, and CI runs as root")
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(home)], check=True)
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
    finally:
        subprocess.run(["umount", str(home)], check=False)
        if os.path.ismount(home):
            subprocess.run(["umount", "-l", str(home)], check=False)


async def test_on_a_read_only_data_home_no_engine_starts_and_the_top_bar_says_why(
    home: Path, repo: Path
) -> None:
    """An engine here would write its heartbeat and lease in the data home, and fail every
    round: the TUI starts none, and its top bar says the home is read-only."""
    with read_only_mount(home) as make_read_only:
        deck = Deck(home=home)
        deck.add_project("proj", repo)
        deck.close()  # closed cleanly: its -wal and -shm files are gone
        make_read_only()
        deck = Deck(home=home)
        try:
            app = ModelDeckApp(deck, poll=0.1)  # would run its own engine on a writable home
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, lambda: "read-only" in app.engine_status)
                assert app.engine is None
                assert app.engine_status == "engine: none serving · data home read-only"
                await wait_for(pilot, lambda: "data home read-only" in screen_text(app))
                assert not deck.warnings, deck.warnings
        finally:
            deck.close()
