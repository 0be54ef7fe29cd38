"""The Jobs tab of a project with more jobs than a page: the first screenful at once, then
the count of all, the rest of the page once the cursor (or the view) nears the last row read;
paging with ``]``/``[`` reaches the oldest job and comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select
from tui_support import wait_for

from core.models import Job, Project
from core.service import Deck
from tui.app import ModelDeckApp
from tui.screens.project import ProjectScreen
from tui.tabs.jobs import FIRST_PAINT, LOOKAHEAD, PAGE, JobsPane
from tui.widgets import DeckTable

SIZE = (120, 40)
JOBS = 2 * PAGE + 50  # two whole pages and a part


def add_jobs(deck: Deck, project: str, n: int) -> list[str]:
    """``n`` finished jobs written straight to the database (no engine needed to show them);
    their ids, newest first (as the tab lists them)."""
    with deck.reader() as s:
        pid = s.exec(select(Project.id).where(Project.name == project)).one()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": f"j-{i:012x}",
            "project_id": pid,
            "type": "train" if i % 2 else "evaluate",
            "status": "completed" if i % 3 else "failed",
            "trigger": "manual",
            "actor": "pager",
            "params": {},
            "outputs": [],
            "created_at": base + timedelta(seconds=i),
            "started_at": base + timedelta(seconds=i),
            "finished_at": base + timedelta(seconds=i + 2),
            "exit_code": 0,
            "next_seq": 1,
            "events_offset": 0,
        }
        for i in range(n)
    ]
    with deck.engine.begin() as conn:
        conn.execute(Job.__table__.insert(), rows)  # type: ignore[attr-defined]
    return [r["id"] for r in reversed(rows)]


def shown(app: ModelDeckApp) -> list[str]:
    table = app.screen.query_one("#jobs-table", DeckTable)
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def window_text(app: ModelDeckApp) -> str:
    return str(app.screen.query_one("#jobs-window").render())


def jobs_pane(app: ModelDeckApp) -> JobsPane | None:
    if not isinstance(app.screen, ProjectScreen):
        return None
    panes = app.screen.query(JobsPane)
    return panes.first() if panes else None


def counted(app: ModelDeckApp, total: int | None) -> bool:
    """Whether the Jobs tab has shown its first fetch (None), or counted ``total`` jobs."""
    pane = jobs_pane(app)
    return pane is not None and pane.shown_once and (total is None or pane.total == total)


async def test_more_jobs_than_a_page(deck: Deck, project: str) -> None:
    ids = add_jobs(deck, project, JOBS)
    app = ModelDeckApp(deck, project=None, run_engine=False, poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.push_screen(ProjectScreen(project, tab="jobs"))
        await wait_for(pilot, lambda: (p := jobs_pane(app)) is not None and p.shown_once)
        pane = jobs_pane(app)
        assert pane is not None
        # At once: the newest screenful (its count comes with the next poll).
        assert shown(app) == ids[:FIRST_PAINT]
        assert len(pane.jobs) == FIRST_PAINT

        # Then the count of all, the rows read still a screenful.
        await wait_for(pilot, lambda: pane.total == JOBS)
        assert shown(app) == ids[:FIRST_PAINT]
        assert window_text(app).startswith(f"jobs 1-{FIRST_PAINT} of {JOBS}")
        table = app.screen.query_one("#jobs-table", DeckTable)
        assert table.has_focus

        # Moving down to the end of what was read reads the rest of the page.
        for _ in range(FIRST_PAINT - LOOKAHEAD):
            await pilot.press("down")
        await wait_for(pilot, lambda: len(shown(app)) == PAGE)
        assert shown(app) == ids[:PAGE]
        assert table.current_key == ids[FIRST_PAINT - LOOKAHEAD]  # the cursor stays put
        assert window_text(app).startswith(f"jobs 1-{PAGE} of {JOBS}")

        # Older pages, down to the last job.
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: shown(app) == ids[PAGE : 2 * PAGE])
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: shown(app) == ids[2 * PAGE :])
        assert window_text(app).startswith(f"jobs {2 * PAGE + 1}-{JOBS} of {JOBS}")
        await pilot.press("end")
        await wait_for(pilot, lambda: table.current_key == ids[-1])  # the oldest job
        assert ids[-1] == "j-000000000000"

        # No page older than the last: the key is refused, the window stays.
        await pilot.press("right_square_bracket")
        await pilot.pause(0.5)
        assert shown(app) == ids[2 * PAGE :]

        # And back to the newest.
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: shown(app) == ids[PAGE : 2 * PAGE])
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: shown(app) == ids[:PAGE])
        assert window_text(app).startswith(f"jobs 1-{PAGE} of {JOBS}")


async def test_a_filter_pages_and_counts_what_it_matches(deck: Deck, project: str) -> None:
    ids = add_jobs(deck, project, JOBS)
    evaluations = [i for i in ids if int(i[2:], 16) % 2 == 0]
    assert len(evaluations) > PAGE
    app = ModelDeckApp(deck, project=None, run_engine=False, poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.push_screen(ProjectScreen(project, tab="jobs"))
        await wait_for(pilot, lambda: (p := jobs_pane(app)) is not None and p.total == JOBS)
        await pilot.press("slash")
        app.screen.query_one("#jobs-filter").value = "type:evaluate"
        await pilot.press("enter")
        await wait_for(pilot, lambda: shown(app) == evaluations[:PAGE])
        await wait_for(pilot, lambda: f"of {len(evaluations)}" in window_text(app))
        assert "filtered" in window_text(app)
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: shown(app) == evaluations[PAGE:])
        assert ids[-1] in shown(app)  # the oldest job is an evaluation (its number is 0)
        # escape clears the filter first; then it goes back, as everywhere
        screen = app.screen
        await pilot.press("escape")
        await wait_for(pilot, lambda: shown(app) == ids[:PAGE])
        assert app.screen is screen and "filtered" not in window_text(app)
        assert not app.screen.query_one("#jobs-filter").display
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is not screen)


async def test_the_rest_of_the_page_comes_into_view(deck: Deck, project: str) -> None:
    """Scrolling the view (a mouse wheel) reads the rest of the page, the cursor left where
    it was; a terminal taller than the first screenful reads it as soon as that is drawn."""
    ids = add_jobs(deck, project, JOBS)
    for size, scroll in (((120, 40), True), ((120, FIRST_PAINT + 20), False)):
        app = ModelDeckApp(deck, project=None, run_engine=False, poll=0.25)
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.2)
            app.push_screen(ProjectScreen(project, tab="jobs"))
            await wait_for(pilot, lambda app=app: counted(app, None))
            if scroll:
                await wait_for(pilot, lambda app=app: counted(app, JOBS))
                assert shown(app) == ids[:FIRST_PAINT]
                table = app.screen.query_one("#jobs-table", DeckTable)
                # A wheel scrolls only what is laid out: the table sizes its rows when idle,
                # and a scroll before that is clamped to the top (it was, on a loaded machine).
                await wait_for(pilot, lambda table=table: table.max_scroll_y > 0, timeout=40)
                table.scroll_to(y=table.max_scroll_y, animate=False)
                assert table.scroll_y > 0
            # The page's rest is read after a paint: slow on a loaded machine.
            await wait_for(pilot, lambda app=app: shown(app) == ids[:PAGE], timeout=40)
            assert app.screen.query_one("#jobs-table", DeckTable).current_key == ids[0]
