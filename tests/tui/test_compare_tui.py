"""Comparing versions in the TUI: `space` marks versions on the Models tab, `=` opens them
side by side, in 80x24, with real trained scikit-learn versions."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import write_model
from rich.console import Console
from rich.text import Text
from textual.widgets import Static
from tui_support import run_all, wait_for

from core.service import Deck
from tui.app import ModelDeckApp
from tui.plots import PlotPanel
from tui.screens.compare import CompareScreen
from tui.screens.project import ProjectScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable

SIZE = (80, 24)


def plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _holdout(path: Path) -> Path:
    """A holdout shifted from the training data: the two versions score differently on it."""
    lines = ["x1,x2,label"]
    for i in range(40):
        cls = i % 2
        lines.append(f"{cls * 0.9 + (i % 9) * 0.12:.2f},{-cls * 0.4 + (i % 4) * 0.2:.2f},{cls}")
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_mark_two_versions_and_compare_them(deck: Deck, project: str, repo: Path) -> None:
    deck.add_dataset(project, "holdout", _holdout(repo / "data" / "holdout.csv"), target="label")
    jobs = []
    for overrides in ({"C": 1.0}, {"C": 0.01, "note": "\x1b[2J[b]wide[/b]"}):
        jobs.append(deck.train(project, "clf", "train", overrides))
        run_all(deck)  # one after the other: a version's number comes when its training ends
    v1, v2 = (deck.job(j.id).version for j in jobs)
    assert v1 and v2
    for v in (v1, v2):
        deck.evaluate(v, "holdout")
    run_all(deck)
    frame = pd.read_csv(repo / "data" / "holdout.csv")
    accuracy = {}
    for v in (v1, v2):
        model = joblib.load(Path(deck.version_detail(v).artifact_dir) / "model.joblib")
        accuracy[v] = float((model.predict(frame[["x1", "x2"]]) == frame["label"]).mean())
    assert accuracy[v1] != accuracy[v2]

    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        table = app.screen.query_one("#models-table", DeckTable)
        await wait_for(pilot, lambda: v1 in table.rows and v2 in table.rows)

        await pilot.press("equals_sign")  # nothing marked: refused, says why
        await pilot.pause(0.2)
        assert isinstance(app.screen, ProjectScreen)
        assert any("mark two versions or more" in n.message for n in app._notifications)

        for v in (v2, v1):  # the order marked is the order compared
            table.move_cursor(row=table.get_row_index(v))
            await pilot.press("space")
            await pilot.pause(0.1)
        assert plain(table.get_row(v1)[1]) == "● v1"
        assert plain(table.get_row(v2)[1]) == "● v2"

        await pilot.press("equals_sign")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None,
        )
        await pilot.pause(0.3)
        screen = app.screen
        grid = screen.query_one("#compare-table", DeckTable)
        assert grid.shown_columns == ["field", f"v:{v2}", f"v:{v1}"]  # all fit in 80 columns
        assert [plain(c.label) for c in grid.columns.values()] == ["", "clf v2", "clf v1"]
        acc = [plain(c) for c in grid.get_row("metric:accuracy")]
        delta = accuracy[v1] - accuracy[v2]
        assert acc[0] == "metric accuracy"
        assert acc[1] == f"{accuracy[v2]:.4f}"
        assert acc[2] == f"{accuracy[v1]:.4f} {delta:+.4f}"
        assert [plain(c) for c in grid.get_row("param:C")] == ["param C", "0.01", "1.0"]
        # User text shown literally: brackets are not markup, ESC a visible ^[.
        note = [plain(c) for c in grid.get_row("param:note")]
        assert note == ["param note", "^[[2J[b]wide[/b]", "-"]
        assert [plain(c) for c in grid.get_row("dataset")][1:] == ["train", "train"]
        status = [plain(c) for c in grid.get_row("status")]
        assert status[1:] == ["evaluated", "evaluated"]

        plot = screen.query_one("#compare-plot", PlotPanel)
        by_name = {s.name: list(s.values) for s in plot.series}
        assert list(by_name) == ["v2", "v1"]  # one model: the numbers tell them apart
        drawn = plot.plot.render()
        assert isinstance(drawn, Text)
        assert "█" in drawn.plain and "░" in drawn.plain  # versions apart without colour
        i = plot.labels.index("accuracy")
        assert by_name["v2"][i] == accuracy[v2] and by_name["v1"][i] == accuracy[v1]

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("space")  # v1 (the cursor's row) unmarked; v2 stays
        await pilot.pause(0.1)
        assert plain(table.get_row(v1)[1]) == "v1"
        assert plain(table.get_row(v2)[1]) == "● v2"


async def test_the_version_screen_plots_its_metrics_over_time(
    deck: Deck, project: str, repo: Path
) -> None:
    """Each evaluation's numbers, the oldest first, plotted with their table beside; the
    baseline panel says why it is empty while the version has none."""
    deck.add_dataset(project, "holdout", _holdout(repo / "data" / "holdout.csv"), target="label")
    train = deck.train(project, "clf", "train")
    run_all(deck)
    v = deck.job(train.id).version
    assert v
    for dataset in ("test", "holdout"):
        deck.evaluate(v, dataset)
        run_all(deck)
    history = sorted(deck.version_detail(v).metrics_history, key=lambda m: m.at)
    assert [m.dataset for m in history] == ["train", "test", "holdout"]

    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        app.open_version(v)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, VersionScreen) and app.screen.detail is not None,
        )
        await pilot.pause(0.2)
        plot = app.screen.query_one("#version-metrics-plot", PlotPanel)
        assert plot.display
        series = {s.name: list(s.values) for s in plot.series}
        # The headline first; the training's own record has no accuracy of the evaluator's.
        assert next(iter(series)) == "accuracy"
        assert series["accuracy"] == [None, *(m.metrics["accuracy"] for m in history[1:])]
        assert plot.labels == ["#1", "#2", "#3"]
        baseline = app.screen.query_one("#version-baseline", PlotPanel)
        # The training kept the statistics of its data: a column's histogram.
        assert [s.name for s in baseline.series] == ["baseline"]
        assert sum(baseline.series[0].values) == pytest.approx(1.0)


LONG_METRIC = "recall at the top decile of the scored customers"

LONG_METRIC_TRAINING = f"""
def train(context):
    (context.model_dir / "weights.txt").write_text("42")
    context.record_metrics({{{LONG_METRIC!r}: 0.25 + float(context.hyperparameters["a"])}})
