"""The footer recomposes once for the binding changes that come before its next refresh
(opening a project changes them 7-8 times: focus, tab, rows, keys), and still shows every
change: one after its recompose gets a recompose of its own."""

from __future__ import annotations

from tui_support import screen_text, wait_for

from core.service import Deck
from tui.app import ModelDeckApp
from tui.screens.project import ProjectScreen
from tui.widgets import DeckFooter, DeckTable


def footer_text(app: ModelDeckApp) -> str:
    return screen_text(app).split("\n")[-1]


async def test_binding_changes_before_a_refresh_recompose_the_footer_once(
    deck: Deck, project: str
) -> None:
    app = ModelDeckApp(deck, project=project, run_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await wait_for(pilot, lambda: "t Train" in footer_text(app))  # the Models tab's keys
        await pilot.pause(0.3)  # the screen's own changes done
        footer = app.screen.query_one(DeckFooter)
        recomposed: list[int] = []
        original = footer.recompose

        async def counted() -> None:
            recomposed.append(1)
            await original()

        footer.recompose = counted  # type: ignore[method-assign]
        for _ in range(5):
            app.screen.refresh_bindings()
        await pilot.pause(0.2)
        assert len(recomposed) == 1
        assert "q Quit" in footer_text(app)

        app.screen.refresh_bindings()  # after that recompose: one more
        await pilot.pause(0.2)
        assert len(recomposed) == 2
        await pilot.press("2")  # the Jobs tab: its keys, in one recompose or more
        await wait_for(pilot, lambda: "S Stop all" in footer_text(app))
        assert "t Train" not in footer_text(app)


async def test_enter_is_offered_where_it_opens_something(deck: Deck, project: str) -> None:
    """The Datasets tab has nothing to open: no Open key; a model with no versions yet says
    so when it is opened."""
    app = ModelDeckApp(deck, project=project, run_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await wait_for(pilot, lambda: "⏎ Open" in footer_text(app))  # models (no versions)
        await wait_for(pilot, lambda: "scripted" in screen_text(app))  # its rows are in
        await pilot.press("enter")
        said = "clf has no versions yet: t trains one"
        await wait_for(pilot, lambda: any(n.message == said for n in app._notifications))
        await pilot.press("4")  # Datasets
        datasets = app.screen.query_one("#datasets-table", DeckTable)
        await wait_for(pilot, lambda: datasets.row_count == 3)  # train, test, score
        await wait_for(pilot, lambda: "Open" not in footer_text(app))
        await pilot.press("1")
        await wait_for(pilot, lambda: "⏎ Open" in footer_text(app))


async def test_a_recompose_lost_with_another_screen_does_not_freeze_the_footer(
    deck: Deck, project: str
) -> None:
    """A recompose scheduled while another screen is active goes to that screen's callbacks
    (Textual hands them to the active screen) and is lost if it is dismissed first. The
    footer then waited for it forever: every tab showed the Models tab's keys. Its screen's
    resumption now shows its keys again."""
    app = ModelDeckApp(deck, project=project, run_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await wait_for(pilot, lambda: "t Train" in footer_text(app))
        await pilot.pause(0.3)
        screen = app.screen
        footer = screen.query_one(DeckFooter)
        footer._recompose_due = True  # scheduled, and its callback lost with another screen
        await pilot.press("question_mark")  # the keys help, over the project
        await wait_for(pilot, lambda: app.screen is not screen)
        # it lists the key the footer shows for Quit, not its hidden twin ctrl+q
        await wait_for(pilot, lambda: "Keys — " in screen_text(app))
        help_lines = [" ".join(line.split()) for line in screen_text(app).splitlines()]
        assert any("█ q Quit █" in line for line in help_lines), help_lines
        assert not any("^q Quit" in line for line in help_lines)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("2")
        await wait_for(pilot, lambda: "S Stop all" in footer_text(app))
        assert "t Train" not in footer_text(app)


async def test_a_narrow_footer_keeps_keys_and_quit(deck: Deck, project: str) -> None:
    """At 60 columns the footer leaves keys out from its right until the rest fit, never
    ``? Keys`` and ``q Quit`` (the screen's edge cut them off); wider, the keys come back."""
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await wait_for(pilot, lambda: footer_text(app).rstrip().endswith("? Keys q Quit"))
        assert "d Deploy" not in footer_text(app)
        await pilot.resize_terminal(120, 20)
        await wait_for(pilot, lambda: "d Deploy ? Keys q Quit" in footer_text(app))
        await pilot.resize_terminal(50, 20)
        await wait_for(pilot, lambda: footer_text(app).rstrip().endswith("? Keys q Quit"))
        assert "x Reject" not in footer_text(app)
