"""Monitoring through the engine with real data and a real scikit-learn model: a training
records its version's baseline, each batch prediction its drift (PSI and KS checked against
values computed here independently: pandas bins, scipy's KS), metrics where the scored data
has the target, and the CLI shows them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from core.engine import Engine
from core.monitoring.store import drift_run_for_job
from core.service import Deck
from tests.conftest import Result, ok, refused, write_model

TRAINING = """
import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression

FEATURES = ["a", "b", "c"]


def train(context):
    frame = pd.read_csv(context.dataset.path)
    model = LogisticRegression(max_iter=500).fit(frame[FEATURES], frame["label"])
    joblib.dump(model, context.model_dir / "model.joblib")
"""
FEATURES = ["a", "b", "c", "city"]
FLOOR = 1e-4


def sample(seed: int, rows: int = 1000, shift_a: float = 0.0, label: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, rows) + shift_a
    b = rng.normal(5.0, 2.0, rows)
    c = rng.uniform(0.0, 10.0, rows)
    city = rng.choice(["oslo", "lima", "pune"], rows, p=[0.5, 0.3, 0.2])
    frame = pd.DataFrame({"a": a.round(4), "b": b.round(4), "c": c.round(4), "city": city})
    if label:
        noise = rng.normal(0.0, 0.5, rows)
        frame["label"] = (frame["a"] + 0.3 * frame["b"] + noise > 1.5).astype(int)
    return frame


def psi_numeric(base: pd.Series, scored: pd.Series) -> float:
    """PSI on the base's decile edges, by pandas' own binning (left-closed bins)."""
    edges = np.unique(np.quantile(base, np.arange(1, 10) / 10))
    bins = [-np.inf, *edges, np.inf]
    b = pd.cut(base, bins, right=False).value_counts(sort=False, normalize=True).to_numpy()
    s = pd.cut(scored, bins, right=False).value_counts(sort=False, normalize=True).to_numpy()
    return psi(b, s)


def psi(b: np.ndarray, s: np.ndarray) -> float:
    b, s = np.maximum(b, FLOOR), np.maximum(s, FLOOR)
    return float(((s - b) * np.log(s / b)).sum())


def psi_categorical(base: pd.Series, scored: pd.Series) -> float:
    top = base.value_counts().index[:10]
    bshares = np.array([(base == v).mean() for v in top] + [(~base.isin(top)).mean()])
    sshares = np.array([(scored == v).mean() for v in top] + [(~scored.isin(top)).mean()])
    return psi(bshares, sshares)


@pytest.fixture
def setup(deck: Deck, tmp_path: Path) -> Iterator[tuple[Deck, Engine, str, Path, pd.DataFrame]]:
    repo = tmp_path / "mrepo"
    write_model(repo, "risk", TRAINING, **{"model.json": json.dumps({"task": "classification"})})
    data = repo / "data"
    data.mkdir()
    train = sample(1)
    train.to_csv(data / "train.csv", index=False)
    sample(2, rows=400).to_csv(data / "test.csv", index=False)
    sample(3).to_csv(data / "score.csv", index=False)
    deck.add_project("mon", repo)
    deck.add_dataset("mon", "train", data / "train.csv", target="label")
    deck.add_dataset("mon", "test", data / "test.csv", target="label")
    deck.add_dataset("mon", "score", data / "score.csv", target="label")
    engine = Engine(deck, workers=1)
    try:
        job = deck.train("mon", "risk", "train")
        assert engine.run_until_idle(120)
        version = deck.job(job.id).version
        assert version, deck.events(job.id)
        for submit in (
            lambda: deck.evaluate(version, "test"),
            lambda: deck.approve(version, "fits"),
            lambda: deck.deploy(version, "score"),
        ):
            j = submit()
            assert engine.run_until_idle(120)
            assert deck.job(j.id).status == "completed", deck.job(j.id)
        dep = deck.job(j.id).deployment
        yield deck, engine, dep, data, train
    finally:
        engine.shutdown()


def run_batch(deck: Deck, engine: Engine, dep: str, frame: pd.DataFrame, data: Path) -> str:
    frame.to_csv(data / "score.csv", index=False)
    job = deck.predict(dep)
    assert engine.run_until_idle(120)
    final = deck.job(job.id)
    assert final.status == "completed", (final, deck.logs(job.id) if hasattr(deck, "logs") else "")
    return job.id


def by_name(run) -> dict:
    return {f.name: f for f in run.features}


def test_training_records_a_baseline_with_decile_bins_and_the_predictions(setup) -> None:
    deck, _, dep, _, train = setup
    version = deck.deployment(dep).version
    base = deck.monitoring.baseline(version)
    assert base is not None and base.dataset == "train" and base.rows == len(train)
    assert list(base.features) == FEATURES  # the target is no feature
    a = base.statistics["a"]
    assert a["count"] == len(train) and a["mean"] == pytest.approx(train["a"].mean())
    assert a["std"] == pytest.approx(train["a"].std())
    edges = np.unique(np.quantile(train["a"], np.arange(1, 10) / 10))
    assert a["bins"]["edges"] == pytest.approx(edges.tolist())
    assert sum(base.histograms["a"].baseline) == pytest.approx(1.0)
    assert base.histograms["city"].labels[:3] == ("oslo", "lima", "pune")
    assert base.prediction_kind == "categorical" and base.prediction is not None
    # The training's statistics are also one of the version's statistics runs.
    assert any(r.dataset == "train" for r in deck.version(version).statistics)


def test_same_distribution_is_ok_and_a_shifted_feature_alerts(setup) -> None:
    deck, engine, dep, data, train = setup
    same = sample(3, label=False)
    first = run_batch(deck, engine, dep, same, data)
    run = deck.monitoring.drift(dep)
    assert run is not None and run.job_id == first
    assert {f.name: f.status for f in run.features} == {n: "ok" for n in FEATURES}
    assert run.prediction is not None and run.prediction.status == "ok"
    assert run.status == "ok" and run.scored_rows == len(same) and run.baseline_rows == 1000
    feats = by_name(run)
    for name in ("a", "b", "c"):
        assert feats[name].psi == pytest.approx(psi_numeric(train[name], same[name]), abs=1e-9)
        assert feats[name].ks == pytest.approx(ks_2samp(train[name], same[name]).statistic)
    assert feats["city"].psi == pytest.approx(psi_categorical(train["city"], same["city"]))
    assert feats["city"].ks is None

    shifted = sample(4, shift_a=1.5, label=False)
    second = run_batch(deck, engine, dep, shifted, data)
    run = deck.monitoring.drift(dep)
    assert run.job_id == second and run.status == "alert"
    feats = by_name(run)
    assert feats["a"].status == "alert" and run.features[0].name == "a"  # the worst first
    assert {n: feats[n].status for n in ("b", "c", "city")} == {n: "ok" for n in ("b", "c", "city")}
    assert feats["a"].psi == pytest.approx(psi_numeric(train["a"], shifted["a"]), abs=1e-9)
    assert feats["a"].ks == pytest.approx(ks_2samp(train["a"], shifted["a"]).statistic)
    hist = feats["a"].histogram
    assert hist is not None and len(hist.labels) == len(hist.baseline) == len(hist.scored)
    # Newest first; the deployment's view and the alerts' read agree.
    assert [r.job_id for r in deck.monitoring.history(dep)] == [second, first]
    assert deck.deployment(dep).drift_status == "alert"
    assert deck.project("mon").drifting == 1
    assert [p.drifting for p in deck.projects() if p.name == "mon"] == [1]
    with deck.reader() as s:
        assert drift_run_for_job(s, first).status == "ok"
    assert deck.monitoring.drift(dep, first).status == "ok"


def test_scored_data_with_the_target_gives_metrics_and_columns_that_come_and_go(
    setup, cli: Callable[..., Result]
) -> None:
    deck, engine, dep, data, _ = setup
    labelled = sample(5)
    run_batch(deck, engine, dep, labelled, data)
    run = deck.monitoring.drift(dep)
    from sklearn.metrics import accuracy_score

    # The deployed model's own predictions, read back from the job's output.
    preds = pd.read_csv(deck.job_dir(run.job_id) / "output" / "predictions.csv")["prediction"]
    assert run.metrics["accuracy"] == pytest.approx(accuracy_score(labelled["label"], preds))
    assert "label" not in by_name(run)  # the target is no feature, nor a new column

    changed = sample(6, label=False).drop(columns=["city"]).assign(extra=1.0)
    last = run_batch(deck, engine, dep, changed, data)
    run = deck.monitoring.drift(dep)
    feats = by_name(run)
    assert feats["city"].status == "missing" and feats["extra"].status == "new"
    assert feats["city"].psi is None and run.status == "alert"
    # The run's log (what `predict` shows) names them too, not only the PSIs.
    said = [x for x in deck.log_path(last).read_text().splitlines() if "drift against" in x]
    assert said and said[0].endswith("; missing: city; new: extra"), said

    perf = ok(cli("performance", dep, "--json")).json()
    assert len(perf) == 1 and perf[0]["metrics"]["accuracy"] == run_accuracy(deck, dep)
    shown = ok(cli("drift", dep, "--json")).json()
    assert list(shown) == [
        "deployment",
        "job",
        "version",
        "baseline",
        "scored",
        "features",
        "prediction",
        "status",
    ]
    assert shown["job"] == last and shown["baseline"] == {"dataset": "train", "rows": 1000}
    assert shown["scored"] == {"dataset": "score", "rows": len(changed)}
    assert set(shown["prediction"]) == {"psi", "status"}
    assert all(set(f) == {"name", "psi", "ks", "status"} for f in shown["features"])
    history = ok(cli("drift", dep, "--history", "--json")).json()
    assert [h["status"] for h in history] == ["alert", "ok"]
    assert history[0]["top"][0]["name"] == "city"
    human = ok(cli("drift", dep)).out
    assert "FEATURE" in human and "missing" in human and "(prediction)" in human


def test_an_empty_batch_completes_with_no_predictions_and_no_drift_run(setup) -> None:
    """A batch whose file has its header only (no new data this time) is no failure and
    no drift: the built-in scorer does not ask the model to predict zero rows, and PSI on
    no data (every bin empty) would read as the worst drift of every column."""
    deck, engine, dep, data, _ = setup
    first = run_batch(deck, engine, dep, sample(3, label=False), data)
    empty = run_batch(deck, engine, dep, sample(3, label=False).iloc[:0], data)
    predictions = deck.job_dir(empty) / "output" / "predictions.csv"
    assert predictions.read_text().splitlines() == ["row,prediction,proba_0,proba_1"]
    log = deck.log_path(empty).read_text()
    assert "0 predictions (no rows to score)" in log
    assert "no drift: the batch has no rows to compare with the baseline" in log
    assert [r.job_id for r in deck.monitoring.history(dep)] == [first]
    assert deck.deployment(dep).drift_status == "ok"  # the last run with rows
    assert "drift_computed" not in [e.kind for e in deck.events(empty)]


def test_a_column_of_another_type_is_type_changed_and_weighs_as_an_alert(tmp_path: Path) -> None:
    """Text where the baseline had numbers: no PSI compares them, and the status says why
    (``type_changed``, weighing as an alert) instead of a bare ``alert`` with no figure.
    (Numbers where text was are read as text, on the baseline's values: a PSI.)"""
    from core.monitoring import drift
    from core.monitoring import profile as prof
    from core.monitoring.record import _feature, _weight

    base_path, scored_path = tmp_path / "base.csv", tmp_path / "scored.csv"
    sample(1).to_csv(base_path, index=False)
    sample(2).assign(b="unknown").to_csv(scored_path, index=False)
    base = prof.profile_file(base_path)
    scored = prof.profile_file(scored_path, reference=base["columns"])
    raw = drift.compare(base, scored, ["a", "b"], ignored=["c", "city", "label"])
    assert [f.get("changed") for f in raw] == [None, "type"]
    a, b = (_feature(f, 0.1, 0.25) for f in raw)
    assert b == {"name": "b", "kind": "numeric", "psi": None, "ks": None, "status": "type_changed"}
    assert a is not None and a["status"] == "ok" and a["psi"] is not None
    assert _weight(b["status"]) == _weight("alert")


def run_accuracy(deck: Deck, dep: str) -> float:
    return next(r.metrics["accuracy"] for r in deck.monitoring.history(dep) if r.metrics)


def test_thresholds_per_deployment_and_bad_input_refused(setup, cli) -> None:
    deck, engine, dep, data, _ = setup
    assert "above 0" in refused(cli("deployment", "set", dep, "--warn-psi", "-1"))
    assert "below the alert" in refused(
        cli("deployment", "set", dep, "--warn-psi", "0.5", "--alert-psi", "0.3")
    )
    assert refused(cli("deployment", "set", dep, "--warn-psi", "nan"))
    assert refused(cli("drift", "dep-nothere"))
    assert refused(cli("drift", dep, "--job", "j-nothere"))
    assert refused(cli("drift", dep, "--job", "x", "--history"))
    assert deck.monitoring.thresholds(dep) == (0.1, 0.25)  # nothing changed
    set_ = ok(cli("deployment", "set", dep, "--warn-psi", "0.0001", "--alert-psi", "50", "--json"))
    assert set_.json() == {"deployment": dep, "warn_psi": 0.0001, "alert_psi": 50.0}
    run_batch(deck, engine, dep, sample(3, label=False), data)
    run = deck.monitoring.drift(dep)
    assert (run.warn_psi, run.alert_psi) == (0.0001, 50.0)
    assert {f.status for f in run.features} == {"warn"}  # tiny drift is over 0.0001
    assert ok(cli("performance", dep, "--json")).json() == []


def test_statistics_read_in_chunks_agree_with_pandas(tmp_path: Path, monkeypatch) -> None:
    """Many small blocks (as a big file is read): the same numbers as pandas on the whole."""
    from core.monitoring import profile as prof

    frame = sample(7, rows=3000)
    frame.loc[::17, "b"] = np.nan
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(prof, "BLOCK_BYTES", 4096)
    assert sum(1 for _ in prof.file_batches(path)()) > 10
    stats = prof.profile_file(path)
    assert stats["rows"] == 3000
    b = stats["columns"]["b"]
    assert (b["count"], b["missing"]) == (frame["b"].count(), frame["b"].isna().sum())
    assert b["mean"] == pytest.approx(frame["b"].mean())
    assert b["std"] == pytest.approx(frame["b"].std())
    assert b["quantiles"]["0.25"] == pytest.approx(frame["b"].quantile(0.25))
    counts, _ = np.histogram(frame["b"].dropna(), bins=np.linspace(b["min"], b["max"], 11))
    assert b["histogram"]["counts"] == counts.tolist()
    assert sum(b["bins"]["counts"]) == b["count"]
    city = stats["columns"]["city"]
    assert [t["value"] for t in city["top"]] == frame["city"].value_counts().index.tolist()
    assert city["bins"]["counts"][-1] == 0  # no (other): every value is a top value


def test_a_column_with_every_value_missing_drifts_into_its_missing_bin(tmp_path: Path) -> None:
    """A scored column left empty (every value missing, so no type of its own) is compared
    on the baseline's bins: all of it in the missing bin, a PSI that says so. Not a type
    change, which the run would call an alert with no figure to show why."""
    from core.monitoring import drift
    from core.monitoring import profile as prof

    base_path, scored_path = tmp_path / "base.csv", tmp_path / "scored.csv"
    sample(1).to_csv(base_path, index=False)
    sample(2).assign(b=np.nan).to_csv(scored_path, index=False)
    base = prof.profile_file(base_path)
    scored = prof.profile_file(scored_path, reference=base["columns"])
    assert scored["columns"]["b"]["type"] == "numeric"
    assert scored["columns"]["b"]["missing"] == 1000
    b = drift.compare_column("b", base["columns"]["b"], scored["columns"]["b"], None, None)
    assert "changed" not in b and b["psi"] > 0.25
    assert b["labels"][-1] == drift.MISSING and b["scored"][-1] == 1.0


def test_a_number_column_with_text_further_down_is_text(tmp_path: Path, monkeypatch) -> None:
    from core.monitoring import profile as prof

    rows = [str(i) for i in range(2000)] + ["n/a?"]
    path = tmp_path / "d.csv"
    path.write_text("v\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(prof, "BLOCK_BYTES", 1024)
    stats = prof.profile_file(path)
    assert stats["columns"]["v"]["type"] == "categorical"  # as pandas reads it
    assert stats["columns"]["v"]["count"] == 2001


def test_the_runner_knows_the_built_in_scorer_s_model_files() -> None:
    from core import builtin, runner

    assert runner.MODEL_FILES == builtin.MODEL_FILES


def test_an_imported_version_gets_its_baseline_from_its_first_statistics(
    deck: Deck, tmp_path: Path
) -> None:
    import joblib
    from sklearn.linear_model import LinearRegression

    train = sample(8, rows=300)
    model = LinearRegression().fit(train[["a", "b", "c"]], train["a"] * 2 + train["b"])
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    data = tmp_path / "d.csv"
    train[["a", "b", "c"]].to_csv(data, index=False)
    other = tmp_path / "e.csv"
    sample(9, rows=50)[["a", "b", "c"]].to_csv(other, index=False)
    repo = tmp_path / "byomrepo"
    (repo / "models").mkdir(parents=True)
    deck.add_project("byom", repo)
    deck.add_dataset("byom", "d", data)
    deck.add_dataset("byom", "e", other)
    engine = Engine(deck, workers=1)
    try:
        job = deck.import_model("byom", "reg", str(path))
        assert engine.run_until_idle(120)
        version = deck.job(job.id).version
        assert version and deck.monitoring.baseline(version) is None
        for name in ("d", "e"):  # the first statistics make the baseline; later ones do not
            j = deck.compute_stats(version, name)
            assert engine.run_until_idle(120)
            assert deck.job(j.id).status == "completed"
        base = deck.monitoring.baseline(version)
        assert base is not None and base.dataset == "d" and base.rows == 300
        assert base.prediction_kind == "numeric" and base.prediction is not None
        assert sum(base.prediction.baseline) == pytest.approx(1.0)
    finally:
        engine.shutdown()


def test_infinities_count_as_missing_and_the_statistics_are_standard_json(tmp_path: Path) -> None:
    from core.monitoring.profile import profile_file

    path = tmp_path / "d.csv"
    path.write_text("v,w\n1,x\ninf,y\n-inf,\n3,x\n,x\n")
    stats = profile_file(path)
    v = stats["columns"]["v"]
    assert (v["count"], v["missing"], v["min"], v["max"]) == (2, 3, 1.0, 3.0)
    assert stats["columns"]["w"]["missing"] == 1
    json.dumps({k: stats[k] for k in ("columns", "kept")}, allow_nan=False)


# -- a baseline's statistics reused for the same file content ---------------------------------

STDLIB_TRAINING = """
import atexit
import sys


def train(context):
    (context.model_dir / "weights.txt").write_text("1")

    def heavy():  # run by the runner at the job's end, after the baseline
        loaded = sorted(m for m in ("numpy", "pyarrow", "pandas") if m in sys.modules)
        with open({path!r}, "a") as fh:
            fh.write(",".join(loaded) + "\\n")

    atexit.register(heavy)
"""


def _stored(deck: Deck, version: str) -> tuple[dict, dict, str | None]:
    from sqlmodel import Session, select

    from core.monitoring.tables import Baseline

    with Session(deck.store.engine) as s:
        b = s.exec(select(Baseline).where(Baseline.version_id == version)).one()
        return b.statistics, b.samples, b.sha256


def _train(deck: Deck, engine: Engine, model: str, dataset: str) -> tuple[str, list]:
    job = deck.train("re", model, dataset)
    assert engine.run_until_idle(120)
    final = deck.job(job.id)
    assert final.status == "completed" and final.version, deck.events(job.id)
    return final.version, [e for e in deck.events(job.id) if e.kind == "baseline_recorded"]


def test_the_same_file_content_reuses_the_baseline_and_a_changed_file_recomputes(
    deck: Deck, tmp_path: Path
) -> None:
    repo = tmp_path / "rrepo"
    modules = tmp_path / "modules.txt"
    write_model(repo, "noop", STDLIB_TRAINING.format(path=str(modules)))
    data = repo / "d.csv"
    sample(4, rows=200).to_csv(data, index=False)
    deck.add_project("re", repo)
    deck.add_dataset("re", "d", data, target="label")
    engine = Engine(deck, workers=1)
    try:
        first, events = _train(deck, engine, "noop", "d")
        assert "reused" not in events[0].message
        second, events = _train(deck, engine, "noop", "d")
        assert "statistics reused from baseline" in events[0].message
        assert events[0].details["reused_version"] == first
        base1, base2 = deck.monitoring.baseline(first), deck.monitoring.baseline(second)
        assert base1 and base2 and base2.rows == base1.rows == 200
        assert base2.statistics == base1.statistics and base2.features == base1.features
        assert base2.histograms == base1.histograms
        assert _stored(deck, second) == _stored(deck, first)
        assert _stored(deck, first)[2] == hashlib.sha256(data.read_bytes()).hexdigest()
        # The first job computed the statistics (numpy, pyarrow); the second computed none:
        # its result names the baseline it reused and holds no statistics of its own. (Its
        # process may have numpy all the same: the fork server imports the statistics'
        # libraries once a job computed them, for the jobs forked after it.)
        loaded = modules.read_text().splitlines()
        assert "numpy" in loaded[0] and "pyarrow" in loaded[0]
        job2 = deck.monitoring.baseline(second).job_id
        result = json.loads((deck.store.job_dir(job2) / "result.json").read_text())
        assert isinstance(result["baseline"]["reused"], int)
        assert "statistics" not in result["baseline"]
        # Said by its event (above), not in the job's log: that stays the model's own.
        log = "\n".join(deck.read_log(deck.monitoring.baseline(second).job_id))
        assert "baseline" not in log

        changed = sample(5, rows=300)  # another content: computed again, of the new rows
        changed.to_csv(data, index=False)
        third, events = _train(deck, engine, "noop", "d")
        assert "reused" not in events[0].message
        base3 = deck.monitoring.baseline(third)
        assert base3 and base3.rows == 300
        assert base3.statistics["a"]["mean"] == pytest.approx(changed["a"].mean())
        assert _stored(deck, third)[2] == hashlib.sha256(data.read_bytes()).hexdigest()
        assert "numpy" in modules.read_text().splitlines()[2]
        # The first baseline was never changed.
        assert deck.monitoring.baseline(first) == base1
    finally:
        engine.shutdown()


def test_a_model_that_predicts_reuses_the_statistics_but_keeps_its_own_predictions(
    setup,
) -> None:
    deck, engine, dep, _, _ = setup
    first = deck.deployment(dep).version
    job = deck.train("mon", "risk", "train")
    assert engine.run_until_idle(120)
    second = deck.job(job.id).version
    assert second, deck.events(job.id)
    events = [e for e in deck.events(job.id) if e.kind == "baseline_recorded"]
    assert "reused from baseline" in events[0].message and "predictions" in events[0].message
    base1, base2 = deck.monitoring.baseline(first), deck.monitoring.baseline(second)
    assert base2.statistics == base1.statistics
    assert base2.prediction is not None and base2.prediction_kind == "categorical"
    assert sum(base2.prediction.baseline) == pytest.approx(1.0)
