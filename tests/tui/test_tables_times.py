"""Tables at 80x24 keep their most important columns whole (and what they leave out is on
the screen a row opens); a sweep's jobs differ by their overrides; a version's metrics are
rows and its evaluations columns, scrolled with the keyboard; every time on screen is
labelled with its zone; a Deck warning is a toast, once.

Pilot tests on real jobs run by a real engine (the scripted model), on a real database."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import SCRIPTED_TRAINING, write_csv, write_model
from textual.pilot import Pilot
from textual.widgets._toast import Toast
from tui_support import SCORING, extend_scripted, run_all, screen_text, wait_for

from core.clock import utc
from core.service import Deck
from tui.app import ModelDeckApp
from tui.screens.deployment import DeploymentScreen
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.screens.version import VersionScreen
from tui.widgets import DeckTable

SMALL = (80, 24)
LOCAL = "Europe/Paris"  # this machine's zone in these tests
SCHEDULE_ZONE = "America/New_York"  # the deployment's own zone

# Several metrics per evaluation, different on each dataset.
EVALUATION = """
def evaluate(context):
    base = {"test": 0.912345, "train": 0.987654}.get(context.dataset.name, 0.5)
    return {
        "accuracy": base,
        "precision": base - 0.01,
        "recall": base - 0.02,
        "f1": base - 0.03,
        "roc_auc": base - 0.04,
    }
"""


@pytest.fixture(autouse=True)
def local_zone() -> Iterator[None]:
    """This machine's clock is on Paris time (times on screen say so)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = LOCAL
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A project with a model evaluated three times, approved, deployed on a schedule in
    New York's zone, and one batch prediction run: everything a tab shows."""
    root = tmp_path_factory.mktemp("tables")
    repo = root / "repo"
    write_model(
        repo,
        "churn-logreg",
        SCRIPTED_TRAINING,
        **{"evaluation.py": EVALUATION, "scoring.py": SCORING},
    )
    data = repo / "data"
    data.mkdir()
    write_csv(data / "train.csv")
    write_csv(data / "test.csv", rows=40)
    write_csv(data / "holdout.csv", rows=30)
    write_csv(data / "score.csv", rows=20, target=False)
    home = root / "home"
    deck = Deck(home=home)
    try:
        deck.add_project("proj", repo)
        for name in ("train", "test", "holdout"):
            deck.add_dataset("proj", name, data / f"{name}.csv", target="label")
        deck.add_dataset("proj", "score", data / "score.csv")
        train = deck.train("proj", "churn-logreg", "train", {"lines": 2})
        run_all(deck)
        version = deck.job(train.id).version or ""
        for dataset in ("holdout", "train", "test"):  # judged on the latest held-out one
            deck.evaluate(version, dataset)
            run_all(deck)
        deck.approve(version, "recall is good enough for the pilot")
        run_all(deck)
        deck.deploy(version, "score", "0 6 * * *", SCHEDULE_ZONE)
        run_all(deck)
        deployment = deck.deployments("proj")[0].id
        predict = deck.predict(deployment)
        run_all(deck)
    finally:
        deck.close()
    return {
        "home": str(home),
        "version": version,
        "train": train.id,
        "deployment": deployment,
        "predict": predict.id,
    }


@pytest.fixture
def wdeck(world: dict[str, str]) -> Iterator[Deck]:
    d = Deck(home=world["home"])
    yield d
    d.close()


def columns(table: DeckTable) -> list[str]:
    """The keys of the columns the table has on screen, in order."""
    return [str(column.key.value) for column in table.ordered_columns]


def row_texts(table: DeckTable, key: str) -> list[str]:
    return [getattr(cell, "plain", str(cell)) for cell in table.get_row(key)]


def on_schedule_clock(dt: datetime | None) -> str:
    shown = utc(dt).astimezone(ZoneInfo(SCHEDULE_ZONE))  # type: ignore[union-attr]
    return f"{shown:%Y-%m-%d %H:%M} {shown.tzname()}"


