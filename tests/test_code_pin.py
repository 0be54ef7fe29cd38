"""A version runs the code it was trained with: a copy made by its training, in its files.

Real jobs in real processes, real model code in a real repository folder.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text

from core.engine import Engine
from core.service import Deck
from tests.conftest import Result, write_model

TRAINING = """
def train(context):
    (context.model_dir / "weights.txt").write_text("42")
    return {"loss": 0.5}
"""

EVALUATION = """
def evaluate(context):
    return {"accuracy": MARK}
"""

SCORING = """
def score(context):
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n0,MARK\\n")
"""


def code(text: str, mark: str) -> str:
    return text.replace("MARK", mark)


@pytest.fixture
def engine(deck: Deck, project: str) -> Iterator[Engine]:
    eng = Engine(deck, workers=1, grace=10.0, poll=0.05)
    yield eng
    eng.shutdown()


def run(deck: Deck, engine: Engine, submitted, status: str = "completed"):
    assert engine.run_until_idle(60)
    done = deck.job(submitted.id)
    assert done.status == status, (done, deck.log_path(done.id).read_text())
    return done


def code_used(deck: Deck, job_id: str) -> dict:
    events = [e for e in deck.events(job_id) if e.kind == "code_used"]
    assert len(events) == 1, [e.kind for e in deck.events(job_id)]
    return events[0].details


# A version as trained before versions kept their code: no training that copied it.
LEGACY = "UPDATE model_version SET job_id = NULL WHERE id = :v"


def cli_version_runs(deck: Deck, version: str) -> str:
    """What ``modeldeck version`` says the version's jobs run."""
    from core.cli.registry import _runs

    return _runs(deck.version_detail(version))


def predictions(deck: Deck, job_id: str) -> list[list[str]]:
    path = deck.job_dir(job_id) / "output" / "predictions.csv"
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def deployed(deck: Deck, engine: Engine, repo: Path) -> tuple[str, str, Path]:
    """The 'pinned' model trained, evaluated, approved and deployed: version, deployment,
    and its folder in the repository."""
    folder = write_model(
        repo,
        "pinned",
        TRAINING,
        **{
            "evaluation.py": code(EVALUATION, "1.0"),
            "scoring.py": code(SCORING, "old"),
            "helper.py": "VALUE = 1\n",
        },
    )
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    train = run(deck, engine, deck.train("proj", "pinned", "train"))
    version = train.version
    run(deck, engine, deck.evaluate(version, "test"))
    run(deck, engine, deck.approve(version, "fine"))
    dep = run(deck, engine, deck.deploy(version, "score")).deployment
    return version, dep, folder


