"""Metrics per evaluation (job, dataset, time), approvals that record the evaluations they
were made on, and statistics kept per dataset and job: real sklearn jobs, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, SKLEARN_TRAINING, Result, ok, write_csv, write_model

from core.engine import Engine
from core.service import Deck


def done(deck: Deck, job_id: str, timeout: float = 60) -> str:
    return deck.wait(job_id, timeout=timeout, poll=0.05).status


def start_engine(deck: Deck) -> Engine:
    eng = Engine(deck, workers=2, grace=5.0, poll=0.05)
    eng.start()
    return eng


def stop_engine(eng: Engine) -> None:
    eng.shutdown()
    for run in list(eng.running.values()):
        eng.executors.of(run.handle).signal(run.handle, 9)


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    eng = start_engine(deck)
    yield eng
    stop_engine(eng)


def write_noisy(path: Path) -> Path:
    """A held-out dataset with one label in four flipped: accuracy 0.75, not 1.0."""
    write_csv(path, rows=40)
    lines = path.read_text().splitlines()
    for i in range(1, len(lines), 4):
        *xs, label = lines[i].split(",")
        lines[i] = ",".join([*xs, str(1 - int(label))])
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class World:
    deck: Deck
    cli: Callable[..., Result]
    repo: Path
    v1: dict[str, str]
    v2: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two versions of clf, each evaluated on a held-out set, then on its own training set
    (the trap); built once for the module, with an engine serving it."""
    root = tmp_path_factory.mktemp("evaluations")
    repo = root / "repo"
    write_model(
        repo,
        "clf",
        SKLEARN_TRAINING,
        **{
            "config.json": json.dumps({"hyperparameters": {"C": 1.0}}),
            "model.json": json.dumps({"task": "classification"}),
        },
    )
    data = repo / "data"
    data.mkdir()
    write_csv(data / "train.csv")
    write_csv(data / "score.csv", rows=20, target=False)
    write_noisy(data / "noisy.csv")
    home = root / "home"
    home.mkdir()
    deck = Deck(home=home)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", data / "train.csv", target="label")
    deck.add_dataset("proj", "score", data / "score.csv")
    deck.add_dataset("proj", "noisy", data / "noisy.csv", target="label")

    def cli(*args: str) -> Result:
        env = dict(os.environ, MODELDECK_HOME=str(home))
        proc = subprocess.run(
            [sys.executable, "-m", "tui.entry", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=ROOT,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    eng = start_engine(deck)
    try:
        trains = [deck.train("proj", "clf", "train") for _ in range(2)]
        assert all(done(deck, t.id) == "completed" for t in trains)
        versions = [deck.job(t.id).version or "" for t in trains]
        held = [deck.evaluate(v, "noisy") for v in versions]
        assert all(done(deck, j.id) == "completed" for j in held)
        on_train = [deck.evaluate(v, "train") for v in versions]
        assert all(done(deck, j.id) == "completed" for j in on_train)
        v1, v2 = (
            {"version": v, "train": t.id, "held": h.id, "on_train": o.id}
            for v, t, h, o in zip(versions, trains, held, on_train, strict=True)
        )
        yield World(deck, cli, repo, v1, v2)
    finally:
        stop_engine(eng)
        deck.close()


def version_row(world: World, v: str) -> dict:
    rows = ok(world.cli("versions", "proj", "--model", "clf", "--json")).json()
    return next(r for r in rows if r["id"] == v)


def test_metrics_are_kept_per_evaluation_and_the_version_is_judged_held_out(
    world: World,
) -> None:
    ids = world.v1
    v = ids["version"]
    row = version_row(world, v)
    # The evaluation on the training data came last, but the version is judged held out.
    assert row["metrics"]["accuracy"] == pytest.approx(0.75)
    assert row["metrics_from"]["job_id"] == ids["held"]
    assert row["metrics_from"]["dataset"] == "noisy"
    assert "accuracy=0.7500 on noisy" in ok(world.cli("versions", "proj")).out

    detail = ok(world.cli("version", v, "--json")).json()
    evals = detail["evaluations"][:2]
    assert [(e["job_id"], e["dataset"]) for e in evals] == [
        (ids["held"], "noisy"),
        (ids["on_train"], "train"),
    ]
    assert [e["training"] for e in evals] == [False, True]
    assert evals[1]["metrics"]["accuracy"] == pytest.approx(1.0)
    for e in evals:
        assert e["dataset_id"].startswith("d-") and e["at"].endswith("Z")


def test_an_approval_records_the_evaluation_it_was_made_on(world: World) -> None:
    ids, deck, cli = world.v1, world.deck, world.cli
    v = ids["version"]
    approved = ok(cli("approve", v, "--reason", "0.75 on noisy is enough"))
    # The command says which evaluation the approval refers to.
    assert f"on evaluation {ids['held']} of dataset noisy" in approved.out
    approval = ok(cli("version", v, "--json")).json()["version"]["approval"]
    [seen] = approval["evaluations"]
    assert (seen["job_id"], seen["dataset"]) == (ids["held"], "noisy")
    assert seen["metrics"]["accuracy"] == pytest.approx(0.75)
    assert approval["metrics"]["accuracy"] == pytest.approx(0.75)
    # A later evaluation changes nothing in the record.
    again = deck.evaluate(v, "train")
    assert done(deck, again.id) == "completed"
    later = ok(cli("version", v, "--json")).json()["approvals"]
    assert later[0]["evaluations"][0]["job_id"] == ids["held"]


def test_approve_on_a_chosen_evaluation_and_refusals(world: World) -> None:
    ids, cli = world.v2, world.cli
    v = ids["version"]
    before = ok(cli("version", v, "--json")).json()
    for ref, message in [
        (ids["train"], "not an evaluation"),
        (world.v1["held"], "not an evaluation of version"),
        ("j-000000000000", "unknown job"),
    ]:
        refused = cli("reject", v, "--reason", "no", "--evaluation", ref)
        assert refused.code == 2, refused
        assert refused.err.startswith("error: ") and message in refused.err
        assert "Traceback" not in refused.err
    assert ok(cli("version", v, "--json")).json() == before  # nothing changed

    ok(cli("reject", v, "--reason", "overfits", "--evaluation", ids["on_train"][:10]))
    approval = ok(cli("version", v, "--json")).json()["version"]["approval"]
    assert approval["decision"] == "rejected"
    assert [e["job_id"] for e in approval["evaluations"]] == [ids["on_train"]]
    assert approval["evaluations"][0]["metrics"]["accuracy"] == pytest.approx(1.0)


def test_model_json_names_the_headline_metric_and_the_dataset_it_is_judged_on(
    world: World,
) -> None:
    meta = world.repo / "models" / "clf" / "model.json"
    before = meta.read_text()
    try:
        meta.write_text(
            json.dumps({"task": "classification", "metric": "f1", "judged_on": "train"})
        )
        row = version_row(world, world.v2["version"])
        assert row["metric"] == "f1"
        assert row["metrics_from"]["job_id"] == world.v2["on_train"]
        assert "f1=1.0000 on train" in ok(world.cli("versions", "proj")).out
    finally:
        meta.write_text(before)


def test_statistics_are_kept_per_dataset_and_job(world: World) -> None:
    deck, cli = world.deck, world.cli
    v = world.v1["version"]
    first = deck.compute_stats(v, "train")
    assert done(deck, first.id) == "completed"
    second = deck.compute_stats(v, "score")
    assert done(deck, second.id) == "completed"
    detail = ok(cli("version", v, "--json")).json()
    # The training recorded its data's statistics first (the version's baseline).
    trained_by, *runs = detail["statistics"]
    assert (trained_by["job_id"], trained_by["dataset"]) == (detail["version"]["job_id"], "train")
    assert [(r["job_id"], r["dataset"], r["rows"]) for r in runs] == [
        (first.id, "train", 60),
        (second.id, "score", 20),
    ]
    assert set(runs[0]["columns"]) == {"x1", "x2", "label"}
    assert set(runs[1]["columns"]) == {"x1", "x2"}
    assert runs[0]["columns"]["x1"]["count"] == 60
    assert all(r["dataset_id"].startswith("d-") and r["at"].endswith("Z") for r in runs)
    # Readable: a table per run, a row per column, with a sparkline of the histogram.
    text = ok(cli("version", v)).out
    assert f"statistics of train by job {first.id}" in text
    assert f"statistics of score by job {second.id}" in text
    x1 = [line.split() for line in text.splitlines() if line.strip().startswith("x1")]
    assert [row[1:4] for row in x1] == [["numeric", "60", "0"]] * 2 + [["numeric", "20", "0"]]
    assert any(ch in text for ch in "▁▂▃▄▅▆▇█")
    assert len(text.splitlines()) < 40
    listed = detail["version"]["statistics"][1:]
    assert [(r["job_id"], r["dataset"]) for r in listed] == [
        (first.id, "train"),
        (second.id, "score"),
    ]


def _csv(path: Path, header: list[str], rows: list[list[float]]) -> Path:
    path.write_text(
        "\n".join([",".join(header), *(",".join(str(x) for x in r) for r in rows)]) + "\n"
    )
    return path


def test_a_dataset_whose_columns_do_not_fit_is_refused_at_submission(
    cli, deck: Deck, project: str, repo: Path, engine: Engine, tmp_path: Path
) -> None:
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    data = repo / "data"
    rows = [[i % 2 * 2.0 + (i % 7) * 0.1, -(i % 2) * 1.5, i % 2] for i in range(20)]
    _csv(data / "cancer.csv", ["radius", "texture", "label"], rows)
    deck.add_dataset(project, "cancer", data / "cancer.csv", target="label")
    _csv(data / "wide.csv", ["x1", "x2", "x3", "label"], [[a, b, 0.0, c] for a, b, c in rows])
    deck.add_dataset(project, "wide", data / "wide.csv", target="label")
    # The same columns in another order fit: the built-in evaluator puts them in order.
    _csv(data / "shuffled.csv", ["label", "x2", "x1"], [[c, b, a] for a, b, c in rows])
    deck.add_dataset(project, "shuffled", data / "shuffled.csv", target="label")

    train = deck.train(project, "clf", "train")
    assert done(deck, train.id) == "completed"
    v = deck.job(train.id).version
    jobs_before = len(ok(cli("jobs", "proj", "--json")).json())

    def refused(*args: str) -> str:
        result = cli(*args)
        assert result.code == 2, result
        assert "Traceback" not in result.err
        [line] = result.err.splitlines()
        assert line.startswith("error: ")
        return line

    line = refused("evaluate", v, "--dataset", "cancer")
    assert "missing column(s) 'x1', 'x2'" in line
    assert "extra column(s) 'radius', 'texture'" in line
    assert "it was trained on 'x1', 'x2'" in line
    assert "extra column(s) 'x3'" in refused("stats", v, "--dataset", "wide")
    assert "missing column(s)" not in refused("stats", v, "--dataset", "wide")
    assert len(ok(cli("jobs", "proj", "--json")).json()) == jobs_before  # nothing queued

    shuffled = deck.evaluate(v, "shuffled")
    assert done(deck, shuffled.id) == "completed", deck.job(shuffled.id).error
    ok(cli("approve", v, "--reason", "fits"))
    assert "missing column(s) 'x1', 'x2'" in refused("deploy", v, "--dataset", "cancer")

    # An imported estimator fitted with named columns is checked against them too.
    frame = pd.DataFrame([r[:2] for r in rows], columns=["x1", "x2"])
    model_file = tmp_path / "named.joblib"
    joblib.dump(LogisticRegression().fit(frame, [r[2] for r in rows]), model_file)
    imported = deck.import_model(project, "named", str(model_file))
    assert done(deck, imported.id) == "completed"
    byom = deck.job(imported.id).version
    assert "extra column(s) 'radius', 'texture'" in refused("evaluate", byom, "--dataset", "cancer")
