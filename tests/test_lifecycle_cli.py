"""The whole model lifecycle through the real ``modeldeck`` command, jobs in real processes."""

from __future__ import annotations

import csv
import hashlib
import http.server
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, Result, ok

JOB_KEYS = {
    "id",
    "type",
    "status",
    "trigger",
    "project",
    "model",
    "version",
    "deployment",
    "actor",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "outputs",
}
VERSION_KEYS = {"id", "model", "number", "status", "metrics", "statistics", "approval"}
APPROVAL_KEYS = {"decision", "reason", "by", "at"}
DEPLOYMENT_KEYS = {"id", "version", "status", "dataset", "schedule", "timezone", "next_run_at"}
EVENT_KEYS = {"seq", "at", "kind", "message", "details"}

Cli = Callable[..., Result]


def run_job(cli: Cli, *args: str) -> dict:
    """A job command with ``--json``: the id comes first (on stderr), the final job on stdout."""
    result = ok(cli(*args, "--json"))
    job = result.json()
    assert set(job) >= JOB_KEYS, set(job)
    assert result.err.splitlines()[0] == job["id"]
    assert job["status"] == "completed"
    return job


def parse_utc(text: str) -> datetime:
    """A JSON time: ISO 8601 in UTC with milliseconds, as every JSON output writes it."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def setup_project(cli: Cli, repo: Path) -> None:
    ok(cli("project", "add", "lc", "--repo", str(repo)))
    data = repo / "data"
    ok(cli("dataset", "add", "lc", "train", str(data / "train.csv"), "--target", "label"))
    ok(cli("dataset", "add", "lc", "test", str(data / "test.csv"), "--target", "label"))
    ok(cli("dataset", "add", "lc", "score", str(data / "score.csv")))


@pytest.fixture
def background_engine(home: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Start ``modeldeck engine`` in the background; stopped with SIGTERM at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        env = dict(os.environ, MODELDECK_HOME=str(home))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui.entry", "engine", "--workers", "2"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=20)


def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.timeout(300)  # a long scenario of real sklearn jobs
def test_code_model_lifecycle(cli: Cli, repo: Path, background_engine) -> None:
    setup_project(cli, repo)

    # train: the plain output starts with the job id, then the job's own log.
    trained = ok(cli("train", "lc", "clf", "--dataset", "train", "--set", "C=0.5"))
    job_id = trained.out.splitlines()[0]
    assert job_id.startswith("j-")
    assert "training on 60 rows, C=0.5" in trained.out
    assert "train completed" in trained.err
    [v1] = ok(cli("versions", "lc", "--json")).json()
    assert set(v1) >= VERSION_KEYS
    assert (v1["model"], v1["number"], v1["status"], v1["approval"]) == ("clf", 1, "trained", None)
    assert v1["metrics"]["train_accuracy"] > 0.9
    assert ok(cli("job", job_id, "--json")).json()["version"] == v1["id"]

    # evaluate twice: metrics history is append-only; the version is judged on the latest
    # evaluation on a dataset it was not trained on.
    first = run_job(cli, "evaluate", v1["id"], "--dataset", "test")
    assert first["version"] == v1["id"]
    earlier = ok(cli("version", v1["id"], "--json")).json()["metrics_history"]
    run_job(cli, "evaluate", v1["id"], "--dataset", "train")
    detail = ok(cli("version", v1["id"], "--json")).json()
    history = detail["metrics_history"]
    assert history[:2] == earlier  # appended to, never rewritten
    assert [m["dataset"] for m in history] == ["train", "test", "train"]  # training first
    assert history[0]["metrics"] == v1["metrics"]
    assert history[1]["job_id"] == first["id"]
    assert {"accuracy", "precision", "recall", "f1", "roc_auc"} <= set(history[1]["metrics"])
    assert detail["version"]["status"] == "evaluated"
    assert detail["version"]["metrics"] == history[1]["metrics"]
    assert detail["version"]["metrics_from"]["job_id"] == first["id"]

    # approve: who, when, why and the metrics it was approved on are kept.
    before = datetime.now(UTC).replace(microsecond=0)
    approve = run_job(cli, "approve", v1["id"], "--reason", "beats the baseline")
    version = ok(cli("version", v1["id"], "--json")).json()["version"]
    approval = version["approval"]
    assert version["status"] == "approved"
    assert set(approval) >= APPROVAL_KEYS
    assert approval["decision"] == "approved"
    assert approval["reason"] == "beats the baseline"
    assert approval["by"] == approve["actor"] != ""
    assert parse_utc(approval["at"]) >= before
    assert approval["metrics"] == history[1]["metrics"]
    assert [e["job_id"] for e in approval["evaluations"]] == [first["id"]]

    # deploy on a schedule in a time zone: the next run is 06:30 on a weekday in Berlin.
    deploy = run_job(
        cli,
        "deploy",
        v1["id"],
        "--dataset",
        "score",
        "--schedule",
        "30 6 * * 1-5",
        "--timezone",
        "Europe/Berlin",
    )
    [dep] = ok(cli("deployments", "lc", "--json")).json()
    assert set(dep) >= DEPLOYMENT_KEYS
    assert dep["id"] == deploy["deployment"]
    assert (dep["version"], dep["status"], dep["dataset"]) == (v1["id"], "active", "score")
    assert (dep["schedule"], dep["timezone"]) == ("30 6 * * 1-5", "Europe/Berlin")
    next_run = parse_utc(dep["next_run_at"])
    berlin = next_run.astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.hour, berlin.minute) == (6, 30) and berlin.weekday() < 5
    assert 0 < (next_run - datetime.now(UTC)).total_seconds() <= 4 * 86400
    assert ok(cli("version", v1["id"], "--json")).json()["version"]["status"] == "deployed"

    # predict now: predictions.csv is among the job's outputs, one row per scored row.
    predict = run_job(cli, "predict", dep["id"])
    assert predict["type"] == "batch_predict" and predict["trigger"] == "manual"
    [output] = [p for p in predict["outputs"] if p.endswith("predictions.csv")]
    with open(output, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert {r["prediction"] for r in rows} <= {"0", "1"}

    # a second version, queued with --detach and run by a headless engine, is rejected.
    detached = ok(cli("train", "lc", "clf", "--dataset", "train", "--detach"))
    assert detached.out.strip().startswith("j-")
    v2_job = detached.out.strip()
    assert len(detached.out.strip().splitlines()) == 1  # only the id: nothing ran
    assert ok(cli("job", v2_job, "--json")).json()["status"] == "queued"
    background_engine()
    wait_until(
        lambda: ok(cli("job", v2_job, "--json")).json()["status"] == "completed",
        timeout=60,
        what="the headless engine to run the detached job",
    )
    v2 = ok(cli("job", v2_job, "--json")).json()["version"]
    run_job(cli, "evaluate", v2, "--dataset", "test")
    reject = run_job(cli, "reject", v2, "--reason", "no better than v1")
    rejected = ok(cli("version", v2, "--json")).json()["version"]
    assert rejected["status"] == "rejected"
    assert rejected["approval"]["decision"] == "rejected"
    assert rejected["approval"]["reason"] == "no better than v1"
    assert rejected["approval"]["by"] == reject["actor"]

    # retire: a version stays deployed while one of its deployments is active, then retires.
    second = run_job(cli, "deploy", v1["id"], "--dataset", "score")["deployment"]
    run_job(cli, "retire", dep["id"])
    deps = {d["id"]: d for d in ok(cli("deployments", "lc", "--json")).json()}
    assert (deps[dep["id"]]["status"], deps[dep["id"]]["next_run_at"]) == ("retired", None)
    assert deps[second]["status"] == "active"
    assert ok(cli("version", v1["id"], "--json")).json()["version"]["status"] == "deployed"
    run_job(cli, "retire", second)
    assert {d["status"] for d in ok(cli("deployments", "lc", "--json")).json()} == {"retired"}
    statuses = {v["number"]: v["status"] for v in ok(cli("versions", "lc", "--json")).json()}
    assert statuses == {1: "retired", 2: "rejected"}

    # the audit trail: approval kept after retirement; jobs newest first, filterable.
    final = ok(cli("version", v1["id"], "--json")).json()
    assert [a["decision"] for a in final["approvals"]] == ["approved"]
    jobs = ok(cli("jobs", "lc", "--json")).json()
    assert [j["type"] for j in jobs] == [
        "retire",
        "retire",
        "deploy",
        "reject",
        "evaluate",
        "train",
        "batch_predict",
        "deploy",
        "approve",
        "evaluate",
        "evaluate",
        "train",
    ]
    created = [parse_utc(j["created_at"]) for j in jobs]
    assert created == sorted(created, reverse=True)
    assert {j["status"] for j in jobs} == {"completed"}
    trains = ok(cli("jobs", "lc", "--type", "train", "--json")).json()
    assert [j["id"] for j in trains] == [v2_job, job_id]
    assert [j["id"] for j in ok(cli("jobs", "--limit", "2", "--json")).json()] == [
        j["id"] for j in jobs[:2]
    ]
    assert ok(cli("jobs", "lc", "--status", "failed", "--json")).json() == []

    events = ok(cli("events", deploy["id"], "--json")).json()
    assert all(set(e) >= EVENT_KEYS for e in events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "created"
    assert "deployment_created" in [e["kind"] for e in events]
    assert events[-1]["kind"] == "completed"
    log = ok(cli("logs", job_id)).out
    assert "training on 60 rows, C=0.5" in log


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on the loopback interface only."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(300)  # a long scenario of real sklearn jobs
def test_byom_import_evaluate_and_stats(cli: Cli, repo: Path, tmp_path: Path, http_dir) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    setup_project(cli, repo)
    x = [[i % 2 * 2.0 + (i % 7) * 0.1, -(i % 2) * 1.5 + (i % 5) * 0.1] for i in range(60)]
    y = [i % 2 for i in range(60)]
    # Fitted without feature names, so the built-in evaluator passes the CSV's columns as is.
    joblib_file = tmp_path / "forest.joblib"
    joblib.dump(LogisticRegression().fit(x, y), joblib_file)
    pickle_file = tmp_path / "tree.pkl"
    pickle_file.write_bytes(pickle.dumps(DecisionTreeClassifier().fit(x, y)))
    served, base = http_dir
    (served / "remote.joblib").write_bytes(joblib_file.read_bytes())

    imported = run_job(cli, "import", "lc", "byom-jl", str(joblib_file))
    assert (imported["type"], imported["model"]) == ("import", "byom-jl")
    jl = ok(cli("version", imported["version"], "--json")).json()["version"]
    assert (jl["status"], jl["number"], jl["model_kind"]) == ("imported", 1, "byom")
    assert jl["source"]["sha256"] == hashlib.sha256(joblib_file.read_bytes()).hexdigest()
    assert jl["source"]["class"] == "LogisticRegression"

    pk_job = run_job(cli, "import", "lc", "byom-pk", str(pickle_file))
    pk = ok(cli("version", pk_job["version"], "--json")).json()["version"]
    assert (pk["status"], pk["source"]["format"], pk["source"]["class"]) == (
        "imported",
        "pickle",
        "DecisionTreeClassifier",
    )

    remote = run_job(cli, "import", "lc", "byom-http", f"{base}/remote.joblib")
    web = ok(cli("version", remote["version"], "--json")).json()["version"]
    assert web["source"]["source"] == f"{base}/remote.joblib"
    assert web["source"]["sha256"] == jl["source"]["sha256"]
    assert "downloading" in ok(cli("logs", remote["id"])).out

    # A URL that answers 404 fails the import; nothing is registered.
    missing = cli("import", "lc", "byom-404", f"{base}/nothing.joblib")
    assert missing.code == 1
    assert "404" in ok(cli("job", missing.out.splitlines()[0], "--json")).json()["error"]

    # The built-in evaluator and statistics work on an imported model.
    run_job(cli, "evaluate", jl["id"], "--dataset", "test")
    evaluated = ok(cli("version", jl["id"], "--json")).json()["version"]
    assert evaluated["status"] == "evaluated"
    assert evaluated["metrics"]["accuracy"] == pytest.approx(1.0)
    assert evaluated["metrics"]["confusion_matrix"] == [[20, 0], [0, 20]]
    run_job(cli, "stats", jl["id"], "--dataset", "test")
    [stats] = ok(cli("version", jl["id"], "--json")).json()["statistics"]
    assert stats["rows"] == 40 and stats["dataset"] == "test"
    assert set(stats["columns"]) == {"x1", "x2", "label"}
    assert stats["columns"]["label"]["count"] == 40
    assert stats["columns"]["x1"]["type"] == "numeric"
    assert ok(cli("version", jl["id"], "--json")).json()["version"]["status"] == "evaluated"

    models = {m["name"]: m for m in ok(cli("models", "lc", "--json")).json()}
    assert {k: (m["kind"], m["versions"]) for k, m in models.items()} == {
        "byom-http": ("byom", 1),
        "byom-jl": ("byom", 1),
        "byom-pk": ("byom", 1),
        "clf": ("code", 0),
        "scripted": ("code", 0),
    }
    types = {j["type"] for j in ok(cli("jobs", "lc", "--json")).json()}
    assert types == {"import", "evaluate", "compute_stats"}


def test_cli_job_outcomes_failure_detach_and_stop(
    cli: Cli, repo: Path, home: Path, background_engine
) -> None:
    setup_project(cli, repo)

    # a failed training: exit 1, no version, the traceback in the log, its last line the error.
    failed = cli("train", "lc", "scripted", "--dataset", "train", "--set", "fail=broken input")
    assert failed.code == 1
    job_id = failed.out.splitlines()[0]
    assert failed.err.startswith("train failed in ")
    assert failed.err.rstrip().endswith(": RuntimeError: broken input")
    job = ok(cli("job", job_id, "--json")).json()
    assert (job["status"], job["error"], job["version"]) == (
        "failed",
        "RuntimeError: broken input",
        None,
    )
    log = ok(cli("logs", job_id)).out
    assert "Traceback (most recent call last)" in log
    assert log.rstrip().splitlines()[-1] == "RuntimeError: broken input"
    assert ok(cli("versions", "lc", "--json")).json() == []
    assert [j["id"] for j in ok(cli("jobs", "--status", "failed", "--json")).json()] == [job_id]
    # An error too long for the jobs list's column ends in an ellipsis there (whole in job).
    long = "x" * 80
    cli("train", "lc", "scripted", "--dataset", "train", "--set", f"fail={long}")
    listed = ok(cli("jobs", "lc", "--status", "failed")).out
    assert f"RuntimeError: {long[:45]}…" in listed and long not in listed

    # --detach only queues: exit 0, the id, a queued job that nothing runs (and it says so).
    queued = ok(cli("train", "lc", "scripted", "--dataset", "train", "--detach", "--json"))
    assert queued.json()["status"] == "queued"
    assert queued.err.splitlines() == [
        queued.json()["id"],
        "no engine serves this database: the job starts when one does; run `modeldeck engine`",
    ]
    time.sleep(0.5)
    assert ok(cli("job", queued.json()["id"], "--json")).json()["status"] == "queued"
    assert not (home / "jobs" / queued.json()["id"] / "log.txt").exists()

    # a job command in the foreground runs only its own job, and exits 1 when it is stopped.
    env = dict(os.environ, MODELDECK_HOME=str(home))
    command = ["train", "lc", "scripted", "--dataset", "train", "--set", "sleep=60"]
    foreground = subprocess.Popen(
        [sys.executable, "-m", "tui.entry", *command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fg_id = foreground.stdout.readline().strip()
        fg_log = home / "jobs" / fg_id / "log.txt"
        wait_until(
            lambda: fg_log.is_file() and "sleeping" in fg_log.read_text(),
            what="the foreground job to start",
        )
        assert ok(cli("stop", fg_id)).out.strip() == f"job {fg_id} cancelled"
        fg_out, fg_err = foreground.communicate(timeout=30)
    finally:
        foreground.kill()
    assert foreground.returncode == 1
    assert "sleeping" in fg_out
    assert fg_err.startswith("train cancelled")
    assert ok(cli("job", queued.json()["id"], "--json")).json()["status"] == "queued"

    # stop a running job: it ends cancelled, and its events say SIGTERM was sent.
    slow = ok(cli("train", "lc", "scripted", "--dataset", "train", "--set", "sleep=60", "--detach"))
    slow_id = slow.out.strip()
    background_engine()
    log_file = home / "jobs" / slow_id / "log.txt"
    wait_until(
        lambda: log_file.is_file() and "sleeping" in log_file.read_text(),
        what="the slow job to start",
    )
    stopped = ok(cli("stop", slow_id))
    assert stopped.out.strip() == f"job {slow_id} cancelled"
    events = ok(cli("events", slow_id, "--json")).json()
    kinds = [e["kind"] for e in events]
    assert "stop_requested" in kinds
    sent = [e for e in events if e["kind"] == "signal_sent"]
    assert [e["details"]["signal"] for e in sent] == ["SIGTERM"]
    assert "SIGTERM" in sent[0]["message"]
    assert kinds[-1] == "cancelled"
    assert ok(cli("job", slow_id, "--json")).json()["status"] == "cancelled"
    again = cli("stop", slow_id)
    assert again.code != 0 and again.err.startswith("error: ") and "already cancelled" in again.err

    statuses = {j["id"]: j["status"] for j in ok(cli("jobs", "lc", "--json")).json()}
    assert statuses[queued.json()["id"]] == "completed"  # the engine ran the detached one too
    assert ok(cli("jobs", "lc", "--status", "cancelled", "--json")).json()[0]["id"] == slow_id
    by_type = ok(cli("jobs", "lc", "--type", "train", "--limit", "1", "--json")).json()
    assert [j["id"] for j in by_type] == [slow_id]  # newest first
