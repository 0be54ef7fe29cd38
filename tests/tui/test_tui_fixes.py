"""TUI fixes from a code review and a field trial: approve/reject read on a worker, the
version screen marks only an evaluation "judged", one headline metric rule for the Models
tab and the approve dialog, a refused key says why, footers that fit 80 columns, and the
deployments' ids.

Pilot tests on real jobs run by a real engine (the scripted model), on a real database."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPTED_TRAINING, write_model
from textual.widgets._toast import Toast, ToastRack
from tui_support import extend_scripted, run_all, screen_text, wait_for

from core.service import Deck
from tui.app import ModelDeckApp
from tui.modals import ConfirmDialog, ReasonPrompt
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.version import VersionScreen
from tui.tabs.models import ModelsPane
from tui.widgets import DeckTable

SIZE = (120, 40)

# A regressor's evaluation: mae first, as scikit-learn-style code often returns them.
REGRESSION = """
def evaluate(context):
    return {"mae": 49.9218, "rmse": 61.5, "r2": 0.2311}
"""


def toasts(app: ModelDeckApp) -> list[str]:
    return [t.render().plain for t in app.screen.query(Toast)]


async def models_row(app: ModelDeckApp, pilot: Any, version: str) -> ModelsPane:
    """The Models tab with its cursor on ``version``'s row."""
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
    pane = app.screen.query_one(ModelsPane)
    table = pane.query_one(DeckTable)
    await wait_for(pilot, lambda: version in table.rows)
    table.move_cursor(row=table.get_row_index(version))
    await wait_for(pilot, lambda: pane.current is not None and pane.current.id == version)
    return pane


@pytest.fixture
def evaluated(deck: Deck, project: str, repo: Path) -> str:
    """An evaluated version of the scripted model."""
    extend_scripted(repo)
    train = deck.train(project, "scripted", "train", {})
    run_all(deck)
    version = deck.job(train.id).version or ""
    deck.evaluate(version, "test")
    run_all(deck)
    assert deck.version(version).status == "evaluated"
    return version


@pytest.fixture
def regressor(deck: Deck, project: str, repo: Path) -> str:
    """An evaluated version of a regressor whose evaluation names mae before r2."""
    write_model(repo, "reg", SCRIPTED_TRAINING, **{"evaluation.py": REGRESSION})
    train = deck.train(project, "reg", "train", {})
    run_all(deck)
    version = deck.job(train.id).version or ""
    deck.evaluate(version, "test")
    run_all(deck)
    assert deck.version(version).status == "evaluated"
    return version


# -- 1: approve/reject read the version's evaluations on a worker, not on the UI thread --


