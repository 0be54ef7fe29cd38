"""The deployment screen in 80x24: opened with enter on the Deployments tab; its drift per
feature over runs (the worst first), a feature's histograms overlaid, the prediction
distribution, the performance history, its jobs and timeline; the Deployments tab's drift
column and the Projects screen's count of drifting deployments. Real data, a real
scikit-learn model, real batch predictions through the engine."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.text import Text
from sqlalchemy import update
from textual.widgets import Static, TabbedContent
from tui_support import run_all, screen_text, wait_for

from core.models import Deployment
from core.service import Deck
from tui.app import ModelDeckApp
from tui.plots import PlotPanel, number, short_when
from tui.screens.deployment import DeploymentScreen
from tui.screens.event import DeploymentEventScreen
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.projects import ProjectsScreen
from tui.widgets import DeckTable

SIZE = (80, 24)


def shown(widget: Static, width: int = SIZE[0]) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def sample(path: Path, rows: int, seed: int, shift: float = 0.0) -> Path:
    """x1, x2 standard normal (x1 moved by ``shift``), label = x1 + x2 > 0 on the unmoved
    values: the same relation, whatever the shift."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    label = (x1 + x2 > 0).astype(int)
    lines = ["x1,x2,label"] + [
        f"{a + shift:.5f},{b:.5f},{c}" for a, b, c in zip(x1, x2, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def deployed(deck: Deck, project: str, repo: Path) -> tuple[str, str]:
    """clf trained on 2000 rows, approved and deployed on the dataset ``scored``; returns
    the version and the deployment."""
    data = repo / "data"
    deck.add_dataset(project, "big", sample(data / "big.csv", 2000, seed=1), target="label")
    deck.add_dataset(project, "scored", sample(data / "scored.csv", 2000, seed=2), target="label")
    train = deck.train(project, "clf", "big")
    run_all(deck)
    version = deck.job(train.id).version
    assert version
    deck.evaluate(version, "test")
    run_all(deck)
    deck.approve(version, "fine")
    run_all(deck)
    deploy = deck.deploy(version, "scored")
    run_all(deck)
    deployment = deck.job(deploy.id).deployment
    assert deployment
    return version, deployment


async def open_from_the_tab(app: ModelDeckApp, pilot: Any, deployment: str) -> DeploymentScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
    # The screen settled on its first tab (its models listed) before 3 moves to another.
    await wait_for(
        pilot,
        lambda: any(t.row_count for t in app.screen.query("#models-table").results(DeckTable)),
    )
    await pilot.press("3")
    table = app.screen.query_one("#deployments-table", DeckTable)
    await wait_for(pilot, lambda: deployment in table.rows)
    table.move_cursor(row=table.get_row_index(deployment))
    await pilot.press("enter")
    await wait_for(
        pilot, lambda: isinstance(app.screen, DeploymentScreen) and app.screen.data is not None
    )
    screen = app.screen
    assert isinstance(screen, DeploymentScreen)
    return screen


async def test_a_deployment_before_its_first_drift(deck: Deck, project: str, repo: Path) -> None:
    """Without a compared run each plot says why it is empty; jobs and timeline are there."""
    _version, deployment = deployed(deck, project, repo)
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_the_tab(app, pilot, deployment)
        header = shown(screen.query_one("#deployment-header", Static))
        assert "no run compared yet" in header and "clf v1" in header
        drift = screen.query_one("#drift-plot", PlotPanel)
        assert drift.series == []
        assert "no drift yet" in shown(drift.query_one(".plot-none", Static))
        await pilot.press("f")  # no feature yet: refused, and says why
        await pilot.pause(0.2)
        assert any("no feature histograms yet" in n.message for n in app._notifications)
        await pilot.press("6")
        timeline = screen.query_one("#timeline-table", DeckTable)
        await wait_for(pilot, lambda: timeline.row_count >= 1)
        kinds = [plain(timeline.get_row_at(i)[1]) for i in range(timeline.row_count)]
        assert "created" in kinds
        # Enter opens the row's event, its message whole and its details.
        timeline.move_cursor(row=kinds.index("created"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentEventScreen))
        [created] = [e for e in deck.deployment_events(deployment) if e.kind == "created"]
        fields = shown(app.screen.query_one("#event-fields", Static))
        assert created.message in " ".join(fields.split())
        assert deployment in fields and "clf v1" in fields
        details = shown(app.screen.query_one("#event-details", Static))
        assert json.loads(details) == json.loads(json.dumps(created.details, default=str))
        await pilot.press("j")  # it names no job: said so
        said = "this created event names no job"
        await wait_for(pilot, lambda: any(n.message == said for n in app._notifications))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("5")
        assert screen.query_one(TabbedContent).active == "jobs"


async def test_drift_plots_of_real_runs(deck: Deck, project: str, repo: Path) -> None:
    _version, deployment = deployed(deck, project, repo)
    scored = repo / "data" / "scored.csv"
    predict = deck.predict(deployment)  # a sample of the training distribution
    run_all(deck)
    assert deck.job(predict.id).status == "completed"
    sample(scored, 2000, seed=3, shift=2.0)  # x1 moved by two standard deviations
    predict = deck.predict(deployment)
    run_all(deck)
    assert deck.job(predict.id).status == "completed"
    runs = deck.monitoring.history(deployment)
    assert [r.status for r in runs][:1] == ["alert"] and len(runs) == 2
    latest, first = runs
    assert latest.features[0].name == "x1" and latest.features[0].status == "alert"
    # The model's headline metric is f1 (not the first of its metrics).
    meta = {"task": "classification", "metric": "f1"}
    (repo / "models" / "clf" / "model.json").write_text(json.dumps(meta))

    app = ModelDeckApp(deck, project=None, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        projects = app.screen.query_one("#projects", DeckTable)
        await wait_for(pilot, lambda: projects.row_count == 1)
        assert plain(projects.get_row(project)[4]) == "1"  # one deployment drifting
        app.open_project(project)
        screen = await open_from_the_tab(app, pilot, deployment)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        table = app.screen.query_one("#deployments-table", DeckTable)
        assert "drift" in table.shown_columns  # kept at 80 columns
        drift_cell = table.get_row(deployment)[table.shown_columns.index("drift")]
        assert plain(drift_cell) == "alert"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DeploymentScreen) and app.screen.data is not None,
        )
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        assert "alert" in shown(screen.query_one("#deployment-header", Static))

        # Drift per feature over the runs, the worst first, beside its table.
        drift = screen.query_one("#drift-plot", PlotPanel)
        assert drift.series[0].name == "x1"
        x1 = drift.series[0]
        first_x1 = next(f for f in first.features if f.name == "x1")
        assert list(x1.values) == [first_x1.psi, latest.features[0].psi]
        assert x1.values[1] >= 0.25 > x1.values[0]  # type: ignore[operator]
        table_text = shown(drift.query_one(".plot-table", Static), 200)
        lines = [line.split() for line in table_text.splitlines() if line.strip()]
        assert lines[1][0] == "x1" and lines[1][-1] == "alert"
        x2 = next(line for line in lines if line[0] == "x2")
        assert x2[-1] == "ok"
        # At 60x20 every tab's label is on the bar (`1 Drift` scrolled off it) and the
        # table's numbers are whole (PSI and KS were cut to `0.…`).
        await pilot.resize_terminal(60, 20)
        await wait_for(pilot, lambda: "6 Timeline" in screen_text(app))
        await pilot.pause(0.2)
        text = screen_text(app)
        bar = next(line for line in text.splitlines() if "2 Feature" in line)
        assert bar.split()[:2] == ["1", "Drift"] and bar.split()[-2:] == ["6", "Timeline"]
        for f in latest.features:
            assert f"{f.psi:.3f}" in text and f"{f.ks:.3f}" in text
        assert "0.…" not in text
        await pilot.resize_terminal(*SIZE)

        # The worst feature's histograms: baseline and latest run overlaid.
        await pilot.press("2")
        feature = screen.query_one("#feature-plot", PlotPanel)
        assert [s.name for s in feature.series] == ["baseline", "latest run"]
        hist = latest.features[0].histogram
        assert hist is not None
        assert list(feature.series[0].values) == list(hist.baseline)
        assert list(feature.series[1].values) == list(hist.scored)
        upper = len(hist.baseline) // 2  # x1 moved up: more of it in the upper bins
        assert sum(hist.scored[upper:]) > sum(hist.baseline[upper:])
        await pilot.press("f")  # the next feature
        await pilot.pause(0.2)
        title = shown(feature.query_one(".plot-title", Static)).strip()
        x2 = next(f for f in latest.features if f.name == "x2")
        assert x2.psi is not None
        # Its numbers first, on the one line (a long name's were cut off its end)
        assert title.startswith(f"x2 2/2: psi {x2.psi:.3f}, {x2.status} · "), title

        # The prediction distribution, and the performance history (the target was there).
        await pilot.press("3")
        prediction = screen.query_one("#prediction-plot", PlotPanel)
        assert [s.name for s in prediction.series] == ["baseline", "latest run"]
        await pilot.press("4")
        perf = screen.query_one("#perf-plot", PlotPanel)
        names = [s.name for s in perf.series]
        assert names == ["f1", "accuracy"]  # the headline first, as on the Models tab
        acc = perf.series[names.index("accuracy")]
        assert list(acc.values) == [first.metrics["accuracy"], latest.metrics["accuracy"]]
        text = screen_text(app)  # 80x24: each run's time whole beside the plot
        assert all(f"#{i + 1}   {short_when(r.at)[0]}" in text for i, r in enumerate(runs[::-1]))
        await pilot.resize_terminal(60, 20)  # one metric fits, its numbers whole
        await wait_for(pilot, lambda: [s.name for s in perf.series] == ["f1"])
        f1 = number(latest.metrics["f1"])
        await wait_for(pilot, lambda: f"{short_when(latest.at)[0]}  {f1}" in screen_text(app))
        await pilot.resize_terminal(*SIZE)

        # Its jobs: both batch predictions, not said to be filtered (nobody filtered them).
        await pilot.press("5")
        jobs = screen.query_one("#jobs-table", DeckTable)
        await wait_for(pilot, lambda: jobs.row_count == 2)
        await wait_for(pilot, lambda: "jobs 1-2 of 2" in screen_text(app))
        assert "filtered" not in screen_text(app)

        # A drift on the timeline: enter shows it, j its batch prediction.
        await pilot.press("6")
        timeline = screen.query_one("#timeline-table", DeckTable)
        await wait_for(pilot, lambda: timeline.row_count >= 3)
        kinds = [plain(timeline.get_row_at(i)[1]) for i in range(timeline.row_count)]
        timeline.move_cursor(row=kinds.index("drift_computed"))  # the newest first
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentEventScreen))
        await pilot.press("j")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        assert app.screen.job_id == predict.id


