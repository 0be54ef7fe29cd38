"""Drift and metric alerts, against the monitoring contract: a batch run's
``core.monitoring.store.drift_run_for_job(session, job_id) -> DriftRun``. A real scikit-learn
model trained on one sample, batch predictions on a sample of the same distribution and on
one with a shifted feature (and the target, so the run has metrics); a real webhook on
127.0.0.1 hears of the shifted run only, once for the drift and once for the metric.

These need the monitoring work (drift per batch run) merged: until then no run has a drift
and no alert arrives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alerts_support import Webhook, serve_webhook
from deploy_support import wait_for

from core.engine import Engine
from core.service import Deck

BODY_KEYS = {"event", "project", "deployment", "version", "job", "summary", "details", "at"}


def write_sample(path: Path, rows: int, seed: int, shift: float = 0.0) -> Path:
    """Two standard normal features and ``label = x1 + x2 > 0``; ``shift`` moves x1 after
    the label is drawn (a sensor that went off by ``shift``)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    label = (x1 + x2 > 0).astype(int)
    lines = ["x1,x2,label"] + [
        f"{a + shift:.5f},{b:.5f},{c}" for a, b, c in zip(x1, x2, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with serve_webhook() as h:
        yield h


def run(deck: Deck, engine: Engine, job) -> str:
    assert engine.run_until_idle(120)
    final = deck.job(job.id)
    assert final.status == "completed", final
    return final.id


def test_a_drifting_run_and_a_metric_below_its_threshold_are_told_once(
    deck: Deck, repo: Path, hook: Webhook
) -> None:
    data = repo / "data"
    deck.add_project("mon", repo)
    for name, seed, shift in (
        ("base", 1, 0.0),
        ("holdout", 2, 0.0),
        ("same", 3, 0.0),
        ("shifted", 4, 3.0),
    ):
        deck.add_dataset(
            "mon", name, write_sample(data / f"{name}.csv", 2000, seed, shift), target="label"
        )
    engine = Engine(deck, workers=2, poll=0.05)
    try:
        trained = deck.train("mon", "clf", "base")
        run(deck, engine, trained)
        version = deck.job(trained.id).version
        run(deck, engine, deck.evaluate(version, "holdout"))
        run(deck, engine, deck.approve(version, "fits"))
        same_dep = deck.job(run(deck, engine, deck.deploy(version, "same"))).deployment
        shifted_dep = deck.job(run(deck, engine, deck.deploy(version, "shifted"))).deployment
        alert = deck.alerts.add("mon", hook.url("/drift"), "drift,metric:accuracy<0.9")
        same_job = run(deck, engine, deck.predict(same_dep))
        shifted_job = run(deck, engine, deck.predict(shifted_dep))

        def told() -> bool:
            engine.tick()
            return len(hook.bodies("/drift")) >= 2

        wait_for(told, 20, "the drift and metric alerts")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # nothing more comes
            engine.tick()
            time.sleep(0.05)
    finally:
        engine.shutdown()

    bodies = {b["event"]: b for b in hook.bodies("/drift")}
    assert len(hook.bodies("/drift")) == 2 and set(bodies) == {"drift", "metric"}
    drift, metric = bodies["drift"], bodies["metric"]
    for body in (drift, metric):
        assert set(body) == BODY_KEYS
        assert (body["project"], body["deployment"], body["job"]) == (
            "mon",
            shifted_dep,
            shifted_job,
        )
        assert body["version"] == "clf:1"
    assert drift["details"]["status"] == "alert"
    features = {f["name"]: f for f in drift["details"]["features"]}
    assert features["x1"]["status"] == "alert" and features["x1"]["psi"] >= 0.25
    assert features["x2"]["status"] == "ok"
    assert "x1" in drift["summary"]
    assert metric["details"]["metric"] == "accuracy"
    assert metric["details"]["value"] < 0.9 and metric["details"]["threshold"] == 0.9
    assert same_job not in {b["job"] for b in hook.bodies("/drift")}
    tries = deck.alerts.log("mon", alert.id)
    assert [(t.event, t.outcome) for t in tries] in (
        [("drift", "delivered"), ("metric", "delivered")],
        [("metric", "delivered"), ("drift", "delivered")],
    )


def test_drift_warn_tells_a_warning_too_and_drift_alone_does_not(
    deck: Deck, repo: Path, hook: Webhook
) -> None:
    """A mild shift of x1 (PSI about 0.16, between the warn and alert thresholds): ``drift:warn``
    hears of it, ``drift`` does not."""
    data = repo / "data"
    deck.add_project("mon", repo)
    deck.add_dataset("mon", "base", write_sample(data / "base.csv", 4000, 1), target="label")
    deck.add_dataset("mon", "holdout", write_sample(data / "h.csv", 1000, 2), target="label")
    deck.add_dataset(
        "mon", "mild", write_sample(data / "mild.csv", 4000, 5, shift=0.4), target="label"
    )
    engine = Engine(deck, workers=2, poll=0.05)
    try:
        trained = deck.train("mon", "clf", "base")
        run(deck, engine, trained)
        version = deck.job(trained.id).version
        run(deck, engine, deck.evaluate(version, "holdout"))
        run(deck, engine, deck.approve(version, "fits"))
        dep = deck.job(run(deck, engine, deck.deploy(version, "mild"))).deployment
        deck.alerts.add("mon", hook.url("/warn"), "drift:warn")
        deck.alerts.add("mon", hook.url("/alert"), "drift")
        job = run(deck, engine, deck.predict(dep))

        def told() -> bool:
            engine.tick()
            return bool(hook.bodies("/warn"))

        wait_for(told, 20, "the drift warning")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            engine.tick()
            time.sleep(0.05)
    finally:
        engine.shutdown()
    [warn] = hook.bodies("/warn")
    assert (warn["event"], warn["job"], warn["details"]["status"]) == ("drift", job, "warn")
    assert hook.bodies("/alert") == []