@pytest.mark.parametrize("key", ["a", "x"])
async def test_approve_and_reject_read_the_database_off_the_ui_thread(
    deck: Deck, evaluated: str, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    threads: dict[str, int] = {}

    def spied(name: str) -> Callable[..., Any]:
        real = getattr(deck, name)

        def call(*args: Any, **kw: Any) -> Any:
            threads[name] = threading.get_ident()
            return real(*args, **kw)

        return call

    for name in ("version_detail", "evaluation"):
        monkeypatch.setattr(deck, name, spied(name))
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await models_row(app, pilot, evaluated)
        ui_thread = threading.get_ident()
        threads.clear()
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        assert set(threads) == {"version_detail", "evaluation"}
        assert ui_thread not in threads.values()
        # The dialog still offers the evaluation it is judged on.
        judged = deck.evaluation(evaluated)
        assert judged is not None and app.screen.chosen == judged.job_id


# -- 2: the version screen marks only an evaluation "judged" -----------------------------


async def test_a_version_without_evaluation_marks_no_column_judged(
    deck: Deck, project: str
) -> None:
    train = deck.train(project, "scripted", "train", {})  # records {"loss": 0.5}
    run_all(deck)
    version = deck.job(train.id).version or ""
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(VersionScreen(version))
        await wait_for(
            pilot, lambda: isinstance(app.screen, VersionScreen) and app.screen.detail is not None
        )
        await wait_for(pilot, lambda: "no evaluation yet" in screen_text(app))
        grid = app.screen.query_one("#version-metrics", DeckTable)
        titles = [str(getattr(c.label, "plain", c.label)) for c in grid.ordered_columns]
        assert any("(training)" in t for t in titles)
        assert not any("judged" in t for t in titles), titles
        assert "judged" not in screen_text(app).replace("judged on", "")


async def test_the_evaluation_a_version_is_judged_on_is_still_marked(
    deck: Deck, evaluated: str
) -> None:
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(VersionScreen(evaluated))
        await wait_for(
            pilot, lambda: isinstance(app.screen, VersionScreen) and app.screen.detail is not None
        )
        grid = app.screen.query_one("#version-metrics", DeckTable)
        titles = [str(getattr(c.label, "plain", c.label)) for c in grid.ordered_columns]
        assert titles[1] == "test judged"  # the evaluation, first, marked
        assert [t for t in titles if "judged" in t] == ["test judged"]


# -- 3: one headline metric for the Models tab and the approve dialog ---------------------


async def test_the_approve_dialog_shows_the_models_tab_headline(deck: Deck, regressor: str) -> None:
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        pane = await models_row(app, pilot, regressor)
        table = pane.query_one(DeckTable)
        cell = table.get_row(regressor)[list(table.columns).index("metric")]
        assert cell.plain == "r2 0.2311 on test"
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await wait_for(pilot, lambda: "on test: r2 0.2311" in screen_text(app))
        assert "mae" not in screen_text(app)


# -- 4: a key whose action is refused says why -------------------------------------------


async def test_deploy_on_an_evaluated_version_says_why(deck: Deck, evaluated: str) -> None:
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        pane = await models_row(app, pilot, evaluated)
        assert pane.check_action("deploy", ()) is None  # still dimmed
        await pilot.press("d")
        await wait_for(pilot, lambda: bool(toasts(app)))
        label = deck.version(evaluated).label
        assert toasts(app) == [
            f"{label}: cannot deploy a version that is evaluated (it must be approved or deployed)"
        ]
        assert isinstance(app.screen, ProjectScreen)  # nothing opened
        assert deck.deployments("proj") == []


async def test_refused_keys_on_retired_things_say_why(deck: Deck, evaluated: str) -> None:
    deck.approve(evaluated, "ok")
    run_all(deck)
    deck.deploy(evaluated, "score")
    run_all(deck)
    deck.retire(deck.deployments("proj")[0].id)
    run_all(deck)
    assert deck.version(evaluated).status == "retired"
    jobs_before = len(deck.jobs("proj", limit=100))
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await models_row(app, pilot, evaluated)
        await pilot.press("e")
        await wait_for(pilot, lambda: bool(toasts(app)))
        assert "cannot evaluate a version that is retired" in toasts(app)[0]
        assert isinstance(app.screen, ProjectScreen)
        await pilot.press("e")  # each press says it again
        await wait_for(pilot, lambda: len(toasts(app)) == 2)
        # The other tabs' dimmed keys say why too: run now on a retired deployment, stop
        # on a finished job.
        await pilot.press("3")
        deployments = app.screen.query_one("#deployments-table", DeckTable)
        await wait_for(pilot, lambda: deployments.row_count == 1)
        await pilot.press("r")
        short = deck.deployments("proj")[0].short_id
        await wait_for(pilot, lambda: any(f"deployment {short}" in t for t in toasts(app)))
        assert any(t.endswith("is retired") for t in toasts(app))
        await pilot.press("2")
        jobs = app.screen.query_one("#jobs-table", DeckTable)
        await wait_for(pilot, lambda: jobs.row_count == jobs_before)
        await pilot.press("s")
        await wait_for(pilot, lambda: any("nothing to stop" in t for t in toasts(app)))
        assert isinstance(app.screen, ProjectScreen)  # no confirmation asked
        job = deck.job(jobs.current_key or "")
        app.open_job(job.id)  # and on the job's own screen
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.job)
        app.clear_notifications()
        await pilot.press("s")
        await wait_for(pilot, lambda: bool(toasts(app)))
        assert toasts(app) == [f"job {job.short_id} is {job.status}: nothing to stop"]
        assert isinstance(app.screen, JobScreen)
    assert len(deck.jobs("proj", limit=100)) == jobs_before


# -- 5: every screen's footer fits 80 columns, ? Keys and q Quit included ----------------


def footer_line(app: ModelDeckApp) -> str:
    return screen_text(app).split("\n")[-1]


async def footer_fits(pilot: Any, where: str, cut: list[str]) -> None:
    """Wait until the footer shows ``? Keys`` and ``q Quit``; else note it in ``cut``."""
    app: ModelDeckApp = pilot.app
    try:
        await wait_for(
            pilot,
            lambda: "? Keys" in footer_line(app) and "q Quit" in footer_line(app),
            timeout=3,
        )
    except AssertionError:
        cut.append(f"{where}: {footer_line(app)!r}")


