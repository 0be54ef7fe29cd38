"""What a job's records say about how it ended: real jobs in real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.engine import Engine
from core.service import Deck
from tests.conftest import write_model


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    eng = Engine(deck, workers=1, grace=10.0, poll=0.05)
    yield eng
    eng.shutdown()


def finished(deck: Deck, engine: Engine, job_id: str, status: str):
    assert engine.run_until_idle(60)
    done = deck.job(job_id)
    assert done.status == status, (done, deck.log_path(done.id).read_text())
    return done


EXITS = """
import sys


def train(context):
    print("leaving")
    sys.exit(EXIT)
"""


@pytest.mark.parametrize(
    ("exit_with", "code", "error"),
    [
        ("3", 3, "exited with status 3"),
        ("'no rows today'", 1, "no rows today"),
        ("256 + 7", 7, "exited with status 7 (sys.exit(263))"),
    ],
)
def test_a_job_that_calls_sys_exit_records_its_exit_status(
    deck: Deck, engine: Engine, repo: Path, exit_with: str, code: int, error: str
) -> None:
    write_model(repo, "exits", EXITS.replace("EXIT", exit_with))
    job = finished(deck, engine, deck.train("proj", "exits", "train").id, "failed")
    assert (job.exit_code, job.error) == (code, error)
    ended = [e for e in deck.events(job.id) if e.kind == "failed"]
    assert len(ended) == 1, [e.kind for e in deck.events(job.id)]
    assert ended[0].message == f"train failed: {error}"
    assert (ended[0].details["exit_code"], ended[0].details["error"]) == (code, error)
    # One line, no traceback through sys.exit().
    assert deck.log_path(job.id).read_text().splitlines() == ["leaving", f"error: {error}"]


def one_line_failure(deck: Deck, job_id: str, error: str) -> None:
    job = deck.job(job_id)
    assert (job.status, job.error) == ("failed", error)
    log = deck.log_path(job_id).read_text()
    assert f"error: {error}" in log.splitlines(), log
    assert "Traceback" not in log, log


def test_the_built_in_evaluator_without_a_model_file_fails_in_one_line(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    trained = finished(deck, engine, deck.train("proj", "scripted", "train").id, "completed")
    job = finished(deck, engine, deck.evaluate(trained.version, "test").id, "failed")
    model_dir = deck.version_detail(trained.version).artifact_dir
    said = (
        f"no model file in {model_dir}: save the estimator as model.joblib "
        "(or give the model its own evaluation.py / scoring.py)"
    )
    one_line_failure(deck, job.id, said)


def test_the_built_in_evaluator_fails_in_one_line_on_data_it_cannot_use(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    """The dataset's file changed between the submission (which checked it) and the run."""
    trained = finished(deck, engine, deck.train("proj", "clf", "train").id, "completed")
    data = repo / "data" / "test.csv"
    good = data.read_bytes()

    def evaluated_after(change: Callable[[], object]) -> str:
        data.write_bytes(good)
        job = deck.evaluate(trained.version, "test").id
        change()
        return finished(deck, engine, job, "failed").id

    # It has lost a feature the model was fitted with.
    job = evaluated_after(lambda: data.write_text("x1,label\n0.5,1\n1.5,0\n"))
    one_line_failure(deck, job, "the dataset lacks 1 column(s) the model was fitted with: 'x2'")
    # It has lost its target column.
    job = evaluated_after(lambda: data.write_text("x1,x2\n0.5,1\n1.5,0\n"))
    one_line_failure(deck, job, "dataset 'test' has no target column to evaluate against")
    # It is no table.
    job = evaluated_after(lambda: data.write_bytes(b'x1,x2,label\n1,2,1\n"3,4\n'))
    error = deck.job(job).error
    assert error.startswith(f"the dataset file {data} is not a readable table: "), error
    one_line_failure(deck, job, error)
    # It is gone.
    job = evaluated_after(data.unlink)
    one_line_failure(deck, job, f"cannot read the dataset file {data}: No such file or directory")


REPORTS = """
import time


def train(context):
    for i in range(1, 6):
        context.progress(i / 10, f"step {i}")
        time.sleep(0.25)
    for j in range(200):  # a quick run of reports: its last is kept, not 200 rows
        context.progress(0.5 + j / 400, f"burst {j}")
    context.progress(1.0, "done")
    time.sleep(0.05)  # its end comes later than its last report, whatever the rounding
    context.record_metrics({"loss": 0.5})
"""