CONSTANT_SCORING = """
def score(context):
    rows = context.dataset.path.read_text().splitlines()[1:]
    lines = ["row,prediction"] + [f"{i},1" for i in range(len(rows))]
    (context.output_dir / "predictions.csv").write_text("\\n".join(lines) + "\\n")
"""


async def test_the_psi_history_stays_plotted_after_a_run_without_psi(
    deck: Deck, project: str, repo: Path
) -> None:
    """A latest run with no PSI (its batch had none of the features: every one missing)
    leaves the earlier runs' PSI on the Drift tab's plot; it showed no series at all."""
    # Its own scoring, which scores any rows, whatever their columns.
    (repo / "models" / "clf" / "scoring.py").write_text(CONSTANT_SCORING)
    _version, deployment = deployed(deck, project, repo)
    deck.predict(deployment)
    run_all(deck)
    (repo / "data" / "scored.csv").write_text("y1,y2\n1,2\n3,4\n")  # renamed columns
    empty = deck.predict(deployment)
    run_all(deck)
    assert deck.job(empty.id).status == "completed", deck.job(empty.id).error
    latest = deck.monitoring.drift(deployment)
    assert latest is not None and all(f.psi is None for f in latest.features)
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_the_tab(app, pilot, deployment)
        drift = screen.query_one("#drift-plot", PlotPanel)
        await wait_for(pilot, lambda: bool(drift.series))
        assert {s.name for s in drift.series} == {"x1", "x2"}
        assert all(s.values[0] is not None and s.values[-1] is None for s in drift.series)


