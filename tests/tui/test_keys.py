"""Pilot tests: each key of the TUI, on real jobs run by the real engine (the scripted model)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SCRIPTED_TRAINING, write_model
from tui_support import extend_scripted, run_all, screen_text, wait_for

from core.lifecycle import FINAL_STATUSES
from core.service import Deck
from tui.app import ModelDeckApp
from tui.logview import LogPane
from tui.modals import ConfirmDialog, QuitDialog, ReasonPrompt, RetirePrompt
from tui.screens.event import EventScreen
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.projects import ProjectsScreen
from tui.tabs.deployments import DeploymentsPane
from tui.tabs.jobs import JobsPane
from tui.tabs.models import ModelsPane
from tui.widgets import DeckTable

SIZE = (120, 40)


def make_app(deck: Deck, project: str | None = "proj") -> ModelDeckApp:
    return ModelDeckApp(deck, project=project, poll=0.25)


def final(deck: Deck, job_id: str) -> bool:
    return deck.job(job_id).status in FINAL_STATUSES


def job_screen_ready(app: ModelDeckApp) -> bool:
    return isinstance(app.screen, JobScreen) and bool(app.screen.query(LogPane))


def stop_leftovers(deck: Deck) -> None:
    for j in deck.jobs(limit=100):
        if j.status in ("queued", "running"):
            deck.stop(j.id)


def table_keys(app: ModelDeckApp, selector: str) -> list[str]:
    table = app.screen.query_one(selector, DeckTable)
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


async def open_job_log(app: ModelDeckApp, pilot, job_id: str) -> LogPane:  # type: ignore[no-untyped-def]
    """The job's screen opened from the project screen: its log pane."""
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
    app.open_job(job_id)
    await wait_for(pilot, lambda: job_screen_ready(app))
    return app.screen.query_one(LogPane)


async def open_jobs_tab(app: ModelDeckApp, pilot) -> JobsPane:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
    await pilot.press("2")
    return app.screen.query_one(JobsPane)


async def test_projects_enter_opens_a_project(deck: Deck, project: str) -> None:
    app = make_app(deck, project=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table_keys(app, "#projects") == ["proj"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        assert app.screen.project == "proj"
        await pilot.press("escape")
        assert isinstance(app.screen, ProjectsScreen)


async def test_empty_state_and_new_project(deck: Deck, repo: Path) -> None:
    app = make_app(deck, project=None)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#empty").display)
        assert screen.check_action("demo", ()) is True
        await pilot.press("n")
        form = app.screen
        form.query_one("#name").value = "bad name"
        form.query_one("#repo").value = str(repo)
        form.query_one("#repo").focus()
        await pilot.press("enter")  # the next field (the OK button), not a submission
        await pilot.pause(0.2)
        assert app.screen is form and deck.projects() == []
        assert str(form.query_one("#form-error").render()) == ""
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: "without spaces" in str(app.screen.query_one("#form-error").render())
        )
        name = app.screen.query_one("#name")
        name.value = "fresh"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        await wait_for(pilot, lambda: table_keys(app, "#projects") == ["fresh"])
        assert [p.name for p in deck.projects()] == ["fresh"]
        # With a project, d (the demo) is dimmed, and pressing it says why.
        await wait_for(pilot, lambda: screen.check_action("demo", ()) is None)
        await pilot.press("d")
        said = "adds the demo project beside them"
        await wait_for(pilot, lambda: any(said in n.message for n in app._notifications))
        assert [p.name for p in deck.projects()] == ["fresh"]
        # The demo project there already: d says so.
        deck.add_project("demo", repo)
        screen.poll(force=True)
        await wait_for(pilot, lambda: "demo" in table_keys(app, "#projects"))
        await pilot.press("d")
        said = "the demo project is here already: demo (enter opens it)"
        await wait_for(pilot, lambda: any(said == n.message for n in app._notifications))


async def test_stop_from_the_job_screen(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"sleep": 30})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await open_jobs_tab(app, pilot)
        await wait_for(pilot, lambda: table_keys(app, "#jobs-table") == [job.id])
        await pilot.press("enter")
        await wait_for(pilot, lambda: job_screen_ready(app))
        screen = app.screen
        await wait_for(pilot, lambda: "sleeping" in screen.query_one(LogPane).lines)
        assert screen.check_action("stop", ()) is True
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: final(deck, job.id))
        assert deck.job(job.id).status == "cancelled"
        # The header shows it within the poll interval, and stop is then refused (dimmed).
        await wait_for(pilot, lambda: screen.job is not None and screen.job.status == "cancelled")
        assert screen.check_action("stop", ()) is None


