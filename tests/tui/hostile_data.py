"""A project whose every user- and job-controlled text holds Rich markup and terminal escape
sequences: names, paths, reasons, hyperparameters, errors, progress messages, metric names,
output file names and log lines. Built through the Deck with real jobs run by a real engine.

Project, model and dataset names and the target column are given their hostile values by
renaming the rows once the jobs ran, as a database written by an older modeldeck (or a
teammate's tool) could hold them: the name rule may refuse them at creation, and the screens
must still show what is stored without running it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import write_csv, write_model
from sqlmodel import select
from tui_support import run_all

from core.models import Dataset, Model, Project
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
    """Create the hostile project under ``root`` and return the data home."""
    shutil.rmtree(root, ignore_errors=True)
    repo = root / REPO_DIR
    hyper = {"note": HYPER}
    write_model(
        repo,
        "clf",
        TRAINING,
        **{
            "config.json": json.dumps({"hyperparameters": hyper}),
            "evaluation.py": EVALUATION,
            "scoring.py": SCORING,
        },
    )
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_csv = write_csv(data / "train.csv")
    score_csv = write_csv(data / "score.csv", rows=20, target=False)
    home = root / "home"
    deck = Deck(home=home)
    try:
        deck.add_project("team", repo)
        deck.add_dataset("team", "data", train_csv, target="label")
        deck.add_dataset("team", "scoring", score_csv)
        approved = deck.train("team", "clf", "data")
        rejected = deck.train("team", "clf", "data")
        evaluated = deck.train("team", "clf", "data")
        deck.train("team", "clf", "data", {"fail": ERROR})
        run_all(deck)
        versions = [deck.job(j.id).version for j in (approved, rejected, evaluated)]
        for v in versions:
            deck.evaluate(v, "data")
        run_all(deck)
        deck.approve(versions[0], REASON_APPROVE)
        deck.reject(versions[1], REASON_REJECT)
        run_all(deck)
        deck.deploy(versions[0], "scoring", "0 6 * * 1-5", "Europe/Paris")
        run_all(deck)
        deck.predict(deck.deployments("team")[0].id)
        run_all(deck)
        _rename(deck)
    finally:
        deck.close()
    # The model folder goes: its row now has a name no folder can have.
    shutil.rmtree(repo / "models" / "clf")
    return home


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
        s.commit()
