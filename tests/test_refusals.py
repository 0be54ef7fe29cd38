"""Bad input is refused with one line on stderr, a non-zero exit, no traceback, and no change."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conftest import Result

from core.engine import Engine
from core.service import Deck

SCRIPTED_EVALUATION = """
def evaluate(context):
    print(f"evaluating on {context.dataset.name}")
    return {"accuracy": 0.9}
"""

SCRIPTED_SCORING = """
def score(context):
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n0,1\\n")
"""


def run_jobs(deck: Deck, *submits: Callable[[], Any]) -> list[Any]:
    """Submit and finish jobs one after another on an engine of this process."""
    engine = Engine(deck, workers=1, poll=0.02)
    done = []
    try:
        for submit in submits:
            job = submit()
            assert engine.run_until_idle(timeout=60)
            view = deck.job(job.id)
            assert view.status == "completed", (view.type, view.error)
            done.append(view)
    finally:
        engine.shutdown()  # its fork server too: none left behind
    return done


def snapshot(deck: Deck) -> dict[str, Any]:
    """Everything a user could list: it must be the same after a refusal."""
    return {
        "projects": [p.to_json() for p in deck.projects()],
        "datasets": [d.to_json() for d in deck.datasets("proj")],
        "models": [m.to_json() for m in deck.models("proj")],
        "versions": [v.to_json() for v in deck.versions("proj")],
        "deployments": [d.to_json() for d in deck.deployments("proj")],
        "jobs": [j.to_json() for j in deck.jobs(limit=1000)],
    }


def check_refused(result: Result) -> str | None:
    """Why ``result`` is not a clean refusal, or None."""
    lines = result.err.splitlines()
    if result.code == 0:
        return f"exit code 0, stdout {result.out!r}"
    if "Traceback" in result.err:
        return f"a traceback: {result.err}"
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"stderr is not one `error: ` line: {result.err!r}"
    if result.out:
        return f"something on stdout: {result.out!r}"
    return None


def test_bad_input_is_refused_and_nothing_changes(
    deck: Deck, project: str, repo: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    folder = repo / "models" / "scripted"
    (folder / "evaluation.py").write_text(SCRIPTED_EVALUATION)
    (folder / "scoring.py").write_text(SCRIPTED_SCORING)

    def trained() -> str:
        return run_jobs(deck, lambda: deck.train("proj", "scripted", "train"))[0].version

    v_trained, v_live, v_retired, v_rejected, v_approved = (trained() for _ in range(5))
    for v in (v_live, v_retired, v_rejected, v_approved):
        run_jobs(deck, lambda v=v: deck.evaluate(v, "test"))
    run_jobs(
        deck,
        lambda: deck.reject(v_rejected, "worse than v1"),
        lambda: deck.approve(v_approved, "fine"),
        lambda: deck.approve(v_live, "fine"),
        lambda: deck.approve(v_retired, "fine"),
    )
    live = run_jobs(deck, lambda: deck.deploy(v_live, "score", "0 6 * * *", "Europe/Berlin"))[0]
    gone = run_jobs(deck, lambda: deck.deploy(v_retired, "score"))[0]
    run_jobs(deck, lambda: deck.retire(gone.deployment))
    assert deck.version(v_retired).status == "retired"
    assert deck.deployment(gone.deployment).status == "retired"
    dep_live, dep_gone = live.deployment, gone.deployment
    bad_cron, never, six = "61 * * * *", "0 0 31 2 *", "0 6 * * *"
    (tmp_path / "other").mkdir()

    refusals: list[tuple[str, ...]] = [
        # things that do not exist
        ("versions", "nope"),
        ("train", "nope", "scripted", "--dataset", "train"),
        ("deployments", "nope"),
        ("train", "proj", "nope", "--dataset", "train"),
        ("versions", "proj", "--model", "nope"),
        ("evaluate", "v-0000000000", "--dataset", "test"),
        ("version", "v-nope"),
        ("predict", "dep-nope"),
        ("retire", "dep-nope"),
        ("train", "proj", "scripted", "--dataset", "nope"),
        ("evaluate", v_trained, "--dataset", "nope"),
        ("deploy", v_approved, "--dataset", "nope"),
        ("dataset", "add", "proj", "extra", str(tmp_path / "missing.csv")),
        ("project", "add", "proj", "--repo", str(tmp_path / "other")),
        ("job", "j-nope"),
        ("logs", "j-nope"),
        ("events", "j-nope"),
        ("stop", "j-nope"),
        # transitions the rules forbid
        ("approve", v_trained, "--reason", "looks good"),
        ("reject", v_trained, "--reason", "looks bad"),
        ("deploy", v_trained, "--dataset", "score"),
        ("deploy", v_rejected, "--dataset", "score"),
        ("approve", v_approved, "--reason", "twice"),
        ("reject", v_approved, "--reason", "changed my mind"),
        ("approve", v_rejected, "--reason", "after all"),
        ("evaluate", v_retired, "--dataset", "test"),
        ("stats", v_retired, "--dataset", "test"),
        ("deploy", v_retired, "--dataset", "score"),
        ("retire", dep_gone),
        ("predict", dep_gone),
        ("schedule", dep_gone, "--cron", "0 7 * * *"),
        ("evaluate", v_trained, "--dataset", "score"),  # no target column to score against
        # malformed values
        ("deploy", v_approved, "--dataset", "score", "--schedule", bad_cron),
        ("deploy", v_approved, "--dataset", "score", "--schedule", never),
        ("deploy", v_approved, "--dataset", "score", "--schedule", "* * *"),
        ("deploy", v_approved, "--dataset", "score", "--schedule", six, "--timezone", "X/Y"),
        ("deploy", v_approved, "--dataset", "score", "--timezone", "Europe/Berlin"),
        ("schedule", dep_live, "--cron", bad_cron),
        ("schedule", dep_live, "--cron", never),
        ("schedule", dep_live, "--timezone", "Mars/Olympus_Mons"),
        ("approve", v_live, "--reason", ""),
        ("approve", v_live, "--reason", "   "),
        ("reject", v_live, "--reason", ""),
        ("import", "proj", "byom", "ftp://example.com/model.joblib"),
        ("import", "proj", "byom", "file:///etc/passwd"),
        ("import", "proj", "byom", str(tmp_path / "missing.joblib")),
        ("import", "proj", "scripted", str(repo / "data" / "train.csv")),  # a code model's name
        ("jobs", "--status", "nope"),
        ("jobs", "--type", "nope"),
        ("jobs", "--limit", "0"),
        ("train", "proj", "scripted", "--dataset", "train", "--set", "novalue"),
        ("frobnicate",),
        ("project", "add", "p" * 3000, "--repo", str(tmp_path / "other")),
        ("project", "set", "proj", "--approvers", "x" * 64),
        ("project", "set", "proj", "--four-eyes", "--no-four-eyes"),
        ("config", "set", "artifacts", ""),
        ("engine", "--workers", "3000000000"),
        ("history", "proj", "--at", "0001-01-01T00:00+01:00"),
        # --json changes what a success prints, not how a refusal reads
        ("versions", "nope", "--json"),
        ("approve", v_trained, "--reason", "looks good", "--json"),
    ]
    before = snapshot(deck)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda args: cli(*args), refusals))
    problems = [
        f"modeldeck {' '.join(args)}: {why}"
        for args, result in zip(refusals, results, strict=True)
        if (why := check_refused(result))
    ]
    assert problems == []
    assert snapshot(deck) == before
    # Spot-check that the message names the problem, not just that there is one.
    said = dict(zip(refusals, (r.err.strip() for r in results), strict=True))
    assert "unknown project 'nope'" in said[("versions", "nope")]
    assert "it must be evaluated" in said[("approve", v_trained, "--reason", "looks good")]
    stats = said[("stats", v_retired, "--dataset", "test")]
    assert f"cannot compute statistics of a version that is retired: {v_retired}" in stats
    assert "61 * * * *" in said[refusals[32]]
    assert "can never fire" in said[refusals[33]]
    assert "unknown time zone 'X/Y'" in said[refusals[35]]
    assert "only http(s) URLs" in said[("import", "proj", "byom", "ftp://example.com/model.joblib")]
    assert "already exists" in said[refusals[13]]
    assert "3,000 characters long" in said[refusals[-8]]
    assert "longer than a user name can be" in said[refusals[-7]]
    assert "not allowed with argument --four-eyes" in said[refusals[-6]]


def test_a_corrupt_byom_file_fails_its_import_and_makes_no_version(
    deck: Deck, project: str, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    corrupt = tmp_path / "model.joblib"
    corrupt.write_bytes(b"this is not a joblib file\n")
    no_predict = tmp_path / "model.pkl"
    no_predict.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    before = snapshot(deck)
    for path in (corrupt, no_predict):
        result = cli("import", "proj", "byom", str(path))
        assert result.code == 1, result.err
        job_id = result.out.splitlines()[0]
        job = deck.job(job_id)
        assert job.status == "failed"
        assert job.version is None
        assert "import failed" in result.err
        if path == corrupt:  # one line saying what is wrong, not a traceback
            log = deck.log_path(job_id).read_text()
            assert "Traceback" not in log
            assert "is not a readable joblib file of a model" in log
            assert "is not a readable joblib file of a model" in job.error
    assert "has no predict()" in deck.job(job_id).error
    after = snapshot(deck)
    assert after["models"] == before["models"] == [m.to_json() for m in deck.models("proj")]
    assert after["versions"] == before["versions"] == []
    assert [j["status"] for j in after["jobs"]] == ["failed", "failed"]


def test_an_import_names_an_unknown_project_or_a_code_model_before_the_file(
    deck: Deck, project: str, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    missing = str(tmp_path / "missing.joblib")
    imports = {
        ("nope", "byom", missing): "error: unknown project 'nope' (see `modeldeck projects`)",
        ("nope", "byom", "ftp://example.com/m.joblib"): "error: unknown project 'nope'",
        ("proj", "scripted", missing): "error: 'scripted' is a code model of proj",
        ("proj", "byom", missing): f"error: model file '{missing}' does not exist",
    }
    before = snapshot(deck)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: cli("import", *args), imports))
    for (args, said), result in zip(imports.items(), results, strict=True):
        assert check_refused(result) is None, (args, result)
        assert result.err.startswith(said), (args, result.err)
    assert snapshot(deck) == before