async def test_stop_from_the_jobs_tab_and_stop_all(deck: Deck, project: str) -> None:
    first = deck.train(project, "scripted", "train", {"sleep": 30})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_jobs_tab(app, pilot)
        await wait_for(pilot, lambda: pane.current is not None and pane.current.status == "running")
        await pilot.press("s")
        await pilot.press("n")  # "no" leaves it running
        assert deck.job(first.id).status == "running"
        await pilot.press("s")
        await pilot.press("escape")  # and so does escape
        assert not isinstance(app.screen, ConfirmDialog)
        assert deck.job(first.id).status == "running"
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: final(deck, first.id))
        # Two more, stopped together with S.
        more = [deck.train(project, "scripted", "train", {"sleep": 30}) for _ in range(2)]
        await wait_for(pilot, lambda: all(deck.job(j.id).status == "running" for j in more))
        await wait_for(pilot, lambda: pane.check_action("stop_all", ()) is True)
        await pilot.press("S")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # enter answers yes, like y
        await wait_for(pilot, lambda: all(final(deck, j.id) for j in more))
        await wait_for(pilot, lambda: pane.check_action("stop_all", ()) is None)


async def test_filter_the_jobs_tab(deck: Deck, project: str) -> None:
    ok = deck.train(project, "scripted", "train", {})
    bad = deck.train(project, "scripted", "train", {"fail": "boom"})
    run_all(deck)
    assert deck.job(bad.id).status == "failed"
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await open_jobs_tab(app, pilot)
        await wait_for(pilot, lambda: set(table_keys(app, "#jobs-table")) == {ok.id, bad.id})
        await pilot.press("slash")
        app.screen.query_one("#jobs-filter").value = "status:failed"
        await pilot.press("enter")
        await wait_for(pilot, lambda: table_keys(app, "#jobs-table") == [bad.id])
        await pilot.press("slash")
        app.screen.query_one("#jobs-filter").value = "type:nonsense"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert table_keys(app, "#jobs-table") == [bad.id]  # a bad filter keeps the last one
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: len(table_keys(app, "#jobs-table")) == 2)
        # Words match what a row shows, hyperparameters and dataset too, each on its own.
        await pilot.press("slash")
        app.screen.query_one("#jobs-filter").value = "boom scripted train"
        await pilot.press("enter")
        await wait_for(pilot, lambda: table_keys(app, "#jobs-table") == [bad.id])
    assert [j.id for j in deck.jobs(text="fail")] == [bad.id]  # its hyperparameter's name
    assert [j.id for j in deck.jobs(text="fail=boom")] == [bad.id]  # as the row shows it
    assert deck.jobs(text="hyperparameters") == []  # what params hold and no row shows
    assert {j.id for j in deck.jobs(text="train scripted")} == {ok.id, bad.id}  # the dataset
    assert deck.jobs(text="scripted nowhere") == []


