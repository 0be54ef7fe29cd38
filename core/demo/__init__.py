"""The demo project: a model repository shipped in the package, datasets split from
scikit-learn's bundled iris data (shipped as CSV files: no download), a first train and
evaluation, and that version deployed with two batch runs: the second on incoming data whose
petals grew, so the deployment shows real drift."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

from core.errors import NotFound
from core.lifecycle import JobStatus
from core.service import Deck
from core.views import ProjectView

TEMPLATE = Path(__file__).parent / "repo"
DATA = Path(__file__).parent / "data"
PROJECT = "demo"


PETAL_GROWTH_CM = 1.5  # how much longer the petals of the second batch of incoming data are


def write_datasets(data_dir: Path) -> dict[str, Path]:
    """Train, test and score splits of iris as CSV files; the score split has no target.
    ``incoming`` (the deployment's data, with the target) is all 150 flowers. The files ship
    with the package (``data/``: scikit-learn's bundled iris, split once, stratified, with
    ``random_state=7``): copying them spares the demo's first command the seconds it takes
    to import scikit-learn."""
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: data_dir / f"{name}.csv" for name in ("train", "test", "score", "incoming")}
    for path in paths.values():
        shutil.copyfile(DATA / path.name, path)
    return paths


def grow_petals(path: Path) -> None:
    """The incoming data's next batch: the same flowers with longer petals."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["petal_length"] = str(round(float(row["petal_length"]) + PETAL_GROWTH_CM, 1))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


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
    deck.add_dataset(PROJECT, "iris-incoming", paths["incoming"], target="target")
    progress("training iris-logreg and evaluating it (a first bit of history)")
    train = deck.train(PROJECT, "iris-logreg", "iris-train")
    _run(deck, train.id)
    trained = deck.job(train.id)
    if trained.status == JobStatus.completed.value and trained.version:
        evaluation = deck.evaluate(trained.version, "iris-test")
        _run(deck, evaluation.id)
        if deck.job(evaluation.id).status == JobStatus.completed.value:
            deploy_with_drift(deck, trained.version, paths["incoming"], progress)
    return deck.project(PROJECT)


def deploy_with_drift(
    deck: Deck, version: str, incoming: Path, progress: Callable[[str], None]
) -> None:
    """Approve and deploy the version on the incoming data, score it, then score the next
    batch, whose petals grew: the deployment's drift and performance have two runs."""
    progress("deploying it and scoring two batches of incoming data (the second drifts)")
    _run(deck, deck.approve(version, "demo: good enough on the holdout").id)
    deploy = deck.deploy(version, "iris-incoming")
    _run(deck, deploy.id)
    deployment = deck.job(deploy.id).deployment
    if deployment is None:
        return
    _run(deck, deck.predict(deployment).id)
    grow_petals(incoming)
    _run(deck, deck.predict(deployment).id)


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
