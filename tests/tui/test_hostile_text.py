"""Every screen shows user- and job-controlled text literally: Rich markup in it is neither
parsed (``[/oops]`` used to crash the TUI, ``[bold red]x[/]`` to style) nor are its escape
sequences passed to the terminal (window title, OSC 52 clipboard, ``ESC[6n``, screen clear).

Pilot tests on a project built with real jobs (tests/tui/hostile_data.py): each visits a
screen and checks what Textual composed for the terminal, cell by cell."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import hostile_data as H
import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets._toast import Toast
from tui_support import screen_text, wait_for

from core.service import Deck
from core.text import compact, has_controls, printable
from tui.app import ModelDeckApp
from tui.modals import (
    DatasetForm,
    DatasetPick,
    DeployForm,
    ReasonPrompt,
    RetirePrompt,
    TrainForm,
)
from tui.screens.deployment import DeploymentScreen
from tui.screens.event import EventScreen
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable

SIZE = (320, 50)  # wide: a long hostile text fits on one line and can be found whole


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = H.build(tmp_path_factory.mktemp("hostile"))
    deck = H.deck_at_now(home)
    H.add_hostile_lease(deck)
    deck.close()
    return home


@pytest.fixture
def hdeck(hostile_home: Path) -> Iterator[Deck]:
    d = H.deck_at_now(hostile_home)
    yield d
    d.close()


def app_for(deck: Deck, project: str | None = H.PROJECT) -> ModelDeckApp:
    return ModelDeckApp(deck, project=project, run_engine=False, poll=0.1)


def check_screen(app: ModelDeckApp, *texts: str) -> str:
    """No control character reaches the terminal, and each of ``texts`` is shown literally."""
    screen = screen_text(app)
    for line in screen.splitlines():
        assert not has_controls(line), f"a control character reaches the terminal: {line!r}"
    for text in texts:
        assert H.shown(text) in screen, f"{H.shown(text)!r} is not on screen:\n{screen}"
    return screen


async def shows(pilot: Pilot, *texts: str, timeout: float = 10.0) -> str:
    """Wait until each of ``texts`` is on screen (data loads on threads), then check it all."""
    app: ModelDeckApp = pilot.app  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while not all(H.shown(t) in screen_text(app) for t in texts):
        if time.monotonic() > deadline:
            missing = [H.shown(t) for t in texts if H.shown(t) not in screen_text(app)]
            raise AssertionError(f"not on screen: {missing}\n{screen_text(app)}")
        await pilot.pause(0.05)
    await pilot.pause(0.05)
    return check_screen(app, *texts)


async def toast_shows(pilot: Pilot, text: str, timeout: float = 10.0) -> None:
    """Wait for a toast holding ``text`` literally (a toast wraps: its own text is read),
    then check that the screen holds no control character."""
    app: ModelDeckApp = pilot.app  # type: ignore[assignment]

    def toasts() -> list[str]:
        return [toast.render().plain for toast in app.screen.query(Toast)]

    await wait_for(pilot, lambda: any(H.shown(text) in t for t in toasts()), timeout=timeout)
    await pilot.pause(0.05)
    check_screen(app)


def table(app: ModelDeckApp, selector: str) -> DeckTable:
    return app.screen.query_one(selector, DeckTable)


def rows(app: ModelDeckApp, selector: str) -> int:
    found = app.screen.query(selector)
    return found.first(DeckTable).row_count if found else 0


async def test_projects_screen(hdeck: Deck) -> None:
    app = app_for(hdeck, project=None)
    repo = hdeck.project(H.PROJECT).repo
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await shows(pilot, H.PROJECT, repo, f"engine: {H.HOST} pid 4242")


async def test_models_tab_and_its_dialogs(hdeck: Deck) -> None:
    app = app_for(hdeck)
    versions = {v.status: v for v in hdeck.versions(H.PROJECT)}
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await shows(pilot, f"modeldeck / {H.PROJECT}", H.MODEL, H.REASON_APPROVE)
        models = table(app, "#models-table")

        models.move_cursor(row=models.get_row_index(versions["evaluated"].id))
        await pilot.press("a")  # the approve dialog names the version
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await shows(pilot, f"Approve {H.MODEL} v")
        await pilot.press("escape")

        await pilot.press("e")  # the dataset picker lists hostile dataset names
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetPick))
        await shows(pilot, f"Evaluate {H.MODEL} v", H.DATASET)
        await pilot.press("escape")

        await pilot.press("t")  # the pickers list hostile model and dataset names
        await wait_for(pilot, lambda: isinstance(app.screen, TrainForm))
        await shows(pilot, H.MODEL, H.DATASET)
        await pilot.press("escape")

        models.move_cursor(row=models.get_row_index(versions["deployed"].id))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployForm))
        await shows(pilot, f"Deploy {H.MODEL} v", H.SCORE_DATASET)
        app.screen.query_one("#schedule").value = "[/oops] * * * *"  # type: ignore[attr-defined]
        await shows(pilot, "[/oops] * * * *")  # the refusal quotes it
        await pilot.press("escape")


async def test_jobs_tab_filter_refusal(hdeck: Deck) -> None:
    app = app_for(hdeck)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("2")
        await wait_for(pilot, lambda: rows(app, "#jobs-table") == 11)
        await shows(pilot, f"{H.MODEL} v1")
        await pilot.press("slash")
        app.screen.query_one("#jobs-filter").value = "status:[/oops]"  # type: ignore[attr-defined]
        await pilot.press("enter")  # refused: the toast quotes it
        await toast_shows(pilot, "unknown status '[/oops]'")


async def test_deployments_tab_confirmation_toast_and_screen(hdeck: Deck) -> None:
    app = app_for(hdeck)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("3")
        await wait_for(pilot, lambda: rows(app, "#deployments-table") == 1)
        await shows(pilot, f"{H.MODEL} v1", H.SCORE_DATASET, H.SCHEDULE)
        await pilot.press("R")  # the question names the deployment
        await wait_for(pilot, lambda: isinstance(app.screen, RetirePrompt))
        [dep] = hdeck.deployments(H.PROJECT)
        await shows(
            pilot,
            f"Retire deployment {dep.id}?",
            f"version   {H.MODEL} v1",
            f"scores    {H.SCORE_DATASET}",
            f"schedule  {H.SCHEDULE} (Europe/Paris)",
        )
        await pilot.press("escape")
        await pilot.press("r")  # run now: the toast names the job's target
        await toast_shows(pilot, f"({H.MODEL} v1 @")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentScreen))
        await shows(pilot, f"modeldeck / {H.PROJECT} / deployment of {H.MODEL} v1")


async def test_datasets_tab_and_form_error(hdeck: Deck, tmp_path: Path) -> None:
    app = app_for(hdeck)
    paths = [d.path for d in hdeck.datasets(H.PROJECT)]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("4")
        await shows(pilot, H.DATASET, H.SCORE_DATASET, H.TARGET, *paths)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DatasetForm))
        form = app.screen
        form.query_one("#name").value = "more"  # type: ignore[attr-defined]
        form.query_one("#path").value = "[/oops]"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")  # refused: the error quotes the path
        await shows(pilot, "dataset file '[/oops]' does not exist")


def _failed_train(deck: Deck) -> str:
    return next(j.id for j in deck.jobs(H.PROJECT, job_type="train", limit=10) if j.error)


async def test_job_screen_header_log_events_and_search(hdeck: Deck) -> None:
    app = app_for(hdeck)
    job = hdeck.job(_failed_train(hdeck))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.open_job(job.id)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await shows(
            pilot,
            f"modeldeck / {H.PROJECT} / job {job.short_id} (train {H.MODEL})",
            H.MODEL,
            H.DATASET,
            H.ERROR,
            H.OUTPUT,
            H.LOG_LINE,
            H.PROGRESS[:40],  # the events table is narrow: the event screen shows it all
        )
        await pilot.press("slash")
        app.screen.query_one("#log-search").value = "[/nothing]"  # type: ignore[attr-defined]
        await pilot.press("enter")  # not found: the toast quotes it
        await toast_shows(pilot, "no line with '[/nothing]'")


async def test_event_screen(hdeck: Deck) -> None:
    app = app_for(hdeck)
    job = hdeck.job(_failed_train(hdeck))
    progress = next(e for e in hdeck.events(job.id) if e.kind == "progress")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.open_job(job.id)
        await wait_for(pilot, lambda: rows(app, "#events") > progress.seq)
        events = table(app, "#events")
        events.focus()
        events.move_cursor(row=events.get_row_index(str(progress.seq)))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventScreen))
        await shows(pilot, H.PROGRESS, H.PROJECT, f"train {H.MODEL}", f"/ {H.PROJECT} /")
        # details are JSON: json.dumps escapes the controls itself, the markup stays literal
        await shows(pilot, json.dumps(H.PROGRESS)[1:-1])


async def test_version_screen(hdeck: Deck) -> None:
    app = app_for(hdeck)
    version = next(v for v in hdeck.versions(H.PROJECT) if v.status == "deployed")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.push_screen(VersionScreen(version.id))
        await wait_for(pilot, lambda: isinstance(app.screen, VersionScreen))
        await shows(
            pilot,
            f"modeldeck / {H.PROJECT} / {H.MODEL} v",
            H.DATASET,
            H.METRIC,
            H.REASON_APPROVE,
            H.SCHEDULE,
            # as written (key=value, as the Jobs tab shows them), not as escaped JSON
            printable(compact(version.hyperparameters)),
        )


async def test_command_palette(hdeck: Deck) -> None:
    app = app_for(hdeck)
    repo = hdeck.project(H.PROJECT).repo
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: rows(app, "#models-table") == 3)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"team")  # matches the project and jobs' targets
        await shows(pilot, f"Go to project {H.PROJECT}", repo)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"[/oops]")  # what is typed is echoed as a hit: literally
        await shows(pilot, "Go to job by id: [/oops]")