async def test_follow_toggle_scroll_pauses_and_end_resumes(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 3000, "sleep": 30})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_job_log(app, pilot, job.id)
        await wait_for(pilot, lambda: pane.total >= 3001 and pane.end == pane.total)
        assert pane.follow
        await pilot.press("f")
        assert not pane.follow
        assert app.screen.query_one("#log-status").render().plain.startswith("paused")
        await pilot.press("f")
        assert pane.follow
        await pilot.press("up")
        assert not pane.follow
        await pilot.press("end")
        await wait_for(pilot, lambda: pane.follow and pane.end == pane.total)
        assert len(pane.lines) <= 1000  # a window, not the whole log
        await pilot.press("w")
        assert pane.wrap
        deck.stop(job.id)
        await wait_for(pilot, lambda: final(deck, job.id))


TICKER = """
import time


def train(context):
    for i in range(60):
        print(f"burst {i:03d}")
    for i in range(int(context.hyperparameters.get("ticks", 40))):
        print(f"tick {i:03d}", flush=True)
        time.sleep(0.1)
    raise RuntimeError("the last line")
"""


def log_bottom_shows_the_end(app: ModelDeckApp, pane: LogPane) -> bool:
    """What the user sees: the log's last line on screen, the view scrolled to its end."""
    log = pane.log_widget
    shown = screen_text(app)
    return bool(pane.lines) and log.is_vertical_scroll_end and pane.lines[-1] in shown


async def test_the_log_follows_its_end_on_screen_whatever_it_held_and_on_resize(
    deck: Deck, project: str, repo: Path
) -> None:
    """A log already taller than the pane when the job screen opens keeps its newest line in
    view as lines come, after the terminal is resized too; the job's end shows its last line."""
    write_model(repo, "ticker", TICKER)
    job = deck.train(project, "ticker", "train", {"ticks": 50})
    app = make_app(deck)
    async with app.run_test(size=(80, 24)) as pilot:
        log = deck.log_path(job.id)
        await wait_for(pilot, lambda: log.exists() and "tick 005" in log.read_text())
        app.open_job(job.id)
        await wait_for(pilot, lambda: job_screen_ready(app))
        pane = app.screen.query_one(LogPane)
        for mark in ("tick 015", "tick 025"):
            await wait_for(pilot, lambda mark=mark: mark in pane.lines)
            await wait_for(pilot, lambda: log_bottom_shows_the_end(app, pane), timeout=3)
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: "tick 035" in pane.lines)
        await wait_for(pilot, lambda: log_bottom_shows_the_end(app, pane), timeout=3)
        await wait_for(pilot, lambda: final(deck, job.id), timeout=30)
        await wait_for(pilot, lambda: "RuntimeError: the last line" in pane.lines[-1])
        status = app.screen.query_one("#log-status")
        await wait_for(pilot, lambda: "end of log" in status.render().plain)
        await wait_for(pilot, lambda: log_bottom_shows_the_end(app, pane), timeout=3)


async def test_the_log_status_says_which_lines_are_in_view(deck: Deck, project: str) -> None:
    """At the end of a log longer than the pane, the status names the lines in view, not
    all that were read ("lines 1-34 of 34" with lines 25 to 34 on screen); home, the first."""
    job = deck.train(project, "scripted", "train", {"lines": 200})
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_job_log(app, pilot, job.id)
        await wait_for(pilot, lambda: pane.total >= 200 and pane.end == pane.total)
        status = app.screen.query_one("#log-status")

        def in_view() -> tuple[int, int] | None:
            found = re.search(r"lines ([\d,]+)-([\d,]+) of ", status.render().plain)
            return (
                (int(found[1].replace(",", "")), int(found[2].replace(",", ""))) if found else None
            )

        log = pane.log_widget

        def rows() -> int:
            return log.scrollable_content_region.height

        await wait_for(pilot, lambda: in_view() == (pane.total - rows() + 1, pane.total))
        await pilot.press("home")
        await wait_for(pilot, lambda: in_view() == (1, rows()))
        assert log.scroll_y == 0