def local(dt: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    shown = utc(dt).astimezone(ZoneInfo(LOCAL))  # type: ignore[union-attr]
    return f"{shown.strftime(fmt)} {shown.tzname()}"


async def whole_on_screen(pilot: Pilot, *texts: str, timeout: float = 10.0) -> None:
    """Each of ``texts`` shows on screen whole (a column cut at the edge does not)."""
    app: ModelDeckApp = pilot.app  # type: ignore[assignment]

    def missing() -> list[str]:
        screen = screen_text(app)
        return [t for t in texts if t not in screen]

    try:
        await wait_for(pilot, lambda: not missing(), timeout=timeout)
    except AssertionError:
        raise AssertionError(f"not whole on screen: {missing()}\n{screen_text(app)}") from None


async def project_tab(app: ModelDeckApp, pilot: Pilot, key: str, table: str) -> DeckTable:
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
    await pilot.press(key)
    found = app.screen.query_one(table, DeckTable)
    await wait_for(pilot, lambda: found.row_count > 0)
    return found


# -- issue 8 item 8: every time labelled with its zone -------------------------------------


async def test_times_on_screen_are_labelled_with_their_zone(
    wdeck: Deck, world: dict[str, str]
) -> None:
    """Next and last run on the deployment's clock, labelled with its zone; job and version
    times on this machine's clock, labelled with its zone (they were unlabelled)."""
    dep = wdeck.deployment(world["deployment"])
    predict = wdeck.job(world["predict"])
    nxt = utc(dep.next_run_at).astimezone(ZoneInfo(SCHEDULE_ZONE))  # type: ignore[union-attr]
    next_run = f"{nxt:%Y-%m-%d %H:%M} {nxt.tzname()}"
    app = ModelDeckApp(wdeck, project="proj", poll=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        table = await project_tab(app, pilot, "3", "#deployments-table")
        await wait_for(pilot, lambda: "(no engine)" not in " ".join(row_texts(table, dep.id)))
        cells = dict(zip(columns(table), row_texts(table, dep.id), strict=True))
        assert cells["next run"] == next_run
        assert cells["last run"] == f"✓ {on_schedule_clock(predict.started_at)}"
        await whole_on_screen(pilot, next_run, on_schedule_clock(predict.started_at))

        # The deployment's own screen: its header's last run on the same clock, short.
        app.open_deployment(dep)
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentScreen))
        ran = utc(predict.started_at).astimezone(ZoneInfo(SCHEDULE_ZONE))  # type: ignore[union-attr]
        await whole_on_screen(pilot, next_run, f"{ran:%m-%d %H:%M} {ran.tzname()}")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))

        jobs = await project_tab(app, pilot, "2", "#jobs-table")
        await wait_for(pilot, lambda: world["predict"] in jobs.rows)
        cells = dict(zip(columns(jobs), row_texts(jobs, world["predict"]), strict=True))
        assert cells["started"] == local(predict.started_at)

        app.open_job(world["predict"])
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        seconds = "%Y-%m-%d %H:%M:%S"
        await whole_on_screen(
            pilot,
            local(predict.created_at, seconds),
            local(predict.finished_at, seconds),
            local(wdeck.events(predict.id)[0].at, "%H:%M:%S"),  # the events' times
        )


# -- issue 8 item 13: 80 columns ------------------------------------------------------------


async def test_tables_at_80x24_keep_their_important_columns_whole(
    wdeck: Deck, world: dict[str, str]
) -> None:
    version = wdeck.version(world["version"])
    dep = wdeck.deployment(world["deployment"])
    predict = wdeck.job(world["predict"])
    app = ModelDeckApp(wdeck, project="proj", poll=0.25)
    async with app.run_test(size=SMALL) as pilot:
        models = await project_tab(app, pilot, "1", "#models-table")
        cells = dict(zip(columns(models), row_texts(models, version.id), strict=True))
        assert cells["metric"] == "accuracy 0.9123 on test"
        await whole_on_screen(
            pilot,
            "churn-logreg",
            f"v{version.number}",
            "deployed",
            cells["metric"],
            cells["last job"],
        )

        jobs = await project_tab(app, pilot, "2", "#jobs-table")
        await wait_for(pilot, lambda: predict.id in jobs.rows)
        cells = dict(zip(columns(jobs), row_texts(jobs, predict.id), strict=True))
        await whole_on_screen(
            pilot, "batch_predict", predict.target, "✓ completed", local(predict.started_at)
        )
        assert {"type", "target", "status", "started"} <= set(cells)

        deps = await project_tab(app, pilot, "3", "#deployments-table")
        await wait_for(pilot, lambda: "(no engine)" not in " ".join(row_texts(deps, dep.id)))
        cells = dict(zip(columns(deps), row_texts(deps, dep.id), strict=True))
        await whole_on_screen(pilot, dep.label, "active", cells["next run"], cells["last run"])
        assert cells["last run"].endswith(on_schedule_clock(predict.started_at))

        # What the Deployments tab leaves out is on the deployment's screen.
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentScreen))
        await whole_on_screen(pilot, "0 6 * * *", SCHEDULE_ZONE, "score", "✓ completed")


