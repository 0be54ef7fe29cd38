"""Registry housekeeping through the real CLI: BYOM import errors and duplicates, archived
projects and datasets, deployments, retire reasons, dataset hashes, dirty diffs and
predictions you can see."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, ok, refused, write_csv
from deploy_support import add_fast_stages, approved_version

from core.engine import Engine
from core.schedule import same_schedule
from core.service import Deck

Cli = Callable[..., Result]


def run_job(cli: Cli, *args: str) -> dict[str, Any]:
    result = ok(cli(*args, "--json"))
    job = result.json()
    assert isinstance(job, dict) and job["status"] == "completed", job
    return job


def estimator_file(path: Path, c: float = 1.0) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x = [[i % 2 * 2.0 + (i % 7) * 0.1, -(i % 2) * 1.5 + (i % 5) * 0.1] for i in range(40)]
    y = [i % 2 for i in range(40)]
    joblib.dump(LogisticRegression(C=c).fit(x, y), path)
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- item 10: BYOM import errors ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_corrupt_byom_file_fails_in_one_line_and_its_job_keeps_the_model_name(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    ok(cli("project", "add", "proj", "--repo", str(repo)))
    bad = tmp_path / "broken.joblib"
    bad.write_bytes(b"not a model at all, just text\n" * 10)  # joblib reads 'n': KeyError 110

    result = cli("import", "proj", "churn-byom", str(bad))
    assert result.code == 1
    job_id = result.out.splitlines()[0]
    assert "Traceback" not in result.out + result.err
    summary = result.err.strip().splitlines()[-1]
    assert summary.startswith("import failed")
    assert "is not a readable joblib file of a model" in summary

    job = ok(cli("job", job_id, "--json")).json()
    assert job["error"].startswith("model.joblib is not a readable joblib file of a model")
    assert "\n" not in job["error"]
    assert job["model"] == "churn-byom"  # the model never came to exist; its name stays
    [listed] = ok(cli("jobs", "proj", "--json")).json()
    assert listed["model"] == "churn-byom"
    assert "churn-byom" in ok(cli("jobs", "proj")).out
    assert "Traceback" not in ok(cli("logs", job_id)).out


@pytest.mark.timeout(120)
def test_importing_an_identical_file_again_is_refused_unless_again(
    cli: Cli, repo: Path, tmp_path: Path, served: tuple[Path, str]
) -> None:
    ok(cli("project", "add", "proj", "--repo", str(repo)))
    first = estimator_file(tmp_path / "model.joblib")
    run_job(cli, "import", "proj", "byom", str(first))

    jobs_before = ok(cli("jobs", "proj", "--json")).json()
    line = refused(cli("import", "proj", "byom", str(first)))
    assert "identical to byom v1" in line and "--again" in line
    # An imported model has no code to train: said so, not that it is unknown.
    ok(cli("dataset", "add", "proj", "rows", str(repo / "data" / "train.csv")))
    line = refused(cli("train", "proj", "byom", "--dataset", "rows"))
    assert line.startswith("error: model 'byom' of project proj is imported: it has no "), line
    assert "`modeldeck import` gives it new versions" in line
    assert ok(cli("jobs", "proj", "--json")).json() == jobs_before  # nothing queued

    # Downloaded, it is known only when it is in: the job fails and keeps nothing.
    folder, base = served
    (folder / "copy.joblib").write_bytes(first.read_bytes())
    result = cli("import", "proj", "byom", f"{base}/copy.joblib", "--json")
    assert result.code == 1
    assert "identical to byom v1" in result.json()["error"]
    assert [v["number"] for v in ok(cli("versions", "proj", "--json")).json()] == [1]

    again = run_job(cli, "import", "proj", "byom", str(first), "--again")
    v2 = ok(cli("version", again["version"], "--json")).json()["version"]
    assert v2["number"] == 2
    other = estimator_file(tmp_path / "other.joblib", c=0.01)
    run_job(cli, "import", "proj", "byom", str(other))  # a different file needs no --again


# -- item 12: housekeeping ------------------------------------------------------------------


@pytest.fixture
def approved(deck: Deck, project: str, repo: Path) -> Iterator[str]:
    """An approved version of the scripted model (made through the engine)."""
    add_fast_stages(repo)
    engine = Engine(deck, workers=1)
    try:
        yield approved_version(deck, engine, project)
    finally:
        engine.shutdown()


@pytest.mark.timeout(120)
def test_archived_projects_and_datasets_leave_the_lists_and_keep_their_history(
    cli: Cli, project: str
) -> None:
    trained = run_job(cli, "train", "proj", "scripted", "--dataset", "train")

    ok(cli("dataset", "archive", "proj", "score"))
    assert [d["name"] for d in ok(cli("datasets", "proj", "--json")).json()] == ["test", "train"]
    every = ok(cli("datasets", "proj", "--all", "--json")).json()
    assert [(d["name"], d["archived_at"] is not None) for d in every] == [
        ("score", True),
        ("test", False),
        ("train", False),
    ]
    assert "ARCHIVED" in ok(cli("datasets", "proj", "--all")).out
    line = refused(cli("train", "proj", "scripted", "--dataset", "score"))
    assert "archived" in line and "dataset unarchive proj score" in line
    assert "already archived" in refused(cli("dataset", "archive", "proj", "score"))
    assert "already has a dataset named 'score' (archived" in refused(
        cli("dataset", "add", "proj", "score", str(Path(every[0]["path"])))
    )
    ok(cli("dataset", "unarchive", "proj", "score"))
    assert "score" in ok(cli("datasets", "proj")).out

    ok(cli("project", "archive", "proj"))
    assert ok(cli("projects", "--json")).json() == []
    [shown] = ok(cli("projects", "--all", "--json")).json()
    assert shown["name"] == "proj" and shown["archived_at"].endswith("Z")
    # Its history is kept and found by name.
    assert ok(cli("job", trained["id"], "--json")).json()["status"] == "completed"
    assert [v["number"] for v in ok(cli("versions", "proj", "--json")).json()] == [1]
    assert "already archived" in refused(cli("project", "archive", "proj"))
    ok(cli("project", "unarchive", "proj"))
    assert [p["name"] for p in ok(cli("projects", "--json")).json()] == ["proj"]


@pytest.mark.timeout(120)
def test_an_identical_second_deployment_is_refused_and_retire_keeps_its_reason(
    cli: Cli, approved: str
) -> None:
    first = run_job(cli, "deploy", approved, "--dataset", "score", "--schedule", "0 6 * * *")
    before = ok(cli("jobs", "proj", "--json")).json()
    line = refused(cli("deploy", approved, "--dataset", "score", "--schedule", "0 6 * * *"))
    assert f"identical deployment is active: {first['deployment']}" in line
    # The same times written another way are the same schedule.
    for alike in ("0 6 * * 0-6", "0 06 */1 * *", "0 6 1-31 * *"):
        line = refused(cli("deploy", approved, "--dataset", "score", "--schedule", alike))
        assert f"identical deployment is active: {first['deployment']}" in line, alike
    # So is a zone by another of its names (links to the same tz data, or to data that
    # differs only in what its times are called: GMT fires when UTC does).
    for alias in ("Etc/UTC", "Zulu", "GMT"):
        line = refused(
            cli(
                "deploy",
                approved,
                "--dataset",
                "score",
                "--schedule",
                "0 6 * * *",
                "--timezone",
                alias,
            )
        )
        assert f"identical deployment is active: {first['deployment']}" in line, alias
    # What croniter does not expand (nth weekday, nearest weekday) is never taken as alike.
    assert not same_schedule("0 6 * * 5#1", "0 6 * * 5#2")
    assert not same_schedule("0 6 * * 5#1", "0 6 * * 5")
    assert not same_schedule("0 6 1W * *", "0 6 1 * *")
    assert same_schedule("0 6 * jul thu", "0 6 * 7 4")
    assert ok(cli("jobs", "proj", "--json")).json() == before  # nothing queued
    # Another schedule (or zone, or dataset) is another deployment.
    other = run_job(cli, "deploy", approved, "--dataset", "score", "--schedule", "0 7 * * *")
    assert other["deployment"] != first["deployment"]

    reason = "replaced by \x1b[31mv2\x1b[0m"
    retired = run_job(cli, "retire", first["deployment"], "--reason", reason)
    [event] = [
        e
        for e in ok(cli("events", retired["id"], "--json")).json()
        if e["kind"] == "deployment_retired"
    ]
    assert event["details"]["reason"] == reason
    deps = {d["id"]: d for d in ok(cli("deployments", "proj", "--json")).json()}
    assert deps[first["deployment"]]["retire_reason"] == reason
    assert deps[first["deployment"]]["status"] == "retired"
    listing = ok(cli("deployments", "proj")).out
    assert "replaced by ^[[31mv2^[[0m" in listing and "\x1b" not in listing
    # Retired, it no longer counts: the same deployment may be made again.
    run_job(cli, "deploy", approved, "--dataset", "score", "--schedule", "0 6 * * *")


@pytest.mark.timeout(120)
def test_every_job_reading_a_dataset_records_its_sha256_and_rows(
    cli: Cli, project: str, repo: Path
) -> None:
    import hashlib

    path = repo / "data" / "train.csv"
    [train] = [d for d in ok(cli("datasets", "proj", "--json")).json() if d["name"] == "train"]
    assert train["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert train["rows"] == 60

    first = run_job(cli, "train", "proj", "scripted", "--dataset", "train")
    assert first["params"]["dataset_file"]["sha256"] == train["sha256"]
    assert first["params"]["dataset_file"]["rows"] == 60

    write_csv(path, rows=90)  # the file changes under the registered dataset
    second = run_job(cli, "train", "proj", "scripted", "--dataset", "train")
    read = second["params"]["dataset_file"]
    assert (read["rows"], read["sha256"]) == (90, hashlib.sha256(path.read_bytes()).hexdigest())
    [event] = [
        e for e in ok(cli("events", second["id"], "--json")).json() if e["kind"] == "dataset_read"
    ]
    assert event["details"]["changed"] is True
    assert event["details"]["before"]["rows"] == 60
    assert "the file changed" in event["message"]
    [now] = [d for d in ok(cli("datasets", "proj", "--json")).json() if d["name"] == "train"]
    assert (now["rows"], now["sha256"]) == (90, read["sha256"])
    # The first job still says what it read.
    assert ok(cli("job", first["id"], "--json")).json()["params"]["dataset_file"]["rows"] == 60


@pytest.mark.timeout(120)
def test_a_dirty_training_keeps_the_git_diff_of_the_model_folder(
    cli: Cli, project: str, repo: Path, home: Path
) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "models")
    folder = repo / "models" / "scripted"
    training = folder / "training.py"
    training.write_text(training.read_text() + "\n# tuned by hand\n")
    (folder / "helper.py").write_text("VALUE = 1\n")  # untracked
    (repo / "models" / "clf" / "other.py").write_text("x = 1\n")  # another model's folder

    job = run_job(cli, "train", "proj", "scripted", "--dataset", "train")
    assert job["params"]["code_fingerprint"].endswith("+dirty")
    [event] = [e for e in ok(cli("events", job["id"], "--json")).json() if e["kind"] == "code_diff"]
    kept = Path(event["details"]["path"])
    assert kept == home / "artifacts" / "diffs" / f"{job['id']}.diff"  # where every host reads
    assert event["message"].endswith(f"bytes of diff kept in {kept}")
    shown = ok(cli("version", job["version"])).out  # and the version says where it is
    assert f"  diff     {kept}" in shown.splitlines()
    assert ok(cli("version", job["version"], "--json")).json()["version"]["code_diff"] == str(kept)
    diff = kept.read_text()
    assert "+# tuned by hand" in diff
    assert "+VALUE = 1" in diff and "helper.py" in diff
    assert "other.py" not in diff
    assert sorted(event["details"]["files"]) == [
        "models/scripted/helper.py",
        "models/scripted/training.py",
    ]

    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "tuned")
    clean = run_job(cli, "train", "proj", "scripted", "--dataset", "train")
    kinds = [e["kind"] for e in ok(cli("events", clean["id"], "--json")).json()]
    assert "code_diff" not in kinds
    assert not (home / "artifacts" / "diffs" / f"{clean['id']}.diff").exists()

    # The diff goes where every host reads it: the artifact store. A host that does not have
    # it (not mounted here) is refused, and no folder is made at its mount point.
    training.write_text(training.read_text() + "\n# tuned again\n")
    store = home.parent / "store"
    store.mkdir()
    ok(cli("config", "set", "artifacts", str(store)))
    store.rmdir()
    jobs = len(ok(cli("jobs", "proj", "--json")).json())
    said = refused(cli("train", "proj", "scripted", "--dataset", "train", "--detach"))
    where = "the artifact store (`modeldeck config set artifacts`)"
    assert said == f"error: {where} {store} is not a folder on this host"
    assert not store.exists()
    assert len(ok(cli("jobs", "proj", "--json")).json()) == jobs


def test_a_model_folder_added_after_the_project_trains_at_once(
    cli: Cli, project: str, repo: Path
) -> None:
    """A training names a model folder the repository got after the project was added: its
    model is registered then, and the job runs it; a name with no folder is refused."""
    shutil.copytree(repo / "models" / "scripted", repo / "models" / "later")
    job = run_job(cli, "train", "proj", "later", "--dataset", "train")
    assert job["model"] == "later"
    models = {m["name"]: m for m in ok(cli("models", "proj", "--json")).json()}
    assert "later" in models
    nowhere = refused(cli("train", "proj", "nowhere", "--dataset", "train"))
    assert "unknown model 'nowhere'" in nowhere
    shutil.rmtree(repo / "models" / "later")  # its folder gone: said so
    gone = refused(cli("train", "proj", "later", "--dataset", "train"))
    assert gone.startswith("error: model 'later' of project proj has no training code any more")


# -- item 9: predictions you can see --------------------------------------------------------


def score_csv(path: Path, id_name: str, rows: int = 20) -> Path:
    """Rows to score with an id column first (ids that are not row numbers)."""
    lines = [f"{id_name},x1,x2"]
    for i in range(rows):
        cls = i % 2
        lines.append(f"C-{1000 + 7 * i},{cls * 2.0 + (i % 7) * 0.1:.2f},{-cls * 1.5:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def deployed_clf(cli: Cli, project: str, repo: Path) -> dict[str, str]:
    """The scikit-learn model trained, evaluated, approved and deployed on a dataset whose
    rows have ids (in a column named by --id-column)."""
    path = score_csv(repo / "data" / "customers.csv", "customer")
    added = ok(cli("dataset", "add", "proj", "customers", str(path), "--id-column", "customer"))
    assert "customers" in added.out
    version = run_job(cli, "train", "proj", "clf", "--dataset", "train")["version"]
    run_job(cli, "evaluate", version, "--dataset", "test")
    run_job(cli, "approve", version, "--reason", "fine")
    deployment = run_job(cli, "deploy", version, "--dataset", "customers")["deployment"]
    return {"version": version, "deployment": deployment}


@pytest.mark.timeout(180)
def test_the_builtin_scorer_passes_ids_through_and_summarises_its_predictions(
    cli: Cli, deployed_clf: dict[str, str]
) -> None:
    import csv

    result = ok(cli("predict", deployed_clf["deployment"]))
    job_id = result.out.splitlines()[0]
    summary = "20 predictions: 0: 10 (50%), 1: 10 (50%)"
    assert summary in result.out  # the scorer's log
    assert summary in result.err.splitlines()[-1]  # and the command's last word

    job = ok(cli("job", job_id, "--json")).json()
    [path] = [p for p in job["outputs"] if p.endswith("predictions.csv")]
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["customer"] for r in rows[:3]] == ["C-1000", "C-1007", "C-1014"]
    assert list(rows[0])[:2] == ["customer", "prediction"]
    [written] = [
        e for e in ok(cli("events", job_id, "--json")).json() if e["kind"] == "predictions_written"
    ]
    assert written["details"]["summary"] == {
        "kind": "classes",
        "rows": 20,
        "counts": {"0": 10, "1": 10},
        "other": 0,
    }
    assert written["message"].startswith(summary)
    shown = ok(cli("job", job_id)).out
    assert f"predictions  {summary}" in shown
    assert "first 10 rows of" in shown and "customer  prediction" in shown
    assert "C-1063" in shown and "C-1070" not in shown  # rows 0 to 9


def test_a_column_named_id_is_passed_through_without_being_named() -> None:
    import pandas as pd

    from core.builtin import id_column
    from core.runner import DatasetRef

    frame = pd.DataFrame({"id": [7, 9], "x1": [0.1, 0.2], "label": [0, 1]})
    assert id_column(frame, DatasetRef("d", "/x.csv", "label")) == "id"
    assert id_column(frame, DatasetRef("d", "/x.csv", "label", "x1")) == "x1"
    assert id_column(frame.drop(columns=["id"]), DatasetRef("d", "/x.csv", "label")) is None


def test_a_regression_summary_gives_the_mean_and_quantiles() -> None:
    from core.builtin import prediction_summary
    from core.predictions import clean_summary, summary_text

    summary = prediction_summary([float(i) for i in range(101)], classifier=False)
    assert clean_summary(summary) == summary
    assert (summary["mean"], summary["min"], summary["max"]) == (50.0, 0.0, 100.0)
    assert summary["quantiles"] == {
        "0.05": 5.0,
        "0.25": 25.0,
        "0.5": 50.0,
        "0.75": 75.0,
        "0.95": 95.0,
    }
    assert summary_text(summary).startswith("101 predictions: mean 50, std 29.3, min 0, q5 5,")


def test_archiving_changes_the_marker_polling_screens_watch(deck: Deck, project: str) -> None:
    before = deck.change_marker()
    deck.archive_dataset(project, "score")
    archived = deck.change_marker()
    assert archived != before
    deck.archive_project(project)
    assert deck.change_marker() != archived


@pytest.mark.timeout(60)
def test_an_onnx_import_without_onnxruntime_fails_in_one_line(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    # A machine without the extra: a module of that name that fails to import, first on the
    # path of the command and of the job it runs (this venv may have onnxruntime).
    missing = tmp_path / "without-onnx"
    missing.mkdir()
    (missing / "onnxruntime.py").write_text("raise ImportError('No module named onnxruntime')\n")
    path = os.pathsep.join(filter(None, [str(missing), os.environ.get("PYTHONPATH")]))
    ok(cli("project", "add", "proj", "--repo", str(repo)))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07not really a graph")
    result = cli("import", "proj", "graph", str(model), env={"PYTHONPATH": path})
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert "ONNX models need onnxruntime" in result.err.strip().splitlines()[-1]
