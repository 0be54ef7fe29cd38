"""Metrics per evaluation (job, dataset, time), approvals that record the evaluations they
were made on, and statistics kept per dataset and job: real sklearn jobs, the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_csv

from core.engine import Engine
from core.service import Deck


def ok(result):  # type: ignore[no-untyped-def]
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err, result.err
    return result


def done(deck: Deck, job_id: str, timeout: float = 60) -> str:
    return deck.wait(job_id, timeout=timeout, poll=0.05).status


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    eng = Engine(deck, workers=2, grace=5.0, poll=0.05)
    eng.start()
    yield eng
    eng.shutdown()
    for run in list(eng.running.values()):
        eng._killpg(run, 9)


@pytest.fixture
def noisy(deck: Deck, project: str, repo: Path) -> str:
    """A held-out dataset with one label in four flipped: accuracy 0.75, not 1.0."""
    path = write_csv(repo / "data" / "noisy.csv", rows=40)
    lines = path.read_text().splitlines()
    for i in range(1, len(lines), 4):
        *xs, label = lines[i].split(",")
        lines[i] = ",".join([*xs, str(1 - int(label))])
    path.write_text("\n".join(lines) + "\n")
    deck.add_dataset(project, "noisy", path, target="label")
    return "noisy"


@pytest.fixture
def evaluated(deck: Deck, project: str, noisy: str, engine: Engine) -> dict[str, str]:
    """clf v1 evaluated on the held-out set, then on its own training set (the trap)."""
    train = deck.train(project, "clf", "train")
    assert done(deck, train.id) == "completed"
    v = deck.job(train.id).version
    held = deck.evaluate(v, noisy)
    assert done(deck, held.id) == "completed"
    on_train = deck.evaluate(v, "train")
    assert done(deck, on_train.id) == "completed"
    return {"version": v, "train": train.id, "held": held.id, "on_train": on_train.id}


def test_metrics_are_kept_per_evaluation_and_the_version_is_judged_held_out(
    cli, deck: Deck, evaluated: dict[str, str]
) -> None:
    v = evaluated["version"]
    [row] = [x for x in ok(cli("versions", "proj", "--model", "clf", "--json")).json()]
    # The evaluation on the training data came last, but the version is judged held out.
    assert row["metrics"]["accuracy"] == pytest.approx(0.75)
    assert row["metrics_from"]["job_id"] == evaluated["held"]
    assert row["metrics_from"]["dataset"] == "noisy"
    assert "accuracy=0.750 on noisy" in ok(cli("versions", "proj")).out

    detail = ok(cli("version", v, "--json")).json()
    evals = detail["evaluations"]
    assert [(e["job_id"], e["dataset"]) for e in evals] == [
        (evaluated["held"], "noisy"),
        (evaluated["on_train"], "train"),
    ]
    assert [e["training"] for e in evals] == [False, True]
    assert evals[1]["metrics"]["accuracy"] == pytest.approx(1.0)
    for e in evals:
        assert e["dataset_id"].startswith("d-") and e["at"].endswith("Z")


def test_an_approval_records_the_evaluation_it_was_made_on(
    cli, deck: Deck, evaluated: dict[str, str]
) -> None:
    v = evaluated["version"]
    approved = ok(cli("approve", v, "--reason", "0.75 on noisy is enough"))
    # The command says which evaluation the approval refers to.
    assert f"on evaluation {evaluated['held']} of dataset noisy" in approved.out
    approval = ok(cli("version", v, "--json")).json()["version"]["approval"]
    [seen] = approval["evaluations"]
    assert (seen["job_id"], seen["dataset"]) == (evaluated["held"], "noisy")
    assert seen["metrics"]["accuracy"] == pytest.approx(0.75)
    assert approval["metrics"]["accuracy"] == pytest.approx(0.75)
    # A later evaluation changes nothing in the record.
    again = deck.evaluate(v, "noisy")
    assert done(deck, again.id) == "completed"
    later = ok(cli("version", v, "--json")).json()["approvals"]
    assert later[0]["evaluations"][0]["job_id"] == evaluated["held"]


def test_approve_on_a_chosen_evaluation_and_refusals(
    cli, deck: Deck, evaluated: dict[str, str]
) -> None:
    v = evaluated["version"]
    before = ok(cli("version", v, "--json")).json()
    for ref, message in [
        (evaluated["train"], "not an evaluation"),
        ("j-000000000000", "unknown job"),
    ]:
        refused = cli("reject", v, "--reason", "no", "--evaluation", ref)
        assert refused.code == 2, refused
        assert refused.err.startswith("error: ") and message in refused.err
        assert "Traceback" not in refused.err
    assert ok(cli("version", v, "--json")).json() == before  # nothing changed

    ok(cli("reject", v, "--reason", "overfits", "--evaluation", evaluated["on_train"][:10]))
    approval = ok(cli("version", v, "--json")).json()["version"]["approval"]
    assert approval["decision"] == "rejected"
    assert [e["job_id"] for e in approval["evaluations"]] == [evaluated["on_train"]]
    assert approval["evaluations"][0]["metrics"]["accuracy"] == pytest.approx(1.0)


def test_model_json_names_the_headline_metric_and_the_dataset_it_is_judged_on(
    cli, deck: Deck, repo: Path, evaluated: dict[str, str]
) -> None:
    meta = repo / "models" / "clf" / "model.json"
    meta.write_text(json.dumps({"task": "classification", "metric": "f1", "judged_on": "train"}))
    [row] = ok(cli("versions", "proj", "--model", "clf", "--json")).json()
    assert row["metric"] == "f1"
    assert row["metrics_from"]["job_id"] == evaluated["on_train"]
    assert "f1=1.000 on train" in ok(cli("versions", "proj")).out


def test_statistics_are_kept_per_dataset_and_job(
    cli, deck: Deck, evaluated: dict[str, str]
) -> None:
    v = evaluated["version"]
    first = deck.compute_stats(v, "train")
    assert done(deck, first.id) == "completed"
    second = deck.compute_stats(v, "score")
    assert done(deck, second.id) == "completed"
    detail = ok(cli("version", v, "--json")).json()
    runs = detail["statistics"]
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
    assert [row[1:4] for row in x1] == [["numeric", "60", "0"], ["numeric", "20", "0"]]
    assert any(ch in text for ch in "▁▂▃▄▅▆▇█")
    assert len(text.splitlines()) < 30
    listed = detail["version"]["statistics"]
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