async def test_every_footer_fits_80_columns(deck: Deck, evaluated: str) -> None:
    from tui.screens.deployment import DeploymentScreen
    from tui.screens.event import EventScreen
    from tui.screens.projects import ProjectsScreen

    deck.approve(evaluated, "ok")
    run_all(deck)
    deck.deploy(evaluated, "score", "0 6 * * *", "UTC")
    run_all(deck)
    dep = deck.deployments("proj")[0]
    job = deck.jobs("proj", job_type="evaluate")[0]
    cut: list[str] = []
    app = ModelDeckApp(deck, project=None, poll=0.25)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        await wait_for(pilot, lambda: app.screen.query_one(DeckTable).row_count == 1)
        await footer_fits(pilot, "projects", cut)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await models_row(app, pilot, evaluated)
        for key, tab in (("1", "models"), ("2", "jobs"), ("3", "deployments"), ("4", "datasets")):
            await pilot.press(key)
            await pilot.pause()
            await footer_fits(pilot, f"{tab} tab", cut)
        app.push_screen(VersionScreen(evaluated))
        await wait_for(pilot, lambda: isinstance(app.screen, VersionScreen))
        await footer_fits(pilot, "version", cut)
        app.push_screen(DeploymentScreen(dep))
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentScreen))
        await footer_fits(pilot, "deployment", cut)
        app.open_job(job.id)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await footer_fits(pilot, "job", cut)
        await pilot.press("slash")  # a search adds "n Next match" to the footer
        app.screen.query_one("#log-search").value = "evaluating"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Next match" in footer_line(app), timeout=5)
        await footer_fits(pilot, "job, searched", cut)
        app.push_screen(EventScreen(deck.events(job.id)[0], deck.job(job.id)))
        await wait_for(pilot, lambda: isinstance(app.screen, EventScreen))
        await footer_fits(pilot, "event", cut)
    assert not cut, "footers cut at 80 columns:\n" + "\n".join(cut)


# -- 6: the Deployments tab shows each deployment's short id -----------------------------


async def test_two_deployments_of_a_version_on_a_dataset_differ_by_their_id(
    deck: Deck, evaluated: str
) -> None:
    deck.approve(evaluated, "ok")
    run_all(deck)
    for schedule in ("0 6 * * *", "0 7 * * *"):  # at 80 columns the schedule is left out
        deck.deploy(evaluated, "score", schedule, "UTC")
        run_all(deck)
    deps = deck.deployments("proj")
    assert len(deps) == 2 and deps[0].dataset == deps[1].dataset == "score"
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("3")
        table = app.screen.query_one("#deployments-table", DeckTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        # The columns that fit are chosen once the table has its width (narrower at first).
        await wait_for(pilot, lambda: str(table.ordered_columns[0].key.value) == "id")
        for d in deps:
            assert table.get_row(d.id)[0].plain == d.short_id
            assert d.id.startswith(d.short_id) and len(d.short_id) == len("dep-") + 8
        await wait_for(pilot, lambda: all(d.short_id in screen_text(app) for d in deps))
        # At 80 columns it is the first column to go: the deployment's screen shows it.
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "id" not in [str(c.key.value) for c in table.ordered_columns])
        assert "version" in [str(c.key.value) for c in table.ordered_columns]