async def test_the_log_status_fits_80_columns_and_forgets_a_match_the_view_left(
    deck: Deck, project: str
) -> None:
    """At 80x24 the log's status line fits its pane whole (it was cut with … after a search),
    leaving out its least wanted parts, and says how many lines of the ended job are below
    the view; after home it no longer says where the last match
    was (it did), and n searches on from the top."""
    job = deck.train(project, "scripted", "train", {"lines": 2500})
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_job_log(app, pilot, job.id)
        await wait_for(pilot, lambda: pane.total >= 2500 and pane.end == pane.total)
        status = app.screen.query_one("#log-status")

        def line() -> str:
            return status.render().plain

        await pilot.press("slash")
        app.screen.query_one("#log-search").value = "line 999"
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.match == 999 and "match at line 1,000" in line())
        shown = line()
        assert "…" not in shown and len(shown) <= status.content_size.width
        assert "end follows" not in shown  # the least wanted part
        # The job has ended: what is below the view is not "newer" (it said so)
        assert shown.split()[1:3] == ["more", "below"], shown

        def below() -> int:
            return pane.total - pane._in_view()[1]

        await wait_for(pilot, lambda: line().startswith(f"{below():,} more below"))
        assert below() > 1000
        await pilot.resize_terminal(200, 24)  # room for all of it
        await wait_for(pilot, lambda: "end follows" in line() and "lines " in line())
        await pilot.resize_terminal(80, 24)
        pane.log_widget.focus()
        await wait_for(pilot, lambda: "match at line 1,000" in line())
        await pilot.press("pageup", "pageup")  # the match leaves the view: forgotten
        await wait_for(pilot, lambda: "match at" not in line())
        await pilot.press("n")  # from the view on: the same line again
        await wait_for(pilot, lambda: pane.match == 999 and "match at line 1,000" in line())
        await pilot.press("home")
        await wait_for(pilot, lambda: pane.start == 0 and pane.log_widget.scroll_y == 0)
        await wait_for(pilot, lambda: "match at" not in line())
        assert pane.match is None
        await pilot.press("n")  # from the first line on: the first line with it
        await wait_for(pilot, lambda: pane.match == 999 and "match at line 1,000" in line())


async def test_a_finished_jobs_log_opens_on_its_last_line(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 100, "fail": "the very end"})
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_job_log(app, pilot, job.id)
        await wait_for(pilot, lambda: pane.end == pane.total > 100)
        assert pane.lines[-1] == "RuntimeError: the very end"
        await wait_for(pilot, lambda: log_bottom_shows_the_end(app, pane), timeout=3)


async def test_search_and_next_error_read_the_whole_log(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 2500, "fail": "boom"})
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_job_log(app, pilot, job.id)
        await wait_for(pilot, lambda: pane.total > 2500 and pane.end == pane.total)
        assert pane.start > 999  # the window holds the newest lines only
        await pilot.press("slash")
        app.screen.query_one("#log-search").value = "line 999"
        await pilot.press("enter")  # wraps to the top to find it
        await wait_for(pilot, lambda: pane.match == 999)
        assert not pane.follow and pane.start <= 999 < pane.end  # older lines were read back
        assert pane.lines[999 - pane.start] == "line 999"
        await pilot.press("e")
        await wait_for(pilot, lambda: pane.match is not None and pane.match >= 2500)
        assert "Traceback" in pane.lines[pane.match - pane.start]
        # home: the log's first line, not the window's
        pane.log_widget.focus()
        await pilot.press("home")
        await wait_for(pilot, lambda: pane.start == 0 and "line 0" in screen_text(app))
        assert not pane.follow and pane.log_widget.scroll_y == 0


WIDE = """
def train(context):
    for i in range(1200):
        fields = "\\t".join(["x" * 20] * 15)  # drawn with its tabs expanded
        print(f"row {i:04d}\\t{fields}" + (" needle" if i == 20 else ""))
"""