async def test_what_the_models_tab_leaves_out_is_on_the_version_screen(
    wdeck: Deck, world: dict[str, str]
) -> None:
    version = wdeck.version(world["version"])
    app = ModelDeckApp(wdeck, project="proj", poll=0.25)
    async with app.run_test(size=SMALL) as pilot:
        models = await project_tab(app, pilot, "1", "#models-table")
        assert "approval" not in columns(models)  # no room at 80 columns
        models.move_cursor(row=models.get_row_index(version.id))
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, VersionScreen) and app.screen.detail is not None
        )
        dep = wdeck.deployment(world["deployment"])
        nxt = utc(dep.next_run_at).astimezone(ZoneInfo(SCHEDULE_ZONE))  # type: ignore[union-attr]
        await whole_on_screen(
            pilot,
            f"trained {local(version.created_at)}",
            f"run {nxt:%Y-%m-%d %H:%M} {nxt.tzname()}",  # on the deployment's clock (wraps)
        )
        screen = app.screen
        approvals = str(screen.query_one("#version-approvals").render())
        assert "recall is good enough for the pilot" in approvals
        lineage = screen.query_one("#lineage", DeckTable)
        assert world["train"] in lineage.rows  # the last job, and every other one


async def test_the_tables_bring_columns_back_when_there_is_room(
    wdeck: Deck, world: dict[str, str]
) -> None:
    app = ModelDeckApp(wdeck, project="proj", poll=0.25)
    async with app.run_test(size=SMALL) as pilot:
        models = await project_tab(app, pilot, "1", "#models-table")
        assert "approval" not in columns(models)
        await pilot.resize_terminal(200, 30)
        await wait_for(pilot, lambda: "approval" in columns(models))
        await whole_on_screen(pilot, "approved by")
        await pilot.resize_terminal(*SMALL)
        await wait_for(pilot, lambda: "approval" not in columns(models))


# -- issue 8 item 13: sweeps ------------------------------------------------------------------


async def test_the_jobs_of_a_sweep_show_their_overrides(deck: Deck, project: str) -> None:
    sweep = [
        deck.train(project, "scripted", "train", {"C": c, "lr": 3e-4, "note": "a b"})
        for c in (0.1, 1.0)
    ]  # queued: no engine runs them here
    app = ModelDeckApp(deck, project=project, run_engine=False, poll=0.25)
    async with app.run_test(size=SMALL) as pilot:
        jobs = await project_tab(app, pilot, "2", "#jobs-table")
        await wait_for(pilot, lambda: jobs.row_count == 2)
        await whole_on_screen(
            pilot,
            'scripted  C=0.1 lr=0.0003 note="a b"',
            'scripted  C=1.0 lr=0.0003 note="a b"',
        )
        jobs.move_cursor(row=jobs.get_row_index(sweep[1].id))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await whole_on_screen(pilot, "scripted  C=1.0 lr=0.0003", 'note="a b"')  # wrapped


# -- issue 8 item 13: a version's metrics at 80x24 ------------------------------------------


async def test_version_metrics_are_rows_and_scroll_without_a_tab(
    wdeck: Deck, world: dict[str, str]
) -> None:
    version = world["version"]
    # A fourth evaluation (on its training data: not the one judged) makes the evaluations
    # wider than the screen.
    wdeck.evaluate(version, "train")
    run_all(wdeck)
    app = ModelDeckApp(wdeck, project="proj", run_engine=False, poll=0.25)
    async with app.run_test(size=SMALL) as pilot:
        app.push_screen(VersionScreen(version))
        await wait_for(
            pilot, lambda: isinstance(app.screen, VersionScreen) and app.screen.detail is not None
        )
        grid = app.screen.query_one("#version-metrics", DeckTable)
        await wait_for(pilot, lambda: app.focused is grid)  # no tab needed
        # One metric a row, whole, with the number it is judged on next to it.
        for name, value in (
            ("accuracy", "0.9123"),
            ("precision", "0.9023"),
            ("recall", "0.8923"),
            ("f1", "0.8823"),
            ("roc_auc", "0.8723"),
        ):
            assert row_texts(grid, f"metric:{name}")[:2] == [name, value]
        await whole_on_screen(pilot, "test judged", "0.9123", "roc_auc")
        assert grid.virtual_size.width > grid.size.width  # more evaluations than fit
        before = grid.scroll_x
        await pilot.press("right", "right", "right")
        await wait_for(pilot, lambda: grid.scroll_x > before)
        await pilot.press("down")
        assert grid.cursor_row == 1
        await pilot.pause(1.3)  # the screen reloads every second: the same columns stay put
        assert grid.cursor_row == 1 and grid.scroll_x > before