async def test_the_job_screen_names_the_jobs_host_and_says_when_it_falls_silent(
    deck: Deck, project: str
) -> None:
    """A job another host runs: the screen names that host, and once its engines have not
    beaten for a while (killed, its host down), says so: its log has stopped for that."""
    from datetime import timedelta

    from sqlalchemy import insert, update

    from core.models import EngineHeartbeat, Job

    job = deck.train(project, "clf", "train")
    now = deck.now()
    beat = {"pid": 4242, "workers": 2, "running": 1, "version": "0", "started_at": now}
    with deck.writer() as s:
        s.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(status="running", host="far-away", pid=4243, started_at=now)
        )
        s.execute(
            # Beating (a last sight ahead of the clock: fresh however slow this run is).
            insert(EngineHeartbeat),
            [{"id": "far", "host": "far-away", "last_seen": now + timedelta(hours=1), **beat}],
        )
        s.commit()
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.open_job(job.id)
        await wait_for(pilot, lambda: "far-away pid 4243" in screen_text(app))
        assert "not heard from" not in screen_text(app)
        with deck.writer() as s:  # its engine stops beating: as a minute later
            gone = deck.now() - timedelta(seconds=60)
            beats = update(EngineHeartbeat).where(EngineHeartbeat.host == "far-away")
            s.execute(beats.values(last_seen=gone))
            s.commit()
        await wait_for(pilot, lambda: "not heard from for" in screen_text(app))
        said = re.search(
            r"host far-away not heard from for \dm\d\ds: its engine may be gone", screen_text(app)
        )
        assert said is not None, screen_text(app)
        assert deck.job(job.id).status == "running"  # 2 minutes before it is lost
        # A stop: recorded, and the toast says why it will not end the job for now.
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: any("no engine" in " ".join(t.split()) for t in toasts(app)))
        [said] = [" ".join(t.split()) for t in toasts(app) if "no engine" in " ".join(t.split())]
        assert f"the stop of job {job.id} is recorded, but its host far-away has no engine" in said
        assert deck.job(job.id).status == "stopping"


