"""A project whose every user- and job-controlled text holds Rich markup and terminal escape
sequences: names, paths, reasons, hyperparameters, errors, progress messages, metric names,
output file names and log lines. Built through the Deck with real jobs run by a real engine.

Project, model and dataset names and the target column are given their hostile values by
renaming the rows once the jobs ran, as a database written by an older modeldeck (or a
teammate's tool) could hold them: the name rule may refuse them at creation, and the screens
must still show what is stored without running it."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import write_csv, write_model
from snapshot_data import _normalise as normalise
from snapshot_data import fixed_ids_and_actor
from sqlmodel import select
from tui_support import run_all

from core.clock import FakeClock
from core.models import Dataset, Deployment, EngineLease, Model, Project
from core.service import Deck
from core.text import printable

# Every sequence of the issue: Rich markup that crashes (a closing tag with nothing open) and
# markup that styles, a window title (OSC ended by ST and by BEL), the clipboard (OSC 52),
# a cursor position report that makes the terminal type into the shell, a screen clear, and
# the same CSI as one C1 byte.
TITLE_ST = "\x1b]0;pwned\x1b\\"
TITLE_BEL = "\x1b]2;pwned\x07"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
REPORT = "\x1b[6n"
CLEAR = "\x1b[2J"
C1_CSI = "\x9b6n"


def hostile(tag: str) -> str:
    """A text starting with ``tag`` (to find it on screen) and holding every attack."""
    return f"{tag} [/oops] [bold red]x[/] {TITLE_ST} {CLIPBOARD} {REPORT} {CLEAR} {C1_CSI}"


def hostile_name(tag: str) -> str:
    """A name (no spaces) that holds markup and escape sequences."""
    return f"{tag}[/oops][b]x[/b]{TITLE_BEL}{REPORT}"


PROJECT = hostile_name("team")
MODEL = hostile_name("clf")
DATASET = hostile_name("data")
SCORE_DATASET = hostile_name("score")
TARGET = hostile_name("label")
REASON_APPROVE = hostile("approved-because")
REASON_REJECT = hostile("rejected-because")
HYPER = hostile("hp-value")
LOG_LINE = hostile("log-line")
PROGRESS = hostile("progress-message")
ERROR = hostile("boom")
METRIC = hostile_name("metric")
OUTPUT = f"output[b]x[/b]{TITLE_BEL}{REPORT}.csv".replace("/", "")  # a file name: no slash
HOST = hostile_name("host")
SCHEDULE = f"0 6 * * 1-5 [/oops]{TITLE_BEL}"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
REPO_DIR = "repo[/oops]" + CLEAR  # a folder in the path: "[" then "/oops]..."

TRAINING = f"""
import json
import sys


def train(context):
    print({LOG_LINE!r})
    print({LOG_LINE!r}, file=sys.stderr, flush=True)
    context.progress(0.5, {PROGRESS!r})
    (context.output_dir / {OUTPUT!r}).write_text("x")
    if context.hyperparameters.get("fail"):
        raise RuntimeError(context.hyperparameters["fail"])
    (context.model_dir / "metric.json").write_text(json.dumps({METRIC!r}))
    context.record_metrics({{{METRIC!r}: 0.5}})
"""

EVALUATION = """
import json


def evaluate(context):
    print("evaluating", context.dataset.name)
    metric = json.loads((context.model_dir / "metric.json").read_text())
    context.record_metrics({"accuracy": 0.9, metric: 0.7})
"""

SCORING = """
def score(context):
    print("scoring", context.dataset.name)
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n0,1\\n")
"""


def shown(text: str) -> str:
    """How a hostile text must look on screen: literally, its controls made visible."""
    return printable(text)


def build(root: Path) -> Path:
    """Create the hostile project under ``root`` and return the data home. Like the snapshot
    data: a frozen clock, counted ids, one actor, fixed pids and hosts, so that pictures of
    it are stable when ``root`` is a fixed folder."""
    shutil.rmtree(root, ignore_errors=True)
    repo = root / REPO_DIR
    write_model(
        repo,
        "clf",
        TRAINING,
        **{
            "config.json": json.dumps({"hyperparameters": {"note": HYPER}}),
            "evaluation.py": EVALUATION,
            "scoring.py": SCORING,
        },
    )
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_csv = write_csv(data / "train.csv")
    score_csv = write_csv(data / "score.csv", rows=20, target=False)
    home = root / "home"
    counter = itertools.count(1)

    def new_id(prefix: str) -> str:
        return f"{prefix}-{next(counter):06d}"

    clock = FakeClock(START)
    with fixed_ids_and_actor(new_id, "ana"):
        deck = Deck(home=home, clock=clock)
        try:
            deck.add_project("team", repo)
            deck.add_dataset("team", "data", train_csv, target="label")
            deck.add_dataset("team", "score", score_csv)
            trained = []
            for overrides in ({}, {}, {}, {"fail": ERROR}):
                clock.advance(minutes=5)
                trained.append(deck.train("team", "clf", "data", overrides))
                run_all(deck)
            versions = [deck.job(j.id).version for j in trained[:3]]
            for v in versions:
                clock.advance(minutes=3)
                deck.evaluate(v, "data")
                run_all(deck)
            clock.advance(minutes=10)
            deck.approve(versions[0], REASON_APPROVE)
            deck.reject(versions[1], REASON_REJECT)
            run_all(deck)
            clock.advance(minutes=2)
            deck.deploy(versions[0], "score", "0 6 * * 1-5", "Europe/Paris")
            run_all(deck)
            clock.advance(minutes=30)
            deck.predict(deck.deployments("team")[0].id)
            run_all(deck)
            normalise(deck)
            _rename(deck)
        finally:
            deck.close()
    # The model folder goes: its row now has a name no folder can have.
    shutil.rmtree(repo / "models" / "clf")
    return home


def deck_at_now(home: Path) -> Deck:
    return Deck(home=home, clock=FakeClock(NOW))


def _rename(deck: Deck) -> None:
    with deck.writer() as s:
        project = s.exec(select(Project)).one()
        project.name = PROJECT
        s.add(project)
        model = s.exec(select(Model)).one()
        model.name = MODEL
        s.add(model)
        for d in s.exec(select(Dataset)):
            if d.name == "data":
                d.name, d.target = DATASET, TARGET
            else:
                d.name = SCORE_DATASET
            s.add(d)
        # A schedule is checked when it is set; one stored by an older modeldeck was not.
        deployment = s.exec(select(Deployment)).one()
        deployment.schedule = SCHEDULE
        s.add(deployment)
        s.commit()


def add_hostile_lease(deck: Deck) -> None:
    """An engine on a host with a hostile name serves the database (until far ahead)."""
    with deck.writer() as s:
        s.merge(
            EngineLease(
                name="engine",
                owner="ana",
                host=HOST,
                pid=4242,
                heartbeat_at=NOW,
                expires_at=NOW + timedelta(days=36500),
            )
        )
        s.commit()