async def test_a_schedule_in_a_zone_this_machine_does_not_know(
    deck: Deck, project: str, repo: Path
) -> None:
    """Another host's tz data may know a zone this one does not: the Deployments tab and the
    deployment screen show its next run in UTC and say so, instead of ending the app."""
    version, _ = deployed(deck, project, repo)
    scheduled = deck.deploy(version, "big", schedule="0 6 * * *", timezone="Europe/Berlin")
    run_all(deck)
    deployment = deck.job(scheduled.id).deployment
    assert deployment
    with deck.store.writer() as s:  # as a host with other tz data wrote it
        s.execute(
            update(Deployment).where(Deployment.id == deployment).values(timezone="Mars/Base")
        )
        s.commit()
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_the_tab(app, pilot, deployment)
        header = " ".join(shown(screen.query_one("#deployment-header", Static)).split())
        assert "zone Mars/Base (unknown here: times in UTC)" in header
        assert "next run 2026-" in header and " 05:00 UTC" in header
        await pilot.press("escape")
        table = app.screen.query_one("#deployments-table", DeckTable)

        # Its zone column left out here; "(no engine)" follows the time until the app's own
        # engine serves (it takes the lease in the background: later on a loaded machine).
        def row() -> list[str]:
            return [plain(c) for c in table.get_row(deployment)]

        await wait_for(pilot, lambda: any(c.endswith(" 05:00 UTC") for c in row()))
        app.open_version(version)  # the version's screen lists its deployments
        await wait_for(pilot, lambda: type(app.screen).__name__ == "VersionScreen")
        await wait_for(pilot, lambda: "Mars/Base" in screen_text(app))
        shown_all = " ".join(screen_text(app).split())
        assert "(Mars/Base (unknown here: times in UTC)), next run 2026-" in shown_all
    assert app.return_code in (None, 0) and app._exception is None
