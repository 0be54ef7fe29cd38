"""A prepared data home with a bit of everything, and ``core.cli.main`` run in this process."""

from __future__ import annotations

import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPTED_TRAINING, Result, write_csv, write_model
from deploy_support import add_fast_stages, approved_version, deploy

from core.cli import main
from core.engine import Engine
from core.service import Deck


@dataclass
class Home:
    """What the prepared home holds (all in project ``proj``, model ``scripted``)."""

    path: Path
    repo: Path
    approved: str  # version 1: approved, then deployed
    evaluated: str  # version 2: evaluated
    deployment: str
    train_job: str  # a completed job
    queued: str  # a queued job
    byom_file: Path
    extra_csv: Path


def prepare_home(base: Path, evaluation: str | None = None) -> Home:
    """Build the home under ``base``; ``evaluation`` replaces the scripted model's evaluator."""
    home, repo = base / "home", base / "repo"
    home.mkdir()
    write_model(repo, "scripted", SCRIPTED_TRAINING)
    folder = add_fast_stages(repo)
    if evaluation is not None:
        (folder / "evaluation.py").write_text(evaluation)
    (repo / "data").mkdir()
    write_csv(repo / "data" / "train.csv")
    write_csv(repo / "data" / "score.csv", target=False)
    extra = write_csv(repo / "data" / "extra.csv")
    byom = repo / "model.pkl"
    byom.write_bytes(pickle.dumps({"not": "a model, but the import is only queued"}))
    deck = Deck(home=home)
    deck.add_project("proj", repo)
    deck.add_project("demo", repo)  # `demo` then finds its project and seeds nothing
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "test", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "score", repo / "data" / "score.csv")
    engine = Engine(deck, workers=1)
    try:
        approved = approved_version(deck, engine, "proj")
        dep = deploy(deck, engine, approved, "0 6 * * *", "Europe/Berlin")
        train = deck.train("proj", "scripted", "train", {"lines": 1})
        assert engine.run_until_idle(30)
        evaluated = deck.job(train.id).version
        assert evaluated
        ev = deck.evaluate(evaluated, "test")
        assert engine.run_until_idle(30)
        assert deck.job(ev.id).status == "completed"
    finally:
        engine.shutdown()
    queued = deck.train("proj", "scripted", "train", {"lines": 1})
    deck.close()
    return Home(home, repo, approved, evaluated, dep, train.id, queued.id, byom, extra)


def run_main(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    open_tui: Callable[[Any], int] | None = None,
) -> Result:
    """``modeldeck ARGV`` in this process: its exit status and what it printed."""
    capsys.readouterr()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(argv, open_tui=open_tui)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    return Result(code, out, err)