def ended_job(deck: Deck, project: str, log: str, status: str, **values: Any) -> tuple[Any, Path]:
    """A training that ended with ``status`` (and ``values``) without running, and its log
    file holding ``log``: a job's screen on a log of the test's making."""
    from sqlalchemy import update

    from core.models import Job

    job = deck.train(project, "clf", "train")
    now = deck.now()
    with deck.writer() as s:
        s.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(status=status, started_at=now, finished_at=now, **values)
        )
        s.commit()
    path = deck.log_path(job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(log)
    return job, path


async def test_a_lost_jobs_log_keeps_being_read_and_says_its_host_was_lost(
    deck: Deck, project: str
) -> None:
    """A job failed as lost: its log is what its host had copied; an engine starting there
    again copies the rest, so the screen goes on reading it, and says why it may be short."""
    from datetime import timedelta

    from sqlalchemy import insert

    from core.models import EngineHeartbeat

    job, log = ended_job(
        deck, project, "one\ntwo\nthree\n", "failed", error="lost", host="far-away"
    )
    back = deck.now() + timedelta(minutes=5)  # when it is heard from again
    beat = {"pid": 1, "workers": 2, "running": 0, "version": "0", "started_at": back}
    beat["last_seen"] = back
    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        app.open_job(job.id)
        await wait_for(pilot, lambda: "lines 1-3 of 3" in screen_text(app))
        await wait_for(
            pilot, lambda: "host far-away lost: the rest when it is back" in screen_text(app)
        )
        with log.open("a") as fh:  # what it wrote after the others stopped hearing from it
            fh.write("four\n")
        await wait_for(pilot, lambda: "lines 1-4 of 4" in screen_text(app))
        # The host is back: it copies the rest as it starts beating; the screen reads to the
        # end and no longer says the host is lost.
        with log.open("a") as fh:
            fh.write("five\n")
        with deck.writer() as s:
            s.execute(insert(EngineHeartbeat), [{"id": "far", "host": "far-away", **beat}])
            s.commit()
        await wait_for(pilot, lambda: "end of log · lines 1-5 of 5" in screen_text(app))
        assert "far-away lost" not in screen_text(app)


async def test_a_long_model_name_is_cut_and_leaves_room_for_the_others(
    deck: Deck, project: str, repo: Path
) -> None:
    """A model name of 200 characters (allowed) at 80 columns: cut with …, its version,
    status and metric still on screen (it pushed them off)."""
    long = "m" * 200
    write_model(repo, long, SCRIPTED_TRAINING)
    deck.train(project, long, "train")
    run_all(deck)
    app = ModelDeckApp(deck, project=project, run_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        table = app.screen.query_one("#models-table", DeckTable)
        await wait_for(pilot, lambda: table.row_count >= 2)
        # Drawn whole (the rows come on a thread, and are drawn after): then all of it.
        await wait_for(
            pilot, lambda: all(t in screen_text(app) for t in ("mmmm…", "v1", "trained"))
        )
        assert {"version", "status", "metric"} <= set(table.shown_columns)
    # Wide, the name is cut to 40 cells before any column goes for it: all of them shown.
    app = ModelDeckApp(deck, project=project, run_engine=False)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        table = app.screen.query_one("#models-table", DeckTable)
        await wait_for(pilot, lambda: table.row_count >= 2)
        await wait_for(pilot, lambda: "m" * 39 + "…" in screen_text(app))
        assert set(table.shown_columns) == {
            "model",
            "version",
            "status",
            "metric",
            "last job",
            "created",
            "approval",
        }


def test_an_event_s_long_word_is_shown_whole(deck: Deck, project: str, repo: Path) -> None:
    """A word longer than the line (a URL, a path, an error's argument) goes on the next
    line: the event screen promises the whole message, and cut it with an ellipsis."""
    from rich.console import Console

    from tui.screens.event import event_table

    word = "w" * 200
    write_model(repo, "loud", f"def train(context):\n    raise ValueError('boom {word}')\n")
    job = deck.train(project, "loud", "train", {})
    run_all(deck)
    failed = next(e for e in deck.events(job.id) if e.kind == "failed")
    console = Console(width=78, color_system=None)
    with console.capture() as drawn:
        console.print(event_table(failed, deck.job(job.id)))
    runs = re.findall(r"w{10,}", drawn.get())
    assert "".join(runs) == word and "…" not in drawn.get(), drawn.get()


async def test_toasts_never_draw_over_the_keys_help(deck: Deck, project: str) -> None:
    """A toast raised while `?` is open waits until it closes (Textual drew it over the
    dialog's border), then shows on the screen underneath; the dialog is whole meanwhile."""
    # No engine: the top bar says how the engine starts, and that changed under the dialog.
    app = ModelDeckApp(deck, project=project, poll=0.25, run_engine=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        # The help removes its toast rack by Textual's id for it: the screen under still has
        # one by that id, the help none at all (else a renamed rack drew over it again).
        assert len(app.screen_stack[-2].query("#textual-toastrack")) == 1
        assert not app.screen.query(ToastRack)
        before = screen_text(app)
        app.notify("queued [b]train[/b] job j-0000", timeout=30)
        assert app.held_toasts == ["queued [b]train[/b] job j-0000"]  # held, not shown
        await pilot.pause(0.5)
        assert toasts(app) == [] and screen_text(app) == before  # the dialog as it was
        assert "queued" not in screen_text(app)
        assert app.held_toasts == ["queued [b]train[/b] job j-0000"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await wait_for(pilot, lambda: toasts(app) == ["queued [b]train[/b] job j-0000"])
        assert app.held_toasts == []


@pytest.mark.parametrize("leaves_by", ["pop_screen", "switch_screen"])
async def test_toasts_held_by_the_keys_help_show_however_it_leaves(
    deck: Deck, project: str, leaves_by: str
) -> None:
    """Not only dismissed: popped, or switched for another screen (a job opened in its
    place), the help shows the toasts it held, once."""
    job = deck.train(project, "scripted", "train", {})
    app = ModelDeckApp(deck, project=project, run_engine=False, poll=0.25)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        app.notify("held while the help is open", timeout=30)
        assert app.held_toasts == ["held while the help is open"]
        if leaves_by == "pop_screen":
            app.pop_screen()
            shown_on: type = ProjectScreen
        else:
            app.open_job(job.id, replace=True)  # the help's place
            shown_on = JobScreen
        await wait_for(pilot, lambda: isinstance(app.screen, shown_on))
        await wait_for(pilot, lambda: toasts(app) == ["held while the help is open"])
        assert app.held_toasts == []
        await pilot.pause(0.3)
        assert toasts(app) == ["held while the help is open"]  # once


async def test_wrap_turned_on_keeps_the_top_line_at_the_top(deck: Deck, project: str) -> None:
    """`w` at the top of a log whose first line is long: its start stays in view (the view
    went to the tail of the wrapped line, as if three lines down)."""
    from tui.logview import LogPane

    text = "BEGIN" + "x" * 3000 + "TAIL\n" + "".join(f"row {i}\n" for i in range(50))
    job, _ = ended_job(deck, project, text, "completed")
    app = ModelDeckApp(deck, project="proj", poll=0.25, run_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_job(job.id)
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.query(LogPane)
        )
        pane = app.screen.query_one(LogPane)
        await wait_for(pilot, lambda: pane.total == 51)
        pane.log_widget.focus()
        await pilot.press("home")
        await wait_for(pilot, lambda: "BEGIN" in screen_text(app))
        await pilot.press("w")
        await wait_for(pilot, lambda: pane.wrap)
        await pilot.pause(0.3)
        assert pane.log_widget.scroll_y == 0 and "BEGIN" in screen_text(app)
        await pilot.press("w")  # and back: still the top
        await pilot.pause(0.3)
        assert pane.log_widget.scroll_y == 0 and "BEGIN" in screen_text(app)


LONG = "churn-gradient-boosted-trees-with-a-very-long-name-" * 2 + "x"


async def test_a_long_version_label_is_cut_before_its_number(
    deck: Deck, project: str, repo: Path
) -> None:
    """A long model name at 80x24: the Deployments tab keeps every column in view (the label
    cut with …, its number kept), and so do the compare screen's headers and a form's
    title; they used to push columns out of view, or lose the version's number."""
    extend_scripted(repo)
    shutil.copytree(repo / "models" / "scripted", repo / "models" / LONG)
    jobs = [deck.train(project, LONG, "train") for _ in range(2)]
    run_all(deck)
    # Numbered as they ended (two workers): v1 is the one numbered 1.
    made = [deck.job(j.id).version for j in jobs]
    assert all(made)
    v1, v2 = sorted(made, key=lambda v: deck.version(v).number)  # type: ignore[arg-type]
    deck.evaluate(v1, "test")
    deck.evaluate(v2, "test")
    run_all(deck)
    deck.approve(v1, "fine")
    run_all(deck)
    deck.deploy(v1, "score")
    run_all(deck)
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await wait_for(pilot, lambda: app.screen.query_one("#models-table", DeckTable).row_count)
        await pilot.press("3")
        table = app.screen.query_one("#deployments-table", DeckTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await wait_for(pilot, lambda: "… v1" in screen_text(app))
        await wait_for(pilot, lambda: "drift" in table.shown_columns)
        assert {"version", "status", "next run", "last run"} <= set(table.shown_columns)
        assert table.max_scroll_x == 0  # nothing out of view sideways
        app.open_compare([v1, v2])
        await wait_for(pilot, lambda: "… v2" in screen_text(app), timeout=30)
        header = next(line for line in screen_text(app).splitlines() if "… v2" in line)
        assert "… v1" in header
        assert app.screen.query_one("#compare-table", DeckTable).max_scroll_x == 0
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("1")
        models = app.screen.query_one(ModelsPane)
        await wait_for(pilot, lambda: models.current is not None and models.current.id == v2)
        await pilot.press("a")
        await wait_for(pilot, lambda: "Approve churn-gradient" in screen_text(app))
        [title] = [line for line in screen_text(app).splitlines() if "Approve churn" in line]
        assert "… v2" in title, title


MANY_EVENTS = """
def train(context):
    for i in range(1000):
        context.record_metrics({f"note{i}": "text"})  # skipped: an event each
    return {"accuracy": 1.0}
"""


async def test_a_job_of_a_thousand_events_keeps_its_events_pane_in_view(
    deck: Deck, project: str, repo: Path
) -> None:
    """At 80x24, events numbered in four digits: the events pane still shows the event and
    its message, cut with … (with three digits its message went out of view sideways)."""
    write_model(repo, "chatty", MANY_EVENTS)
    job = deck.train(project, "chatty", "train")
    run_all(deck)
    assert len(deck.events(job.id)) > 1000
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        app.open_job(job.id)
        tables = lambda: list(app.screen.query("#events").results(DeckTable))  # noqa: E731
        await wait_for(pilot, lambda: any(t.row_count > 1000 for t in tables()))
        [events] = tables()
        await wait_for(pilot, lambda: "message" in screen_text(app))
        assert events.shown_columns == ["seq", "kind", "message"]
        assert events.max_scroll_x == 0


async def test_a_model_whose_training_failed_says_so_when_narrow(
    deck: Deck, project: str, repo: Path
) -> None:
    """A model without versions whose training failed: at 60x20 (at 80 with long names: the
    last job's column left out) its row says the training failed, not only "no versions"."""
    write_model(repo, "broken", "def train(context):\n    raise RuntimeError('no')\n")
    job = deck.train(project, "broken", "train")
    run_all(deck)
    assert deck.job(job.id).status == "failed"
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        table = app.screen.query_one("#models-table", DeckTable)
        await wait_for(pilot, lambda: "model:broken" in table.rows)
        assert "last job" not in table.shown_columns
        row = next(line for line in screen_text(app).splitlines() if " broken " in line)
        assert "train ✗" in row and "failed" in row, row
