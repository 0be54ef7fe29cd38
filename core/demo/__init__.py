"""The demo project: a model repository shipped in the package, datasets written from
scikit-learn's bundled iris data (no download), and a first train and evaluation."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from core.errors import NotFound
from core.lifecycle import JobStatus
from core.service import Deck
from core.views import ProjectView

TEMPLATE = Path(__file__).parent / "repo"
PROJECT = "demo"


def write_datasets(data_dir: Path) -> dict[str, Path]:
    """Train, test and score splits of iris as CSV files; the score split has no target."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    frame = load_iris(as_frame=True).frame.rename(
        columns=lambda c: c.replace(" (cm)", "").replace(" ", "_")
    )
    train, rest = train_test_split(frame, test_size=0.4, random_state=7, stratify=frame["target"])
    test, score = train_test_split(rest, test_size=0.5, random_state=7, stratify=rest["target"])
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "train": data_dir / "train.csv",
        "test": data_dir / "test.csv",
        "score": data_dir / "score.csv",
    }
    train.to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    score.drop(columns=["target"]).to_csv(paths["score"], index=False)
    return paths


def seed_demo(deck: Deck, progress: Callable[[str], None] = lambda _m: None) -> ProjectView:
    """Create the demo project once; later calls leave it as it is."""
    try:
        return deck.project(PROJECT)
    except NotFound:
        pass
    repo = deck.home / "demo-repo"
    if not (repo / "models").is_dir():
        shutil.copytree(TEMPLATE, repo, ignore=shutil.ignore_patterns("__pycache__"))
    progress(f"writing the demo datasets to {repo / 'data'}")
    paths = write_datasets(repo / "data")
    deck.add_project(PROJECT, repo)
    deck.add_dataset(PROJECT, "iris-train", paths["train"], target="target")
    deck.add_dataset(PROJECT, "iris-test", paths["test"], target="target")
    deck.add_dataset(PROJECT, "iris-score", paths["score"])
    progress("training iris-logreg and evaluating it (a first bit of history)")
    train = deck.train(PROJECT, "iris-logreg", "iris-train")
    _run(deck, train.id)
    trained = deck.job(train.id)
    if trained.status == JobStatus.completed.value and trained.version:
        _run(deck, deck.evaluate(trained.version, "iris-test").id)
    return deck.project(PROJECT)


def _run(deck: Deck, job_id: str) -> None:
    from core.engine import Engine

    if deck.serving_engine() is not None:
        deck.wait(job_id, timeout=300)
        return
    engine = Engine(deck, only_job=job_id, lease=False)
    try:
        engine.serve(
            until=lambda: deck.job(job_id).status in ("completed", "failed", "cancelled"),
            max_wait=0.1,
        )
    finally:
        engine.shutdown()