async def test_a_match_far_to_the_right_is_scrolled_into_view(
    deck: Deck, project: str, repo: Path
) -> None:
    write_model(repo, "wide", WIDE)
    job = deck.train(project, "wide", "train")
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_job_log(app, pilot, job.id)
        await wait_for(pilot, lambda: pane.total >= 1200)
        assert pane.start > 20  # the match is outside the window read first
        await pilot.press("slash")
        app.screen.query_one("#log-search").value = "needle"
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.match == 20)
        await wait_for(pilot, lambda: "needle" in screen_text(app))
        assert pane.log_widget.scroll_x > 250


async def test_event_detail_and_rerun(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {})
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        app.open_job(job.id)
        await wait_for(pilot, lambda: job_screen_ready(app))
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#events", DeckTable).row_count >= 3)
        screen.query_one("#events", DeckTable).focus()
        screen.query_one("#events", DeckTable).move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventScreen))
        assert app.screen.event.kind == "created"
        details = str(app.screen.query_one("#event-details").render())
        assert '"trigger": "manual"' in details
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("r")
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobScreen) and app.screen is not screen
        )
        again = app.screen.job_id
        assert again != job.id
        await wait_for(pilot, lambda: final(deck, again))
        assert (
            deck.job(again).params["hyperparameters"] == deck.job(job.id).params["hyperparameters"]
        )


@pytest.fixture
def evaluated(deck: Deck, project: str, repo: Path) -> list[str]:
    """Two evaluated versions of the scripted model."""
    extend_scripted(repo)
    trains = [deck.train(project, "scripted", "train", {}) for _ in range(2)]
    run_all(deck)
    versions = [deck.job(t.id).version for t in trains]
    for v in versions:
        deck.evaluate(v, "test")
    run_all(deck)
    assert all(deck.version(v).status == "evaluated" for v in versions)
    return versions


async def test_approve_and_reject_need_a_reason(deck: Deck, evaluated: list[str]) -> None:
    keep, drop = evaluated
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        pane = app.screen.query_one(ModelsPane)
        await wait_for(pilot, lambda: set(evaluated) <= set(table_keys(app, "#models-table")))
        table = pane.query_one(DeckTable)
        table.move_cursor(row=table.get_row_index(keep))
        assert pane.check_action("approve", ()) is True
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await pilot.press("ctrl+s")  # empty: refused, the prompt stays
        assert isinstance(app.screen, ReasonPrompt)
        assert "required" in str(app.screen.query_one("#form-error").render())
        app.screen.query_one("#reason").value = "good enough"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: deck.version(keep).status == "approved")
        assert deck.version(keep).approval.reason == "good enough"
        await wait_for(
            pilot, lambda: pane.current is not None and pane.current.status == "approved"
        )
        assert pane.check_action("approve", ()) is None  # dimmed: approving again is refused
        table.move_cursor(row=table.get_row_index(drop))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        app.screen.query_one("#reason").value = "worse"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: deck.version(drop).status == "rejected")
        assert deck.version(drop).approval.decision == "rejected"