def test_a_deployed_version_runs_the_code_it_was_trained_with(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    version, dep, folder = deployed(deck, engine, repo)
    trained = code_used(deck, deck.version(version).job_id)
    assert trained["source"] == "repository"
    assert trained["entry"] == "training.py:train"
    artifact = Path(deck.version_detail(version).artifact_dir)
    assert sorted(p.name for p in (artifact / "code").iterdir()) == [
        "evaluation.py",
        "helper.py",
        "scoring.py",
        "training.py",
    ]  # no __pycache__

    # Edits after training, uncommitted or not, do not reach the version.
    (folder / "scoring.py").write_text(code(SCORING, "edited"))
    (folder / "evaluation.py").write_text(code(EVALUATION, "0.0"))
    scored = run(deck, engine, deck.predict(dep))
    assert predictions(deck, scored.id) == [["row", "prediction"], ["0", "old"]]
    evaluated = run(deck, engine, deck.evaluate(version, "test"))
    assert deck.version_detail(version).metrics_history[-1].metrics == {"accuracy": 1.0}

    for job in (scored, evaluated):
        used = code_used(deck, job.id)
        assert used["source"] == "version"
        assert used["dir"] == str(artifact / "code")
        # The fingerprint of what ran is that of what was trained.
        assert used["fingerprint"] == trained["fingerprint"]
    assert code_used(deck, scored.id)["entry"] == "scoring.py:score"
    message = next(e.message for e in deck.events(scored.id) if e.kind == "code_used")
    assert message == f"runs scoring.py:score from the version's own code ({used['fingerprint']})"

    # A renamed model folder no longer matters to it.
    folder.rename(folder.with_name("pinned-renamed"))
    again = run(deck, engine, deck.predict(dep))
    assert predictions(deck, again.id) == [["row", "prediction"], ["0", "old"]]


def test_a_version_without_its_own_code_runs_the_repository_and_says_when_it_is_gone(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    version, dep, folder = deployed(deck, engine, repo)
    artifact = Path(deck.version_detail(version).artifact_dir)
    # Its copy gone: the repository's code now is not what it was trained with. Its jobs
    # fail, saying so (they ran the repository's code instead).
    shutil.rmtree(artifact / "code")
    (folder / "scoring.py").write_text(code(SCORING, "current"))
    gone = run(deck, engine, deck.predict(dep), status="failed")
    said = f"the code this version was trained with is gone: {artifact / 'code'} does not exist"
    assert said in gone.error, gone.error
    assert not (deck.job_dir(gone.id) / "output" / "predictions.csv").exists()
    assert "its jobs fail" in cli_version_runs(deck, version)
    # As a version trained before versions kept their code (no training that copied it):
    # the repository's code, and the version says so.
    with deck.store.engine.begin() as conn:
        conn.execute(text(LEGACY), {"v": version})
    assert "trained before versions kept theirs" in cli_version_runs(deck, version)
    scored = run(deck, engine, deck.predict(dep))
    assert predictions(deck, scored.id) == [["row", "prediction"], ["0", "current"]]
    used = code_used(deck, scored.id)
    assert (used["source"], used["dir"]) == ("repository", str(folder))
    assert used["fingerprint"].startswith("sha256:")

    folder.rename(folder.with_name("pinned-renamed"))
    failed = run(deck, engine, deck.predict(dep), status="failed")
    expected = (
        f"model code folder {folder} is gone (renamed or removed); "
        "this version keeps no copy of its code"
    )
    assert failed.error == expected
    assert deck.log_path(failed.id).read_text().splitlines() == [f"error: {expected}"]


SCORE_RETURNS = """
import pandas as pd


def score(context):
    return RETURNED
"""


@pytest.mark.parametrize(
    ("returned", "rows"),
    [
        ('pd.DataFrame({"row": [0, 1], "prediction": ["a", "b"]})', [["row", "prediction"]]),
        ('pd.Series([3, 4], name="score")', [["score"]]),
    ],
)
def test_a_score_that_returns_its_predictions_writes_them(
    deck: Deck, engine: Engine, repo: Path, returned: str, rows: list[list[str]]
) -> None:
    write_model(
        repo,
        "returns",
        TRAINING,
        **{
            "evaluation.py": code(EVALUATION, "1.0"),
            "scoring.py": SCORE_RETURNS.replace("RETURNED", returned),
        },
    )
    version = run(deck, engine, deck.train("proj", "returns", "train")).version
    run(deck, engine, deck.evaluate(version, "test"))
    run(deck, engine, deck.approve(version, "fine"))
    dep = run(deck, engine, deck.deploy(version, "score")).deployment
    scored = run(deck, engine, deck.predict(dep))
    assert scored.outputs == [str(deck.job_dir(scored.id) / "output" / "predictions.csv")]
    written = predictions(deck, scored.id)
    assert written[:1] == rows and len(written) == 3


def test_a_score_that_writes_and_returns_nothing_fails_in_one_line(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    write_model(
        repo,
        "silent",
        TRAINING,
        **{
            "evaluation.py": code(EVALUATION, "1.0"),
            "scoring.py": "def score(context):\n    pass\n",
        },
    )
    version = run(deck, engine, deck.train("proj", "silent", "train")).version
    run(deck, engine, deck.evaluate(version, "test"))
    run(deck, engine, deck.approve(version, "fine"))
    dep = run(deck, engine, deck.deploy(version, "score")).deployment
    failed = run(deck, engine, deck.predict(dep), status="failed")
    message = "score() wrote no predictions.csv in context.output_dir and returned nothing"
    assert failed.error == message
    assert deck.log_path(failed.id).read_text().splitlines()[-1] == f"error: {message}"


def test_a_text_metric_is_skipped_and_the_training_completes(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    write_model(
        repo,
        "chatty",
        """
        def train(context):
            context.record_metrics({"loss": 0.25, "flag": True})
            return {"accuracy": 0.5, "note": "text", "nan": float("nan")}
        """,
    )
    done = run(deck, engine, deck.train("proj", "chatty", "train"))
    assert deck.version(done.version).metrics == {"loss": 0.25, "accuracy": 0.5, "nan": None}
    skipped = [e for e in deck.events(done.id) if e.kind == "metric_skipped"]
    assert [(e.details["metric"], e.details["value"]) for e in skipped] == [
        ("flag", "True"),
        ("note", "'text'"),
    ]
    assert skipped[1].message == "metric 'note' skipped: metric 'note' must be a number, not str"
    log = deck.log_path(done.id).read_text()
    assert (
        "modeldeck: metric 'note' skipped: metric 'note' must be a number, not str: 'text'" in log
    )
    assert "Traceback" not in log


def test_version_and_events_say_which_code_runs(
    cli: Callable[..., Result], deck: Deck, project: str, repo: Path
) -> None:
    write_model(repo, "pinned", TRAINING)
    trained = cli("train", "proj", "pinned", "--dataset", "train", "--json")
    assert trained.code == 0, trained.err
    job = trained.json()
    events = cli("events", job["id"], "--json").json()
    used = [e for e in events if e["kind"] == "code_used"]
    assert len(used) == 1 and used[0]["details"]["fingerprint"].startswith("sha256:")
    assert used[0]["message"].startswith("runs training.py:train from the repository's model")

    own = Path(deck.version_detail(job["version"]).artifact_dir) / "code"
    shown = cli("version", job["version"])
    assert shown.code == 0, shown.err
    assert f"  runs     its own copy of the code it was trained with ({own})" in shown.out
    detail = cli("version", job["version"], "--json").json()
    assert (detail["code_source"], detail["code_dir"]) == ("version", str(own))

    shutil.rmtree(own)  # its copy gone: its jobs fail (they do not run the repository's)
    assert "the copy of the code it was trained with is gone" in cli("version", job["version"]).out
    assert cli("version", job["version"], "--json").json()["code_source"] == "gone"
    # As a version trained before versions kept their code: the repository's.
    with deck.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE model_version SET job_id = NULL WHERE id = :v"), {"v": job["version"]}
        )
    folder = repo / "models" / "pinned"
    assert f"the repository's current code ({folder})" in cli("version", job["version"]).out


def test_a_file_over_the_limit_is_not_copied_and_the_log_says_so(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    folder = write_model(repo, "bulky", TRAINING)
    with open(folder / "big.bin", "wb") as fh:  # sparse: no time spent writing it
        fh.truncate(16 * 1024 * 1024 + 1)
    (folder / "small.txt").write_text("kept")
    done = run(deck, engine, deck.train("proj", "bulky", "train"))
    own = Path(deck.version_detail(done.version).artifact_dir) / "code"
    assert sorted(p.name for p in own.iterdir()) == ["small.txt", "training.py"]
    used = code_used(deck, done.id)
    assert (used["files"], used["skipped"]) == (2, ["big.bin"])
    log = deck.log_path(done.id).read_text()
    assert "modeldeck: big.bin not kept with the version's code: over 16 MiB" in log


def test_a_training_whose_code_copy_holds_no_file_keeps_it_until_it_is_removed(
    deck: Deck, engine: Engine, repo: Path
) -> None:
    """Its only file over the size limit: the copy is empty, but it is the version's code
    (its jobs run the built-in evaluator, not the repository's evaluation.py)."""
    from core.runner import CODE_FILE_LIMIT
    from tests.conftest import SKLEARN_TRAINING

    folder = repo / "models" / "huge"
    folder.mkdir(parents=True)
    padding = "#" * (CODE_FILE_LIMIT + 1)
    (folder / "training.py").write_text(SKLEARN_TRAINING + padding + "\n")
    trained = run(deck, engine, deck.train("proj", "huge", "train", {"C": 1.0}))
    version = trained.version
    used = code_used(deck, trained.id)
    assert (used["pinned"], used["files"], used["skipped"]) == ("code", 0, ["training.py"])
    log = deck.log_path(trained.id).read_text()
    assert "modeldeck: the version's copy of its code holds no file: training.py is over" in log
    copy = Path(deck.version_detail(version).artifact_dir) / "code"
    assert copy.is_dir() and not any(copy.iterdir())
    assert cli_version_runs(deck, version).startswith("its own copy of the code")

    (folder / "evaluation.py").write_text(code(EVALUATION, "0.0"))  # not the version's
    evaluated = run(deck, engine, deck.evaluate(version, "test"))
    assert code_used(deck, evaluated.id)["source"] == "version"
    assert code_used(deck, evaluated.id)["entry"] == "built-in evaluator"
    assert deck.version_detail(version).metrics_history[-1].metrics["accuracy"] == 1.0

    copy.rmdir()  # removed afterwards: gone, its jobs fail
    assert "its jobs fail" in cli_version_runs(deck, version)
    gone = run(deck, engine, deck.evaluate(version, "test"), status="failed")
    assert f"the code this version was trained with is gone: {copy} does not exist" in gone.error


@pytest.mark.postgres_only("a failed statement aborts the whole transaction on PostgreSQL")
@pytest.mark.parametrize(
    ("table", "statement", "gone", "outcome"),
    [
        # The check that a version's missing copy was made (its training's events): out of
        # the claim, only its job fails.
        ("job_event", ("job_event.details", "job_event.kind"), True, "lock timeout"),
        # Another read of a spec (the version's baseline): the claim is undone, said, and
        # the jobs are taken one at a time.
        ("baseline", ("FROM baseline", "baseline.version_id"), False, None),
    ],
)
def test_a_spec_read_that_fails_in_the_database_fails_no_other_job(
    deck: Deck,
    repo: Path,
    project: str,
    db_url: str,
    table: str,
    statement: tuple[str, ...],
    gone: bool,
    outcome: str | None,
) -> None:
    """A read of a job's spec waits for a lock a maintenance holds (``VACUUM FULL``, say)
    and gives up (``lock_timeout``). In the batch claim's transaction, it aborted it, and
    the commit undid every claim of the batch (PostgreSQL) while their jobs started all
    the same: the next round started them again."""
    import psycopg

    eng = Engine(deck, workers=2, grace=10.0, poll=0.05)
    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    maintenance = psycopg.connect(url)
    try:
        write_model(repo, "pinned", TRAINING, **{"evaluation.py": code(EVALUATION, "1.0")})
        version = run(deck, eng, deck.train("proj", "pinned", "train")).version
        copy = Path(deck.version_detail(version).artifact_dir) / "code"
        if gone:
            shutil.rmtree(copy)
        locked: list[str] = []

        # The engine's connections wait 0.1 s for a lock at most.
        with psycopg.connect(url, autocommit=True) as admin:
            name = admin.execute("SELECT current_database()").fetchone()[0]
            admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = 100')
        deck.store.engine.dispose()

        def lock_the_table_once(_conn, _cursor, sql, _params, _context, _many):
            if maintenance.info.transaction_status:  # the check gave up: maintenance ends
                maintenance.rollback()
            elif not locked and all(part in sql for part in statement):
                locked.append(sql)
                maintenance.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

        # First in the batch: an import, whose spec reads no table but the job's.
        import joblib
        from sklearn.dummy import DummyClassifier

        joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), repo / "dummy.joblib")
        other = deck.import_model("proj", "dummy", str(repo / "dummy.joblib")).id
        evaluated = deck.evaluate(version, "test").id
        event.listen(deck.store.engine, "before_cursor_execute", lock_the_table_once)
        try:
            assert eng.run_until_idle(60)
        finally:
            event.remove(deck.store.engine, "before_cursor_execute", lock_the_table_once)
        assert locked
        done = deck.job(other)
        assert done.status == "completed", (done, deck.log_path(other).read_text())
        kinds = [e.kind for e in deck.events(other)]
        assert (kinds.count("started"), kinds.count("code_used")) == (1, 1), kinds  # ran once
        assert deck.log_path(other).read_text().count("loaded DummyClassifier") == 1  # once
        evaluation = deck.job(evaluated)
        if outcome is None:
            assert evaluation.status == "completed", evaluation
            return
        assert evaluation.status == "failed" and outcome in evaluation.error, evaluation
        # No lock: the copy is gone, and the job says so.
        gone = run(deck, eng, deck.evaluate(version, "test"), status="failed")
        said = f"the code this version was trained with is gone: {copy} does not exist"
        assert said in gone.error, gone.error
    finally:
        maintenance.close()
        eng.shutdown()