def test_progress_written_while_no_engine_followed_is_all_kept_with_its_own_times(
    deck: Deck, repo: Path, project: str
) -> None:
    """The engine dies after starting the job; the job reports, ends; the next engine records
    its outcome, and every report goes into the timeline, in order, at the time it was made."""
    from deploy_support import expire_lease, wait_for

    write_model(repo, "reports", REPORTS)
    a = Engine(deck, workers=1, grace=10.0, poll=0.05)
    try:
        job = deck.train("proj", "reports", "train").id
        a.tick()
        wait_for((deck.job_dir(job) / "result.json").exists, what="result.json")
        a.lease.held = False  # it died before noticing
    finally:
        a.shutdown()
    expire_lease(deck.home)
    b = Engine(deck, workers=1, grace=10.0, poll=0.05)
    try:
        b.tick()
    finally:
        b.shutdown()
    events = deck.events(job)
    assert deck.job(job).status == "completed", [(e.kind, e.message) for e in events]
    progress = [e for e in events if e.kind == "progress"]
    said = [e.message for e in progress]
    assert said[:5] == [f"{10 * i}% step {i}" for i in range(1, 6)], said
    assert said[-1] == "100% done" and len(said) <= 8, said  # the burst: a few, its last
    times = [e.at for e in progress]
    assert times == sorted(times) and len(set(times[:5])) == 5, times  # its own, 0.25 s apart
    # Between the job's start and end (its `started` event may be recorded later than the
    # process started: by the round that noticed it).
    ran = deck.job(job)
    assert ran.started_at <= times[0] and times[-1] < ran.finished_at, (ran, times)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)


NULS = """
def train(context):
    print("a log line with a \\x00 in it")
    context.progress(0.5, "half \\x00 way")
    context.record_metrics({"m\\x00": 1.0, "accuracy": 0.9})
    if context.hyperparameters.get("fail"):
        raise RuntimeError("err \\x00 nul")
"""


def test_a_nul_a_job_writes_is_stored_as_a_stand_in(deck: Deck, engine: Engine, repo: Path) -> None:
    """A NUL character in a job's progress message, a metric's name or its error: the job
    ends and keeps them, each NUL as ␀ (PostgreSQL cannot store one in text: the job never
    ended, and its engine tried again for ever); its log keeps the byte."""
    write_model(repo, "nuls", NULS)
    made = finished(deck, engine, deck.train("proj", "nuls", "train").id, "completed")
    assert made.version
    assert deck.version(made.version).metrics == {"m␀": 1.0, "accuracy": 0.9}
    messages = [e.message for e in deck.events(made.id)]
    assert "50% half ␀ way" in messages
    failed = deck.train("proj", "nuls", "train", {"fail": True})
    job = finished(deck, engine, failed.id, "failed")
    assert job.error == "RuntimeError: err ␀ nul"
    assert "\0" in deck.log_path(job.id).read_text()


UNENDED = """
import sys


def train(context):
    sys.stdout.write("no newline at end")
    context.record_metrics({"x": "text"})
    sys.stdout.write("nor here")
    raise RuntimeError("boom")
"""


def test_modeldecks_own_lines_start_a_line_of_their_own(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    """Output without a newline at its end: what modeldeck writes next in the log (a skipped
    metric, the traceback) starts a new line; it was glued onto the job's."""
    write_model(repo, "unended", UNENDED)
    job = finished(deck, engine, deck.train("proj", "unended", "train").id, "failed")
    lines = deck.log_path(job.id).read_text().splitlines()
    assert lines[0] == "no newline at end"
    assert lines[1].startswith("modeldeck: metric 'x' skipped: ")
    assert lines[2] == "nor here"
    assert lines[3] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: boom"


def test_a_metrics_event_names_every_metric_recorded() -> None:
    """A null (a NaN the job reported) and a list are stored with the numbers: the event's
    message names them too (it named the numbers only)."""
    from core.records import parse_job_record

    raw = b'{"kind": "metrics_recorded", "metrics": {"a": 0.5, "y": null, "z": [1, null]}}'
    assert parse_job_record(raw).message == "a=0.5, y=null, z=[1, null]"


NO_PREDICTION_COLUMN = """
def score(context):
    (context.output_dir / "predictions.csv").write_text("row,guess\\n0,1\\n1,0\\n")
"""


def test_a_scorer_without_a_prediction_column_says_what_is_not_measured(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    """Predictions without a ``prediction`` column: the batch run's log says no prediction
    drift or performance is measured, and why (nothing said so)."""
    from deploy_support import add_fast_stages, approved_version, deploy

    folder = add_fast_stages(repo)
    (folder / "scoring.py").write_text(NO_PREDICTION_COLUMN)
    deployment = deploy(deck, engine, approved_version(deck, engine, "proj"))
    run = finished(deck, engine, deck.predict(deployment).id, "completed")
    assert (
        "modeldeck: predictions.csv has no 'prediction' column (row, guess): no prediction "
        "drift or performance is measured"
    ) in deck.log_path(run.id).read_text().splitlines()