# -- issue 7 item 11: a warning of the Deck is a toast, once ---------------------------------


async def test_a_skipped_model_folder_is_a_toast_once(deck: Deck, project: str, repo: Path) -> None:
    folder = os.fsencode(repo / "models") + b"/caf\xe9"
    os.mkdir(folder)
    with open(folder + b"/training.py", "w") as fh:
        fh.write(SCRIPTED_TRAINING)
    app = ModelDeckApp(deck, project=project, run_engine=False, poll=0.25)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:

        def toasts() -> list[str]:
            return [t.render().plain for t in app.screen.query(Toast) if "caf" in t.render().plain]

        await wait_for(pilot, lambda: len(toasts()) > 0)
        assert "skipping model folder 'caf\\xe9'" in toasts()[0]
        await project_tab(app, pilot, "1", "#models-table")  # read the models again
        await pilot.press("2", "1")
        await pilot.pause(1.0)
        assert len(toasts()) == 1


async def test_a_target_too_long_for_80_columns_is_cut_and_the_rest_stays_whole(
    deck: Deck, project: str
) -> None:
    long = {f"param_{i}": "x" * 12 for i in range(6)}
    job = deck.train(project, "scripted", "train", long)  # queued: no engine runs it here
    app = ModelDeckApp(deck, project=project, run_engine=False, poll=0.25)
    async with app.run_test(size=SMALL) as pilot:
        jobs = await project_tab(app, pilot, "2", "#jobs-table")
        await wait_for(pilot, lambda: jobs.row_count == 1)
        await whole_on_screen(pilot, "scripted  param_0=xxxxxxxxxxxx", "· queued")
        # Not started yet: no start time (its creation's is not one).
        assert row_texts(jobs, job.id)[columns(jobs).index("started")] == "-"
        assert "…" in row_texts(jobs, job.id)[columns(jobs).index("target")]


# A scoring that waits while its hold file exists: a run stays running until the test
# removes it (the training's baseline scores too, before the hold is made).
HELD_SCORING = """
import pathlib
import time


def score(context):
    while pathlib.Path({hold!r}).exists():
        time.sleep(0.05)
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n0,1\\n")
"""


async def test_the_deployments_tab_keeps_its_columns_while_a_run_goes_on(
    deck: Deck, project: str, repo: Path
) -> None:
    """At 80x24 the columns shown before the first run, while it runs and after it are the
    same (a running run's `▶ running` pushed the schedule out); its last run is on the
    deployment's clock as its next run is, each labelled with that zone's name at its time."""
    extend_scripted(repo)
    hold = repo / "hold"
    (repo / "models" / "scripted" / "scoring.py").write_text(HELD_SCORING.format(hold=str(hold)))
    train = deck.train(project, "scripted", "train", {})
    run_all(deck)
    version = deck.job(train.id).version or ""
    deck.evaluate(version, "test")
    run_all(deck)
    deck.approve(version, "ok")
    run_all(deck)
    deck.deploy(version, "score", "0 6 * * *", SCHEDULE_ZONE)
    run_all(deck)
    dep = deck.deployments(project)[0]
    app = ModelDeckApp(deck, project=project, poll=0.1)
    async with app.run_test(size=SMALL) as pilot:
        table = await project_tab(app, pilot, "3", "#deployments-table")
        await wait_for(pilot, lambda: app.engine is not None and app.engine.holds_lease)
        await wait_for(pilot, lambda: "(no engine)" not in " ".join(row_texts(table, dep.id)))
        before = columns(table)
        assert "last run" in before and "next run" in before
        seen = [before]
        hold.write_text("")
        await pilot.press("r")

        def cells() -> dict[str, str]:
            return dict(zip(columns(table), row_texts(table, dep.id), strict=True))

        async def watch(condition: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 30
            while not condition():
                assert time.monotonic() < deadline, f"timed out; columns seen: {seen}"
                seen.append(columns(table))
                await pilot.pause(0.05)

        await watch(lambda: cells().get("last run", "").startswith("▶ "))
        hold.unlink()
        await watch(lambda: cells().get("last run", "").startswith("✓ "))
        seen.append(columns(table))
        assert all(shown == before for shown in seen), seen
        run = deck.jobs(project, job_type="batch_predict")[0]
        assert cells()["last run"] == f"✓ {on_schedule_clock(run.started_at)}"
        # The next run on the same clock, labelled with its own zone (not the run's: a DST
        # change may come between them). Waited for: it moves on if the schedule fires.
        await wait_for(
            pilot,
            lambda: cells()["next run"] == on_schedule_clock(deck.deployment(dep.id).next_run_at),
        )