async def test_deploy_run_now_pause_and_retire(deck: Deck, evaluated: list[str]) -> None:
    version = evaluated[0]
    deck.approve(version, "ok")
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        models = app.screen.query_one(ModelsPane)
        await wait_for(pilot, lambda: version in table_keys(app, "#models-table"))
        table = models.query_one(DeckTable)
        table.move_cursor(row=table.get_row_index(version))
        await wait_for(pilot, lambda: models.check_action("deploy", ()) is True)
        await pilot.press("d")
        form = app.screen
        form.query_one("#schedule").value = "not a cron"
        await pilot.pause()
        assert "invalid" in form.query_one("#preview").classes
        await pilot.press("ctrl+s")
        assert app.screen is form  # refused: the schedule is invalid
        form.query_one("#schedule").value = "0 6 * * *"
        await pilot.pause()
        assert "next runs" in str(form.query_one("#preview").render())
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(deck.deployments("proj")) == 1)
        await wait_for(pilot, lambda: deck.deployments("proj")[0].status == "active")
        dep = deck.deployments("proj")[0]
        assert dep.schedule == "0 6 * * *"
        await pilot.press("3")
        pane = app.screen.query_one(DeploymentsPane)
        await wait_for(pilot, lambda: pane.current is not None)
        await pilot.press("r")
        await wait_for(pilot, lambda: len(deck.jobs("proj", job_type="batch_predict")) == 1)
        run = deck.jobs("proj", job_type="batch_predict")[0]
        await wait_for(pilot, lambda: final(deck, run.id))
        assert deck.job(run.id).status == "completed"
        await pilot.press("p")
        await wait_for(pilot, lambda: deck.deployment(dep.id).paused)
        # The key acts on what the row shows: pressed again once it shows the pause.
        await wait_for(pilot, lambda: pane.current is not None and pane.current.paused)
        await pilot.press("p")
        await wait_for(pilot, lambda: not deck.deployment(dep.id).paused)
        await wait_for(pilot, lambda: pane.current is not None and not pane.current.paused)
        # A pause from elsewhere (the CLI, another process) shows without a key press.
        deck.set_schedule(dep.id, paused=True)
        await wait_for(pilot, lambda: pane.current is not None and pane.current.paused)
        deck.set_schedule(dep.id, paused=False)
        await wait_for(pilot, lambda: pane.current is not None and not pane.current.paused)
        await pilot.press("enter")  # its batch prediction jobs
        await wait_for(pilot, lambda: table_keys(app, "#jobs-table") == [run.id])
        await pilot.press("escape")
        await pilot.press("R")  # asks for a reason (optional), as `retire --reason` takes
        assert isinstance(app.screen, RetirePrompt)
        await pilot.press(*"replaced by v2")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: deck.deployment(dep.id).status == "retired")
        assert deck.deployment(dep.id).retire_reason == "replaced by v2"
        await wait_for(pilot, lambda: pane.check_action("run_now", ()) is None)


async def test_retiring_an_on_demand_deployment_does_not_speak_of_a_schedule(
    deck: Deck, evaluated: list[str]
) -> None:
    deck.approve(evaluated[0], "ok")
    run_all(deck)
    deck.deploy(evaluated[0], "score")  # no schedule: run on demand only
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("3")
        pane = app.screen.query_one(DeploymentsPane)
        await wait_for(pilot, lambda: pane.current is not None)
        await pilot.press("R")
        assert isinstance(app.screen, RetirePrompt)
        assert app.screen.question.endswith("It can no longer be run on demand.")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        assert deck.deployments("proj")[0].status == "active"  # escape retired nothing


async def test_jobs_queued_by_the_cli_run_in_the_tui_engine(
    deck: Deck, project: str, cli: Callable[..., object]
) -> None:
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_jobs_tab(app, pilot)
        await wait_for(pilot, lambda: app.engine is not None and app.engine.holds_lease)
        result = await asyncio.to_thread(
            cli, "train", "proj", "scripted", "--dataset", "train", "--detach"
        )
        job_id = result.out.strip()  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: job_id in table_keys(app, "#jobs-table"))
        await wait_for(pilot, lambda: final(deck, job_id))
        assert deck.job(job_id).status == "completed"
        await wait_for(
            pilot, lambda: pane.current is not None and pane.current.status == "completed"
        )


async def test_dimmed_keys_follow_the_lifecycle(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {})
    run_all(deck)
    version = deck.job(job.id).version
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        pane = app.screen.query_one(ModelsPane)
        await wait_for(pilot, lambda: version in table_keys(app, "#models-table"))
        table = pane.query_one(DeckTable)
        table.move_cursor(row=table.get_row_index(version))
        await pilot.pause()
        assert pane.check_action("evaluate", ()) is True
        for refused in ("approve", "reject", "deploy"):
            assert pane.check_action(refused, ()) is None
        bindings = app.screen.active_bindings
        assert bindings["a"].enabled is False and bindings["e"].enabled is True
        await pilot.press("a")
        assert not isinstance(app.screen, ReasonPrompt)


