"""How every screen looks, on fixed data and a frozen clock (pytest-textual-snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapshot_data import ROOT, build, deck_at_now
from snapshot_support import (
    SIZE,
    engine_shown,
    fixed_home,
    measure_tables,
    rows,
    settle,
    steady_cursor,
    utc_display,  # noqa: F401  (an autouse fixture)
)
from textual.pilot import Pilot

from core.service import Deck
from tui.app import ModelDeckApp
from tui.logview import LogPane
from tui.modals import ReasonPrompt
from tui.screens.compare import CompareScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.job import JobScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    yield from fixed_home(ROOT.parent / "modeldeck-snapshots.lock", build)


@pytest.fixture
def deck(home: Path) -> Iterator[Deck]:
    d = deck_at_now(home)
    yield d
    d.close()


def app_for(deck: Deck, project: str | None = "fraud") -> ModelDeckApp:
    return ModelDeckApp(deck, project=project, run_engine=False, poll=0.1)


def test_projects(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck, project=None)

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#projects") == 1 and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_projects_empty(snap_compare: Any, tmp_path: Path) -> None:
    deck = Deck(home=tmp_path / "empty")
    app = app_for(deck, project=None)

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: app.screen.query_one("#empty").display and engine_shown(app))

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_models_tab(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_jobs_tab(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot, lambda: rows(app, "#jobs-table") == 12 and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_jobs_tab_filtered_80x24(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot, lambda: rows(app, "#jobs-table") == 12)
        await pilot.press("slash")
        app.screen.query_one("#jobs-filter").value = "status:failed"
        await pilot.press("enter")
        await settle(pilot, lambda: rows(app, "#jobs-table") == 1 and engine_shown(app))

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_deployments_tab(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot, lambda: rows(app, "#deployments-table") == 1 and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_datasets_tab(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot, lambda: rows(app, "#datasets-table") == 3 and engine_shown(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def _first_train(deck: Deck) -> str:
    return next(j.id for j in reversed(deck.jobs("fraud", job_type="train", limit=20)))


def test_job_screen(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    job_id = _first_train(deck)

    async def ready(pilot: Pilot) -> None:
        app.open_job(job_id)
        await settle(
            pilot,
            lambda: (
                isinstance(app.screen, JobScreen)
                and bool(app.screen.query(LogPane))
                and app.screen.query_one(LogPane).total > 0
                and len(app.screen.query_one(LogPane).lines) > 0
                and rows(app, "#events") > 3
            ),
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_event_screen(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    job_id = _first_train(deck)

    async def ready(pilot: Pilot) -> None:
        app.open_job(job_id)
        await settle(pilot, lambda: isinstance(app.screen, JobScreen) and rows(app, "#events") > 3)
        table = app.screen.query_one("#events", DeckTable)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "EventScreen")

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_version_screen(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    version = next(v for v in deck.versions("fraud") if v.status == "deployed")

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


def test_reason_prompt(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    evaluated = next(v for v in deck.versions("fraud") if v.status == "evaluated")

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))
        table = app.screen.query_one("#models-table", DeckTable)
        table.move_cursor(row=table.get_row_index(evaluated.id))
        await measure_tables(pilot)
        await pilot.press("a")  # the dialog opens once the evaluations are read
        await settle(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await pilot.press("ctrl+s")  # an empty reason is refused
        steady_cursor(app)
        await pilot.pause(0.2)
        await measure_tables(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_deploy_form_preview(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)
    approved = next(v for v in deck.versions("fraud") if v.status == "deployed")

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))
        table = app.screen.query_one("#models-table", DeckTable)
        table.move_cursor(row=table.get_row_index(approved.id))
        await measure_tables(pilot)
        await pilot.press("d")
        app.screen.query_one("#schedule").value = "30 6 * * 1-5"
        await settle(pilot, lambda: "next runs" in str(app.screen.query_one("#preview").render()))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_stop_all_confirmation(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot, lambda: rows(app, "#jobs-table") == 12 and engine_shown(app))
        await pilot.press("S")
        await pilot.pause(0.2)
        await measure_tables(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_help(snap_compare: Any, deck: Deck) -> None:
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        await measure_tables(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_fixed_data_lives_in_a_fixed_folder() -> None:
    assert ROOT.name == "modeldeck-snapshots"


def test_compare_screen_80x24(snap_compare: Any, deck: Deck) -> None:
    """Two versions marked with space on the Models tab, compared with =."""
    app = app_for(deck)
    first, second = sorted(
        (v for v in deck.versions("fraud") if v.model == "fraud-logreg"), key=lambda v: v.number
    )

    async def ready(pilot: Pilot) -> None:
        await settle(pilot, lambda: rows(app, "#models-table") == 3 and engine_shown(app))
        table = app.screen.query_one("#models-table", DeckTable)
        for v in (first, second):
            table.move_cursor(row=table.get_row_index(v.id))
            await pilot.press("space")
        await pilot.press("equals_sign")
        await settle(
            pilot,
            lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None,
        )

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_deployment_screen_80x24(snap_compare: Any, deck: Deck) -> None:
    """Opened with enter on the Deployments tab: its drift (none before core.monitoring)."""
    app = app_for(deck)

    async def ready(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot, lambda: rows(app, "#deployments-table") == 1 and engine_shown(app))
        await pilot.press("enter")
        await settle(
            pilot,
            lambda: isinstance(app.screen, DeploymentScreen) and app.screen.data is not None,
        )

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
