"""Drive the real app on the demo project and write an SVG screenshot of each screen.

Run as ``python -m tui.screenshots [--home DIR] [--out screenshots]``. It seeds the demo
project in a fresh data home (about 20 s), then trains, evaluates, approves, deploys and
runs a batch prediction with the TUI's own engine, taking pictures on the way.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from core.demo import seed_demo
from core.service import Deck
from tui.app import ModelDeckApp
from tui.logview import LogPane
from tui.screens.compare import CompareScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable

SIZE = (120, 36)


async def until(pilot: Pilot, condition: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {condition}")
        await pilot.pause(0.1)
    await pilot.pause(0.3)


def rows(app: ModelDeckApp, selector: str) -> int:
    found = app.screen.query(selector)
    return found.first(DeckTable).row_count if found else 0


def completed_runs(deck: Deck) -> int:
    return sum(j.status == "completed" for j in deck.jobs("demo", job_type="batch_predict"))


async def shoot(app: ModelDeckApp, out: Path, name: str) -> None:
    for table in app.screen.query(DeckTable):
        table.refresh(layout=True)
    await asyncio.sleep(0.2)
    path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
    print(f"wrote {path}")


async def drive(deck: Deck, out: Path) -> None:
    app = ModelDeckApp(deck, project=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: rows(app, "#projects") >= 1)
        await shoot(app, out, "01-projects")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await until(pilot, lambda: rows(app, "#models-table") >= 2)
        await shoot(app, out, "02-models")

        # Train iris-forest and watch its log grow.
        models = app.screen.query_one("#models-table", DeckTable)
        models.move_cursor(row=0)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen.query_one("#dataset").value, str))
        await shoot(app, out, "03-train-form")
        await pilot.press("ctrl+s")  # the new job opens: watch its log grow
        await until(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.query(LogPane))
        pane = app.screen.query_one(LogPane)
        await until(pilot, lambda: pane.total >= 8)
        await shoot(app, out, "05-job-live-log")
        job = app.screen.job
        assert job is not None
        await pilot.press("escape", "2")
        await until(pilot, lambda: rows(app, "#jobs-table") >= 3)
        await shoot(app, out, "04-jobs")
        app.open_job(job.id)
        await until(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.query(LogPane))
        pane = app.screen.query_one(LogPane)
        await until(pilot, lambda: deck.job(job.id).status == "completed", timeout=120)
        await until(pilot, lambda: pane.total > 20)
        events = app.screen.query_one("#events", DeckTable)
        events.focus()
        events.move_cursor(row=events.row_count - 1)
        await pilot.press("enter")
        await pilot.pause(0.5)
        await shoot(app, out, "06-event")
        await pilot.press("escape", "escape")

        # Evaluate the new version, approve it with a reason, deploy it, run it now.
        version = deck.job(job.id).version
        assert version is not None
        await pilot.press("1")
        await until(pilot, lambda: rows(app, "#models-table") >= 2)
        models = app.screen.query_one("#models-table", DeckTable)
        await until(pilot, lambda: version in models.rows)
        models.move_cursor(row=models.get_row_index(version))
        await pilot.press("e")
        await pilot.pause(0.3)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: deck.version(version).status == "evaluated", timeout=120)
        await pilot.pause(1.0)
        await pilot.press("a")
        await pilot.pause(0.3)
        app.screen.query_one("#reason").value = "beats logreg on the holdout"
        await shoot(app, out, "07-approve-reason")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: deck.version(version).status == "approved")
        await pilot.pause(1.0)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen.query_one("#dataset").value, str))
        app.screen.query_one("#schedule").value = "0 6 * * 1-5"
        app.screen.query_one("#timezone").value = "Europe/Paris"
        await pilot.pause(0.3)
        await shoot(app, out, "08-deploy-form")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: deck.version(version).status == "deployed")
        await pilot.press("3")
        await until(pilot, lambda: rows(app, "#deployments-table") >= 1)
        done = completed_runs(deck)
        deps = app.screen.query_one("#deployments-table", DeckTable)
        forest = next(d.id for d in deck.deployments("demo") if d.version == version)
        await until(pilot, lambda: forest in deps.rows)
        deps.move_cursor(row=deps.get_row_index(forest))
        await pilot.press("r")
        await until(pilot, lambda: completed_runs(deck) > done, timeout=120)
        await pilot.pause(1.0)
        await shoot(app, out, "09-deployments")
        # The demo's own deployment: two runs, the second on data that drifted.
        seeded = next(d.id for d in deck.deployments("demo") if d.version != version)
        deps.move_cursor(row=deps.get_row_index(seeded))
        await pilot.press("enter")  # the deployment: its drift, plots, jobs and timeline
        await until(
            pilot, lambda: isinstance(app.screen, DeploymentScreen) and app.screen.data is not None
        )
        await shoot(app, out, "14-deployment-drift")
        await pilot.press("2")
        await pilot.pause(0.5)
        await shoot(app, out, "15-deployment-feature")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("4")
        await until(pilot, lambda: rows(app, "#datasets-table") >= 3)
        await shoot(app, out, "10-datasets")
        await pilot.press("1")  # mark two versions with space, compare them with =
        await until(pilot, lambda: rows(app, "#models-table") >= 2)
        models = app.screen.query_one("#models-table", DeckTable)
        for row in (0, 1):
            models.move_cursor(row=row)
            await pilot.press("space")
        await pilot.press("equals_sign")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison)
        await shoot(app, out, "16-compare")
        await pilot.press("escape")
        app.open_version(version)
        await until(pilot, lambda: isinstance(app.screen, VersionScreen) and app.screen.detail)
        await shoot(app, out, "11-version")
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        await shoot(app, out, "12-help")
        await pilot.press("escape")
        await pilot.press("colon")
        await pilot.pause(0.5)
        await shoot(app, out, "13-command-palette")
        await pilot.press("escape")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="data home (default: a fresh temporary folder)")
    parser.add_argument("--out", default="screenshots", help="where the SVG files go")
    args = parser.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="modeldeck-shots-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deck = Deck(home=home)
    seed_demo(deck, progress=print)
    try:
        asyncio.run(drive(deck, out))
    finally:
        deck.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