async def test_quit_with_running_jobs_asks(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"sleep": 30})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and job.id in app.engine.running)
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("escape")  # stay
        assert not isinstance(app.screen, QuitDialog)
        await pilot.press("q", "k")  # keep running
        await wait_for(pilot, lambda: not app.is_running)
    assert deck.job(job.id).status == "running"  # it outlives the TUI
    stop_leftovers(deck)
    run_all(deck)
    assert deck.job(job.id).status == "cancelled"


async def test_quit_and_stop_running_jobs(deck: Deck, project: str) -> None:
    job = deck.train(project, "scripted", "train", {"sleep": 30})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and job.id in app.engine.running)
        await pilot.press("q", "s")
        await wait_for(pilot, lambda: not app.is_running)
    assert deck.job(job.id).status == "cancelled"


async def test_ctrl_p_and_colon_open_the_command_palette(deck: Deck, project: str) -> None:
    from textual.command import CommandPalette

    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        for key in ("ctrl+p", "colon"):
            await pilot.press(key)
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))


async def test_table_columns_widen_to_their_cells(deck: Deck, project: str, repo: Path) -> None:
    """Rows first drawn before the columns were measured are drawn again at the new widths
    (they kept the width of the column's title: a repository path cut to 10 characters).
    Wide enough for the whole path: a narrower screen cuts it on purpose, to keep the counts."""
    app = make_app(deck, project=None)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: table_keys(app, "#projects") == ["proj"])
        await wait_for(pilot, lambda: str(repo) in screen_text(app), timeout=5)


async def test_events_fetched_twice_leave_the_cursor_where_it_is(deck: Deck, project: str) -> None:
    """Two overlapping fetches of a job can bring the same events: the second is no news and
    must not move the cursor to the last event (enter then opened the wrong one)."""
    job = deck.train(project, "scripted", "train", {})
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        app.open_job(job.id)
        await wait_for(pilot, lambda: job_screen_ready(app))
        screen = app.screen
        table = screen.query_one("#events", DeckTable)
        await wait_for(pilot, lambda: table.row_count >= 3)
        table.move_cursor(row=1)
        screen.show((deck.job(job.id), deck.events(job.id), None, None))  # a late fetch
        await pilot.pause()
        assert table.cursor_row == 1


async def test_home_and_end_go_to_the_first_and_last_row(deck: Deck, project: str) -> None:
    for _ in range(4):
        deck.train(project, "scripted", "train", {})  # queued: no engine runs them here
    app = ModelDeckApp(deck, project=project, run_engine=False, poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_jobs_tab(app, pilot)
        table = pane.query_one(DeckTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        table.focus()
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == 3)
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor_row == 0)


async def test_the_palette_goes_to_the_job_whose_id_starts_as_typed(
    deck: Deck, project: str, repo: Path
) -> None:
    """A job id's start, typed in the palette, goes to that job: not to one of the recent
    jobs whose title holds the same letters scattered (j-c4db went to j-c58dee94)."""
    from textual.command import CommandPalette

    deck.add_project("other", repo)
    deck.add_dataset("other", "train", repo / "data" / "train.csv", target="label")
    wanted = deck.train("other", "scripted", "train", {})  # not among the project's jobs
    # Recent jobs of the project on screen whose titles hold the typed letters: a model
    # named after them.
    look_alike = f"{wanted.id[:6]}-alike"
    write_model(repo, look_alike, SCRIPTED_TRAINING)
    for _ in range(3):
        deck.train(project, look_alike, "train", {})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*wanted.id[:6])
        await wait_for(pilot, lambda: "Go to job by id" in screen_text(app))
        await pilot.pause(0.3)
        offered = [x for x in screen_text(app).split() if x.startswith("j-")]
        assert offered and all(x.startswith(wanted.id[:6]) for x in offered), offered
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        assert app.screen.job_id == wanted.id
