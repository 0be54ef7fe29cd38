"""Jobs forked by the fork server look to their code exactly like freshly started ones."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from core.engine import Engine
from core.service import Deck
from tests.conftest import write_model

PROBE = """
import json, os, sys

def train(context):
    print("facts " + json.dumps({
        "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0), "cwd": os.getcwd(),
        "job": os.environ.get("MODELDECK_JOB_ID"), "stdin": sys.stdin.read(),
        "executable": sys.executable,
    }))
"""


def _facts(deck: Deck, job_id: str) -> dict:
    lines, _ = deck.tail_log(job_id, 0, final=True)
    line = next(x for x in lines if x.startswith("facts "))
    return json.loads(line[len("facts ") :])


def _run(deck: Deck, job_id: str) -> None:
    engine = Engine(deck, workers=1)
    try:
        assert engine.run_until_idle(timeout=60)
    finally:
        engine.shutdown()


def test_forked_job_has_its_own_session_log_cwd_and_env(deck: Deck, project: str, repo: Path):
    write_model(repo, "probe", PROBE)
    job = deck.train(project, "probe", "train")
    _run(deck, job.id)
    done = deck.job(job.id)
    assert done.status == "completed", done.error
    facts = _facts(deck, job.id)
    assert facts["pgid"] == facts["pid"] == facts["sid"] == done.pid  # own session and group
    assert facts["cwd"] == str(repo / "models" / "probe")
    assert facts["job"] == job.id
    assert facts["stdin"] == ""  # never the engine's terminal
    started = next(e for e in deck.events(job.id) if e.kind == "started")
    assert started.details["pid"] == done.pid


def test_a_model_asking_for_another_python_gets_a_new_interpreter(
    deck: Deck, project: str, repo: Path, tmp_path: Path
):
    other = tmp_path / "python-other"
    os.symlink(sys.executable, other)
    write_model(repo, "probe", PROBE, **{"model.json": json.dumps({"python": str(other)})})
    job = deck.train(project, "probe", "train")
    _run(deck, job.id)
    assert deck.job(job.id).status == "completed", deck.job(job.id).error
    started = next(e for e in deck.events(job.id) if e.kind == "started")
    assert started.details["python"] == str(other)
    assert _facts(deck, job.id)["executable"] == str(other)


WRONG = "raise SystemExit('the wrong module was imported')\n"


def test_jobs_start_in_a_folder_that_has_a_core_and_a_json_of_its_own(
    deck: Deck, project: str, repo: Path, tmp_path: Path, monkeypatch
):
    """An engine started in the user's own project (a ``core`` package is a common name):
    its fork server imports modeldeck's ``core`` and the standard library's ``json``, not
    those of the folder it was started in."""
    folder = tmp_path / "their-project"
    (folder / "core").mkdir(parents=True)
    (folder / "core" / "__init__.py").write_text(WRONG)
    (folder / "json.py").write_text(WRONG)
    monkeypatch.chdir(folder)
    write_model(repo, "probe", PROBE)
    job = deck.train(project, "probe", "train")
    _run(deck, job.id)
    assert deck.job(job.id).status == "completed", deck.job(job.id).error
    assert _facts(deck, job.id)["cwd"] == str(repo / "models" / "probe")


def test_a_new_interpreter_starts_in_a_model_folder_that_has_a_core_py(
    deck: Deck, project: str, repo: Path, tmp_path: Path
):
    """The same for a job started as a new interpreter, whose working directory is the
    model's folder: a ``core.py`` there that the code does not import is never imported."""
    other = tmp_path / "python-other"
    os.symlink(sys.executable, other)
    model = json.dumps({"python": str(other)})
    write_model(repo, "probe", PROBE, **{"model.json": model, "core.py": WRONG})
    job = deck.train(project, "probe", "train")
    _run(deck, job.id)
    assert deck.job(job.id).status == "completed", deck.job(job.id).error
