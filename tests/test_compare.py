"""`modeldeck compare`: real versions of a scikit-learn model side by side, their metrics
checked against the models' own scores computed here, the hyperparameters that differ, and
the refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import ROOT, SKLEARN_TRAINING, Result, ok, refused, write_csv, write_model

from core.engine import Engine
from core.service import Deck


@dataclass
class Prepared:
    home: Path
    repo: Path
    v1: str  # clf v1: C=1.0, approved
    v2: str  # clf v2: C=0.01, evaluated
    accuracy: dict[str, float]  # each version's accuracy on test.csv, computed here
    actor: str


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    base = tmp_path_factory.mktemp("compare")
    repo, home = base / "repo", base / "home"
    write_model(
        repo,
        "clf",
        SKLEARN_TRAINING,
        **{
            "config.json": json.dumps({"hyperparameters": {"C": 1.0}}),
            "model.json": json.dumps({"task": "classification"}),
        },
    )
    (repo / "data").mkdir()
    write_csv(repo / "data" / "train.csv")
    test_csv = repo / "data" / "test.csv"
    # Shifted away from the training data, so the two regularisations score differently.
    lines = ["x1,x2,label"]
    for i in range(40):
        cls = i % 2
        lines.append(f"{cls * 0.9 + (i % 9) * 0.12:.2f},{-cls * 0.4 + (i % 4) * 0.2:.2f},{cls}")
    test_csv.write_text("\n".join(lines) + "\n")
    deck = Deck(home=home)
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "test", test_csv, target="label")
    engine = Engine(deck, workers=1)
    try:
        jobs = [
            deck.train("proj", "clf", "train", {"C": 1.0, "seed": 7}),
            deck.train("proj", "clf", "train", {"C": 0.01, "seed": 7}),
        ]
        assert engine.run_until_idle(120)
        v1, v2 = (deck.job(j.id).version for j in jobs)
        assert v1 and v2
        for v in (v1, v2):
            deck.evaluate(v, "test")
        assert engine.run_until_idle(120)
        deck.approve(v1, "better on the shifted holdout")
        assert engine.run_until_idle(60)
        frame = pd.read_csv(test_csv)
        x, y = frame[["x1", "x2"]], frame["label"]
        accuracy = {}
        for v in (v1, v2):
            model = joblib.load(Path(deck.version_detail(v).artifact_dir) / "model.joblib")
            accuracy[v] = float((model.predict(x) == y).mean())
        actor = deck.job(jobs[0].id).actor
    finally:
        engine.shutdown()
        deck.close()
    yield Prepared(home, repo, v1, v2, accuracy, actor)


def run(prepared: Prepared, *args: str) -> Result:
    env = dict(os.environ, MODELDECK_HOME=str(prepared.home))
    env.pop("MODELDECK_DB", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tui.entry", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_compare_json_side_by_side(prepared: Prepared) -> None:
    p = prepared
    data = ok(run(p, "compare", p.v1, "clf:2", "--json")).json()
    assert isinstance(data, dict)
    first, second = data["versions"]
    assert (first["id"], second["id"]) == (p.v1, p.v2)  # in the order given
    assert (first["status"], second["status"]) == ("approved", "evaluated")
    assert first["dataset"] == second["dataset"] == "train"
    assert first["trainer"] == second["trainer"] == p.actor
    assert first["approval"] == f"approved by {p.actor}: better on the shifted holdout"
    assert second["approval"] is None
    assert first["metrics_dataset"] == second["metrics_dataset"] == "test"
    assert first["code_fingerprint"] and first["code_fingerprint"] == second["code_fingerprint"]
    assert first["approved_at"].endswith("Z")  # ISO 8601 UTC
    metrics = {m["name"]: m for m in data["metrics"]}
    acc = metrics["accuracy"]
    want1, want2 = p.accuracy[p.v1], p.accuracy[p.v2]
    assert acc["values"] == pytest.approx([want1, want2])
    assert acc["deltas"][0] is None
    assert acc["deltas"][1] == pytest.approx(want2 - want1)
    assert want1 != want2  # the delta says something
    assert "confusion_matrix" not in metrics  # a list has no delta
    # Only what differs: both were trained with seed=7.
    assert [(h["name"], h["values"]) for h in data["hyperparameters"]] == [("C", [1.0, 0.01])]
    assert data["same_hyperparameters"] == 1


def test_compare_all_shows_the_same_hyperparameters_too(prepared: Prepared) -> None:
    p = prepared
    data = ok(run(p, "compare", "clf:1", "clf:2", "--all", "--json")).json()
    assert isinstance(data, dict)
    rows = {h["name"]: h["values"] for h in data["hyperparameters"]}
    assert rows == {"C": [1.0, 0.01], "seed": [7, 7]}


def test_compare_for_people(prepared: Prepared) -> None:
    p = prepared
    out = ok(run(p, "compare", "clf:1", "clf:2")).out
    lines = out.splitlines()
    assert lines[0].split() == ["version", "clf", "v1", "clf", "v2"]
    acc = next(line for line in lines if line.startswith("metric accuracy"))
    delta = p.accuracy[p.v2] - p.accuracy[p.v1]
    assert f"{p.accuracy[p.v1]:.4f}" in acc
    assert f"{p.accuracy[p.v2]:.4f} ({delta:+.4f})" in acc
    param = next(line for line in lines if line.startswith("param C"))
    assert param.split()[2:] == ["1.0", "0.01"]
    assert not any(line.startswith("param seed") for line in lines)
    assert "1 hyperparameter(s) the same in all: --all shows them" in out
    status = next(line for line in lines if line.startswith("status"))
    assert status.split()[1:] == ["approved", "evaluated"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clf:1"], "compare takes at least two versions"),
        (["clf:1", "{v1}"], "are the same version (clf v1)"),
        (["clf:1", "clf:9"], "unknown version 'clf:9'"),
    ],
)
def test_compare_refuses(prepared: Prepared, args: list[str], message: str) -> None:
    line = refused(run(prepared, "compare", *(a.format(v1=prepared.v1) for a in args)))
    assert message in line
