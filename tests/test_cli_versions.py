"""Versions named `MODEL:N` / `PROJECT/MODEL:N`; what `models`, `version` and `deployments`
print; every time on screen labelled with its zone."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cli_support import Home, prepare_home, run_main

from core.engine import Engine
from core.service import Deck

EVALUATION = """
def evaluate(context):
    context.record_metrics({"accuracy": 0.95, "n": 6, "confusion_matrix": [[3, 0], [1, 2]]})
"""
METRICS_TEXT = "accuracy=0.9500  n=6  confusion_matrix=[[3, 0], [1, 2]]"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """proj/scripted:1 approved and deployed, proj/scripted:2 evaluated, demo/scripted:1."""
    h = prepare_home(tmp_path_factory.mktemp("versions"), evaluation=EVALUATION)
    deck = Deck(home=h.path)
    deck.add_dataset("demo", "train", h.repo / "data" / "train.csv", target="label")
    job = deck.train("demo", "scripted", "train", {"lines": 1})
    engine = Engine(deck, workers=1, only_job=job.id)  # the home's queued job stays queued
    try:
        assert engine.run_until_idle(30)
        assert deck.job(job.id).version
    finally:
        engine.shutdown()
        deck.close()
    return h


@pytest.fixture
def home(prepared: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(prepared.path, copy)
    monkeypatch.setenv("MODELDECK_HOME", str(copy))
    monkeypatch.delenv("MODELDECK_DB", raising=False)
    return copy


def _demo_version(home: Path) -> str:
    deck = Deck(home=home)
    try:
        [v] = deck.versions("demo")
        return v.id
    finally:
        deck.close()


@pytest.mark.parametrize(
    ("ref", "which"),
    [
        ("proj/scripted:1", "approved"),
        ("proj/scripted:2", "evaluated"),
        ("scripted:2", "evaluated"),  # only proj has a version 2
        ("demo/scripted:1", "demo"),
    ],
)
def test_version_by_model_and_number(ref: str, which: str, prepared: Home, home: Path, capsys):
    r = run_main(["version", ref, "--json"], capsys)
    assert r.code == 0, r.err
    want = _demo_version(home) if which == "demo" else getattr(prepared, which)
    assert r.json()["version"]["id"] == want


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "scripted:1",
            "version 'scripted:1' is ambiguous: model 'scripted' is in several projects; "
            "name one: demo/scripted:1, proj/scripted:1",
        ),
        ("scripted:9", "unknown version 'scripted:9' (see `modeldeck versions PROJECT"),
        ("proj/scripted:9", "unknown version 'proj/scripted:9' (see `modeldeck versions proj"),
        ("nope/scripted:1", "unknown project 'nope'"),
        ("other:1", "unknown version 'other:1'"),
    ],
)
def test_version_names_that_name_no_single_version_are_refused(
    ref: str, message: str, home: Path, capsys
) -> None:
    for command in (["version", ref], ["approve", ref, "--reason", "ok"]):
        r = run_main(command, capsys)
        assert r.code == 2 and r.out == ""
        [line] = r.err.splitlines()
        assert line.startswith(f"error: {message}"), line
    deck = Deck(home=home)
    try:
        # Nothing was queued: the one approval is the prepared home's own.
        assert [j.status for j in deck.jobs(None, job_type="approve")] == ["completed"]
    finally:
        deck.close()


@pytest.mark.parametrize(
    ("args", "which"),
    [
        (["evaluate", "proj/scripted:2", "--dataset", "test"], "evaluated"),
        (["stats", "scripted:2", "--dataset", "test"], "evaluated"),
        (["approve", "scripted:2", "--reason", "fine"], "evaluated"),
        (["reject", "proj/scripted:2", "--reason", "not fine"], "evaluated"),
        (["deploy", "proj/scripted:1", "--dataset", "score"], "approved"),
    ],
)
def test_every_version_command_takes_model_and_number(
    args: list[str], which: str, prepared: Home, home: Path, capsys
) -> None:
    r = run_main([*args, "--detach", "--json"], capsys)
    assert r.code == 0, r.err
    job = r.json()
    assert (job["type"], job["status"], job["version"]) == (
        args[0].replace("stats", "compute_stats"),
        "queued",
        getattr(prepared, which),
    )


def test_models_shows_what_is_deployed(home: Path, capsys) -> None:
    r = run_main(["models", "proj"], capsys)
    assert r.code == 0, r.err
    header, row = r.out.splitlines()
    assert header.split() == ["NAME", "KIND", "VERSIONS", "LATEST", "DEPLOYED"]
    assert row.split() == ["scripted", "code", "2", "v2", "evaluated", "v1"]
    [data] = run_main(["models", "proj", "--json"], capsys).json()
    assert (data["latest_version"], data["deployed_versions"]) == (2, [1])
    [demo] = run_main(["models", "demo", "--json"], capsys).json()
    assert demo["deployed_versions"] == []


def test_version_prints_metrics_as_numbers_with_lists(prepared: Home, home: Path, capsys):
    r = run_main(["version", prepared.evaluated], capsys)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == f"{prepared.evaluated}  proj/scripted:2  evaluated"
    trained, evaluated = [line for line in lines if line.startswith("  metrics  ")]
    assert trained.endswith(" on train: loss=0.5000")
    assert evaluated.endswith(f" on test: {METRICS_TEXT}")
    r = run_main(["version", prepared.approved], capsys)
    assert f"  deploy   {prepared.deployment}  active  on score" in r.out.splitlines()


def test_evaluate_summary_prints_metrics_as_numbers(prepared: Home, home: Path, capsys) -> None:
    r = run_main(["evaluate", prepared.evaluated, "--dataset", "test"], capsys)
    assert r.code == 0, r.err
    assert r.err.splitlines()[-1].endswith(f"is evaluated: {METRICS_TEXT} on test")


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZoneInfo]:
    """This process's local zone is New York for the test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield ZoneInfo("America/New_York")
    monkeypatch.undo()
    time.tzset()


def _labelled(iso: str, tz: ZoneInfo) -> str:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(tz)
    return f"{t:%Y-%m-%d %H:%M:%S} {t.tzname()}"


def test_times_on_screen_carry_their_zone(new_york: ZoneInfo, home: Path, capsys) -> None:
    [dep] = run_main(["deployments", "proj", "--json"], capsys).json()
    r = run_main(["deployments", "proj"], capsys)
    assert r.code == 0, r.err
    header, row = r.out.splitlines()
    assert "NEXT RUN" in header
    next_run = _labelled(dep["next_run_at"], new_york)
    assert next_run.endswith((" EST", " EDT")) and next_run in row
    r = run_main(["schedule", dep["id"]], capsys)
    assert f"next run {next_run}" in r.out

    detail = run_main(["version", "proj/scripted:1", "--json"], capsys).json()
    r = run_main(["version", "proj/scripted:1"], capsys)
    created = _labelled(detail["version"]["created_at"], new_york)
    assert f"  created  {created} by job" in r.out
    approval = detail["approvals"][0]
    assert f"  approved {_labelled(approval['at'], new_york)} by " in r.out

    events = run_main(["events", detail["version"]["job_id"], "--json"], capsys).json()
    r = run_main(["events", detail["version"]["job_id"]], capsys)
    assert _labelled(events[0]["at"], new_york) in r.out.splitlines()[1]
