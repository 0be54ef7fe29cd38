"""Pilot tests of a team's TUI: ``a``/``x`` dimmed with the service's reason when the
project's rules refuse this user (four eyes), and the History screen (``h``): the timeline,
and the deployments active at a chosen moment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from deploy_support import add_fast_stages
from tui_support import screen_text, wait_for

from core.clock import FakeClock
from core.engine import Engine
from core.errors import ModelDeckError
from core.service import Deck
from core.store import Store
from tui.app import ModelDeckApp
from tui.screens.history import AtForm, HistoryScreen
from tui.screens.project import ProjectScreen
from tui.tabs.models import ModelsPane
from tui.widgets import DeckTable

SIZE = (120, 40)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def deck_as(home: Path, who: str, clock: FakeClock) -> Deck:
    store = Store(home, clock=clock)
    store.actor = lambda: who  # type: ignore[method-assign]
    return Deck(store=store)


def settle(deck: Deck) -> None:
    engine = Engine(deck, workers=2)
    try:
        assert engine.run_until_idle(60)
    finally:
        engine.shutdown()  # its fork server too: none left behind


@pytest.fixture
def trained(home: Path, repo: Path, project: str) -> tuple[Deck, Deck, str, FakeClock]:
    """trainer1 trained and evaluated a version; four eyes are required in ``proj``."""
    add_fast_stages(repo)
    clock = FakeClock(START)
    trainer = deck_as(home, "trainer1", clock)
    reviewer = deck_as(home, "reviewer1", clock)
    job = trainer.train(project, "scripted", "train", {"lines": 1})
    settle(trainer)
    version = trainer.job(job.id).version
    assert version
    clock.advance(minutes=5)
    trainer.evaluate(version, "test")
    settle(trainer)
    trainer.team.set_rules(project, four_eyes=True)
    return trainer, reviewer, version, clock


async def models_on(app: ModelDeckApp, pilot: object, version: str, who: str) -> ModelsPane:
    """The Models tab, its data shown to ``who``, its cursor on ``version``'s row."""
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))  # type: ignore[arg-type]
    pane = app.screen.query_one(ModelsPane)
    table = pane.query_one(DeckTable)
    await wait_for(pilot, lambda: version in table.rows and pane.who == who)  # type: ignore[arg-type]
    table.move_cursor(row=table.get_row_index(version))
    await wait_for(pilot, lambda: pane.current is not None)  # type: ignore[arg-type]
    return pane


def app_for(deck: Deck) -> ModelDeckApp:
    return ModelDeckApp(deck, project="proj", run_engine=False, poll=0.25)


async def test_four_eyes_dim_approve_and_reject_for_the_trainer(
    trained: tuple[Deck, Deck, str, FakeClock],
) -> None:
    trainer, reviewer, version, _clock = trained
    with pytest.raises(ModelDeckError) as refusal:  # what the service says
        trainer.approve(version, "mine")
    app = app_for(trainer)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        pane = await models_on(app, pilot, version, "trainer1")
        assert pane.check_action("approve", ()) is None  # dimmed
        assert pane.check_action("reject", ()) is None
        assert pane.refusal("approve") == f"scripted v1: {refusal.value}"
        assert pane.check_action("evaluate", ()) is True  # the other verbs are not
        await pilot.press("a")  # says why in a toast, opens no dialog
        await wait_for(pilot, lambda: "trainer1 trained" in screen_text(app))  # the toast
        assert isinstance(app.screen, ProjectScreen)
        assert trainer.version(version).status == "evaluated"
        # The rules change (in another session): the key comes back on the next poll.
        reviewer.team.set_rules("proj", four_eyes=False)
        await wait_for(pilot, lambda: pane.check_action("approve", ()) is True)
    trainer.close()
    reviewer.close()


async def test_the_reviewer_may_approve_from_the_tui(
    trained: tuple[Deck, Deck, str, FakeClock],
) -> None:
    trainer, reviewer, version, _clock = trained
    app = app_for(reviewer)
    async with app.run_test(size=SIZE) as pilot:
        pane = await models_on(app, pilot, version, "reviewer1")
        assert pane.check_action("approve", ()) is True
        titles = [title for title, _help, _run in app.screen.palette_commands()]
        assert titles == ["Approve scripted v1", "Reject scripted v1"]
    trainer.close()
    reviewer.close()


async def test_history_screen(trained: tuple[Deck, Deck, str, FakeClock]) -> None:
    trainer, reviewer, version, clock = trained
    clock.advance(minutes=2)
    reviewer.approve(version, "beats the baseline")
    settle(reviewer)
    clock.advance(minutes=8)
    reviewer.deploy(version, "score")
    settle(reviewer)
    clock.advance(minutes=50)
    reviewer.retire(reviewer.deployments("proj")[0].id, "replaced")
    settle(reviewer)
    app = app_for(reviewer)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        table = screen.query_one("#history-table", DeckTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        kinds = [str(table.get_row_at(i)[1]) for i in range(4)]
        assert kinds == ["retired", "deployed", "approved", "rules"]  # newest first

        def moment() -> str:
            return screen_text(app)

        await wait_for(pilot, lambda: "(now): 0 deployment(s)" in moment())
        table.move_cursor(row=1)  # deployed
        await pilot.press("enter")
        await wait_for(pilot, lambda: "1 deployment(s)" in moment())
        text = moment()
        assert "after deployed scripted v1" in text
        assert "by trainer1 on train" in text
        assert "by reviewer1: beats the baseline" in text
        assert "by reviewer1" in text.split("deployed", 2)[-1]
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, AtForm))
        app.screen.query_one("#at").value = "not a time"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: "ISO 8601" in str(app.screen.query_one("#form-error").render())
        )
        app.screen.query_one("#at").value = "2026-03-02T10:10+01:00"  # 09:10 UTC: before
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen)
        await wait_for(pilot, lambda: "(typed): 0 deployment(s)" in moment())
    trainer.close()
    reviewer.close()


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_history_keeps_who_did_it_when_narrow(
    trained: tuple[Deck, Deck, str, FakeClock], size: tuple[int, int]
) -> None:
    """At 80 columns, and at 60, with a long reason, each entry still says who made it, and
    the reason is cut with … (not by the screen's edge)."""
    trainer, reviewer, version, _clock = trained
    reviewer.approve(version, "holds up on the holdout set " * 8)
    settle(reviewer)
    app = app_for(reviewer)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        table = app.screen.query_one("#history-table", DeckTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        await wait_for(pilot, lambda: "reviewer1" in screen_text(app))
        [header] = [line for line in screen_text(app).splitlines() if "version" in line]
        assert " by " in header and "why" in header
        [reason] = [line for line in screen_text(app).splitlines() if "reviewer1  hold" in line]
        assert reason.rstrip(" ▁▂▃▄▅▆▇█▊▎▌").endswith("…"), reason
        if size[0] == 80:
            assert "set four eyes" in screen_text(app)  # a rules entry's short part first
    trainer.close()
    reviewer.close()
