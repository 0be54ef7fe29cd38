"""The TUI shows which evaluation a version is judged on, lets an approver pick it, shows
statistics as tables per dataset and job, and a failed last job on the Models tab row."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from tui_support import run_all, wait_for

from core.service import Deck
from tui.app import ModelDeckApp
from tui.modals import ReasonPrompt
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.version import VersionScreen
from tui.tabs.models import ModelsPane
from tui.widgets import DeckTable

SIZE = (140, 45)

# Held out it scores 0.75, on its training data 1.0; on the dataset named "bad" it fails.
EVALUATION = """
def evaluate(context):
    if context.dataset.name == "bad":
        raise RuntimeError("cannot evaluate on bad")
    return {"accuracy": 0.75 if context.dataset.name == "test" else 1.0}
"""


def shown(widget) -> str:  # type: ignore[no-untyped-def]
    """What a Static shows, as plain text."""
    console = Console(width=SIZE[0], record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def version(deck: Deck, project: str, repo: Path) -> dict[str, str]:
    (repo / "models" / "scripted" / "evaluation.py").write_text(EVALUATION)
    train = deck.train(project, "scripted", "train")
    run_all(deck)
    v = deck.job(train.id).version
    held = deck.evaluate(v, "test")
    run_all(deck)
    on_train = deck.evaluate(v, "train")
    run_all(deck)
    return {"version": v, "held": held.id, "on_train": on_train.id}


def app_for(deck: Deck) -> ModelDeckApp:
    return ModelDeckApp(deck, project="proj", poll=0.25)


async def test_version_screen_shows_the_judged_evaluation_and_statistics_tables(
    deck: Deck, version: dict[str, str]
) -> None:
    v = version["version"]
    first = deck.compute_stats(v, "train")
    run_all(deck)
    second = deck.compute_stats(v, "score")
    run_all(deck)
    app = app_for(deck)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(VersionScreen(v))
        await wait_for(
            pilot, lambda: isinstance(app.screen, VersionScreen) and app.screen.detail is not None
        )
        summary = shown(app.screen.query_one("#version-summary"))
        assert f"evaluation {version['held'][:10]} on test" in summary
        metrics = app.screen.query_one("#version-metrics", DeckTable)
        await wait_for(pilot, lambda: metrics.row_count > 0)
        titles = [column.label.plain for column in metrics.ordered_columns]
        assert titles[1] == "test judged"  # the evaluation it is judged on comes first
        accuracy = [getattr(c, "plain", str(c)) for c in metrics.get_row("metric:accuracy")]
        assert accuracy[:2] == ["accuracy", "0.7500"]
        stats = shown(app.screen.query_one("#version-stats"))
        # A table per run, newest first; no JSON dump.
        assert stats.index(f"job {second.id[:10]}") < stats.index(f"job {first.id[:10]}")
        assert "on score" in stats and "on train" in stats
        assert "distribution" in stats and '"histogram"' not in stats
        x1 = [line.split() for line in stats.splitlines() if line.strip().startswith("x1")]
        # The two runs asked for, then the training's own (its data's baseline).
        assert [line[2] for line in x1] == ["20", "60", "60"] and x1[0][1] == "numeric"
        assert any(ch in stats for ch in "▁▂▃▄▅▆▇█")
        assert len(stats.splitlines()) < 21
        # The grid's rows are metrics, not jobs: enter opens nothing (it opened a job named
        # after the row, "job", that never loaded), and the footer offers no Open there.
        metrics.focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, VersionScreen)
        assert not metrics.check_action("select_cursor", ())
        lineage = app.screen.query_one("#lineage", DeckTable)
        lineage.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))


async def test_the_reason_dialog_names_the_evaluation_and_records_the_one_picked(
    deck: Deck, version: dict[str, str]
) -> None:
    v = version["version"]
    app = app_for(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        pane = app.screen.query_one(ModelsPane)
        table = pane.query_one(DeckTable)
        await wait_for(pilot, lambda: v in table.rows)
        table.move_cursor(row=table.get_row_index(v))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        picker = app.screen.query_one("#evaluation")
        assert picker.value == version["held"]  # the one it is judged on, by default
        picker.value = version["on_train"]
        app.screen.query_one("#reason").value = "look at it on its training data"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: deck.version(v).status == "rejected")
    [seen] = deck.version(v).approval.evaluations
    assert (seen.job_id, seen.dataset, seen.metrics) == (
        version["on_train"],
        "train",
        {"accuracy": 1.0},
    )


async def test_a_failed_last_job_shows_on_the_models_row_and_j_opens_it(
    deck: Deck, project: str, repo: Path, version: dict[str, str]
) -> None:
    shutil.copy(repo / "data" / "test.csv", repo / "data" / "bad.csv")
    deck.add_dataset(project, "bad", repo / "data" / "bad.csv", target="label")
    failed = deck.evaluate(version["version"], "bad")
    run_all(deck)
    assert deck.job(failed.id).status == "failed"
    app = app_for(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        pane = app.screen.query_one(ModelsPane)
        table = pane.query_one(DeckTable)
        await wait_for(pilot, lambda: version["version"] in table.rows)
        table.move_cursor(row=table.get_row_index(version["version"]))
        row = [str(c) for c in table.get_row(version["version"])]
        assert "evaluate ✗ failed (j: open)" in row
        assert pane.check_action("last_job", ()) is True
        await pilot.press("j")
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.job_id == failed.id
        )


async def test_a_failed_training_shows_on_the_row_of_a_model_without_versions(
    deck: Deck, project: str
) -> None:
    failed = deck.train(project, "scripted", "train", {"fail": "out of memory"})
    run_all(deck)
    assert deck.job(failed.id).status == "failed"
    app = app_for(deck)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        pane = app.screen.query_one(ModelsPane)
        table = pane.query_one(DeckTable)
        await wait_for(pilot, lambda: "model:scripted" in table.rows)
        table.move_cursor(row=table.get_row_index("model:scripted"))
        assert "train ✗ failed (j: open)" in [str(c) for c in table.get_row("model:scripted")]
        assert pane.check_action("last_job", ()) is True
        await pilot.press("j")
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.job_id == failed.id
        )