"""


async def test_a_long_metric_name_is_cut_on_its_one_line_beside_the_plot(
    deck: Deck, project: str, repo: Path
) -> None:
    """The table beside the plot cuts a long name with … on its own line (it wrapped onto
    several, pushing the numbers of the next metrics out of the panel); its numbers whole."""
    write_model(repo, "long", LONG_METRIC_TRAINING)
    versions = []
    for a in ("0.123456", "0.5"):
        job = deck.train(project, "long", "train", {"a": a})
        run_all(deck)
        version = deck.job(job.id).version
        assert version
        versions.append(version)
    app = ModelDeckApp(deck, project=project, run_engine=False, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        app.open_compare(versions)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None,
        )
        await pilot.pause(0.3)
        cell = app.screen.query_one("#compare-plot .plot-table", Static)
        width = cell.content_size.width
        assert 0 < width < len(LONG_METRIC)  # the name cannot fit whole
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(cell.content)
        lines = [line.rstrip() for line in console.export_text().splitlines() if line.strip()]
        assert lines[0].split() == ["metric", "v1", "v2"]
        assert len(lines) == 2, lines  # one line for the metric
        name, *numbers = lines[1].strip().rsplit(maxsplit=2)
        assert name.endswith("…") and LONG_METRIC.startswith(name[:-1])
        assert numbers == ["0.3735", "0.7500"]  # whole
