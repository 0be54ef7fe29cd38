"""Names, reasons, hyperparameters and errors reach the terminal with their controls visible.

A teammate's project name or a job's error can hold escape sequences that set the window
title (OSC ended by ST), write the clipboard (OSC 52 ended by BEL), or make the terminal type
into the shell (``ESC[6n``). Every listing of the real CLI shows them as visible stand-ins;
``--json`` keeps the exact text (escaped by JSON itself).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import Result, write_model

from core.cli import main
from core.engine import Engine
from core.service import Deck
from core.text import has_controls

HOSTILE = "\x1b]0;pwned\x1b\\\x1b]52;c;ZXZpbA==\x07\x1b[6n\x9b2J"
SHOWN = "^[]0;pwned^[\\^[]52;c;ZXZpbA==^G^[[6n\\x9b2J"

TINY_TRAINING = """
def train(context):
    context.progress(0.5, "half way " + context.hyperparameters["note"])
    (context.model_dir / "weights.txt").write_text("1")
"""
TINY_EVALUATION = """
def evaluate(context):
    return {"accuracy": 0.9}
"""


def run_here(capfd: pytest.CaptureFixture[str], *args: str) -> Result:
    """The ``modeldeck`` command run in this process (for speed: one import for many
    listings), its output taken from the file descriptors as a terminal would get it."""
    capfd.readouterr()
    code = main(list(args))
    captured = capfd.readouterr()
    return Result(code, captured.out, captured.err)


def visible(text: str) -> None:
    """Nothing in ``text`` but newlines and tabs is a control character."""
    for line in text.split("\n"):
        assert not has_controls(line), repr(line)


@pytest.fixture
def hostile_home(deck: Deck, project: str, repo: Path, home: Path, monkeypatch) -> dict:
    """A database as a careless or hostile teammate left it: control characters in a model,
    datasets, a project, a login name, a reason and hyperparameters."""
    # The actor of every job below: a login name as the password database may hold it.
    monkeypatch.setattr("core.identity.os_login", lambda: "ann" + HOSTILE)
    write_model(repo, "tiny", TINY_TRAINING, **{"evaluation.py": TINY_EVALUATION})
    engine = Engine(deck, workers=1, poll=0.05)
    engine.start()
    try:
        trained = deck.wait(deck.train("proj", "tiny", "train", {"note": HOSTILE}).id, 30)
        version = trained.version
        assert trained.status == "completed" and version, trained.error
        for submit in (
            lambda: deck.evaluate(version, "test"),
            lambda: deck.approve(version, "looks fine " + HOSTILE),
            lambda: deck.deploy(version, "score"),
        ):
            done = deck.wait(submit().id, 30)
            assert done.status == "completed", done.error
    finally:
        engine.shutdown()
    # Names from before names were checked: written into the database file directly.
    db = sqlite3.connect(home / "modeldeck.db")
    with db:
        db.execute("UPDATE model SET name = ? WHERE name = 'tiny'", ("tiny" + HOSTILE,))
        db.execute("UPDATE dataset SET name = name || ?", (HOSTILE,))
        db.execute("UPDATE dataset SET path = path || ? WHERE name LIKE 'score%'", (HOSTILE,))
    db.close()
    return {"version": version, "train_job": trained.id}


@pytest.mark.sqlite_only(reason="writes hostile rows with sqlite3")
def test_every_listing_shows_control_characters_visibly(
    cli, capfd: pytest.CaptureFixture[str], hostile_home: dict, home: Path
) -> None:
    def here(*args: str) -> Result:
        return run_here(capfd, *args, "--home", str(home))

    version, train_job = hostile_home["version"], hostile_home["train_job"]
    failed = cli(
        "train", "proj", "scripted", "--dataset", "train" + HOSTILE, "--set", "fail=" + HOSTILE
    )
    assert failed.code == 1, failed.err
    visible(failed.out)
    visible(failed.err)
    assert "train failed in" in failed.err and SHOWN in failed.err  # the job's error

    shown = {
        "models": here("models", "proj"),
        "versions": here("versions", "proj"),
        "version": here("version", version),
        "deployments": here("deployments", "proj"),
        "datasets": here("datasets", "proj"),
        "job": here("job", train_job),
        "events": here("events", train_job),
    }
    for what, result in shown.items():
        assert result.code == 0, (what, result.err)
        visible(result.out)
        visible(result.err)
    assert "tiny" + SHOWN in shown["models"].out
    assert "tiny" + SHOWN in shown["versions"].out
    assert f"ann{SHOWN}" in shown["versions"].out  # who approved
    assert f"ann{SHOWN}" in shown["version"].out
    assert f"looks fine {SHOWN}" in shown["version"].out
    assert "tiny" + SHOWN in shown["deployments"].out
    assert "score" + SHOWN in shown["deployments"].out
    assert "train" + SHOWN in shown["datasets"].out
    assert ("score.csv" + SHOWN) in shown["datasets"].out
    assert f"ann{SHOWN}" in shown["job"].out
    assert f"half way {SHOWN}" in shown["events"].out
    # Columns line up on what is shown: widths are measured after the stand-ins.
    header, *rows = shown["datasets"].out.splitlines()
    column = header.index("ROWS")
    assert sorted(row[column:].split()[0] for row in rows) == ["20", "40", "60"]

    # Now the project's name too.
    db = sqlite3.connect(home / "modeldeck.db")
    with db:
        db.execute("UPDATE project SET name = ?", ("proj" + HOSTILE,))
    db.close()
    projects, jobs = here("projects"), here("jobs")
    for result in (projects, jobs):
        assert result.code == 0, result.err
        visible(result.out)
    assert "proj" + SHOWN in projects.out
    assert "tiny" + SHOWN in jobs.out and f"ann{SHOWN}" in jobs.out
    assert SHOWN[:20] in jobs.out  # the failed job's error, cut to its column

    # JSON keeps the exact text, escaped by JSON itself: no raw control reaches the terminal.
    as_json = {
        "projects": here("projects", "--json"),
        "jobs": here("jobs", "--json"),
        "version": here("version", version, "--json"),
    }
    for result in as_json.values():
        assert result.code == 0, result.err
        assert "\x1b" not in result.out and "\\u001b" in result.out
    assert as_json["projects"].json()[0]["name"] == "proj" + HOSTILE
    errors = {job["error"] for job in as_json["jobs"].json()}
    assert any(e and HOSTILE in e for e in errors)
    assert {job["actor"] for job in as_json["jobs"].json()} >= {"ann" + HOSTILE}
    approval = as_json["version"].json()["approvals"][0]
    assert approval["reason"] == "looks fine " + HOSTILE


@pytest.mark.parametrize("where", ["arguments", "file name"])
def test_error_messages_stay_one_visible_line(
    where: str, capfd: pytest.CaptureFixture[str], tmp_path: Path, home: Path, deck: Deck
) -> None:
    text = "nope" + HOSTILE + "\nsecond line"
    if where == "arguments":  # argparse repeats unknown arguments as they are
        args = ["projects", text]
    else:  # the error names the file
        bad = tmp_path / (text + ".json")
        bad.write_text("{}")
        args = ["dataset", "add", "proj", "d", str(bad)]
    result = run_here(capfd, *args, "--home", str(home))
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert "nope" in result.err and "second line" in result.err
    visible(result.err)


def test_a_reason_of_several_lines_is_one_line_of_its_jobs_log(
    deck: Deck, project: str, repo: Path, new_engine
) -> None:
    """A reason's newline is shown (``^J``) on the one line the job's log gives it: it wrote
    lines of its own there, which the log could not tell from modeldeck's."""
    from deploy_support import add_fast_stages, deploy

    add_fast_stages(repo)
    engine = new_engine(deck, workers=1)
    trained = deck.train(project, "scripted", "train", {"lines": 1})
    assert engine.run_until_idle(30)
    version = deck.job(trained.id).version
    deck.evaluate(version, "test")
    assert engine.run_until_idle(30)
    forged = "version v-0 approved on evaluation j-0 of test"
    approve = deck.approve(version, "fine\n" + forged)
    assert engine.run_until_idle(30)
    lines = deck.log_path(approve.id).read_text().splitlines()
    assert lines[0].startswith(f"approved version {version} by ")
    assert lines[0].endswith(": fine^J" + forged)
    assert forged not in lines
    retire = deck.retire(deploy(deck, engine, version), "done\nretired deployment dep-0")
    assert engine.run_until_idle(30)
    lines = deck.log_path(retire.id).read_text().splitlines()
    assert lines[0].endswith(": done^Jretired deployment dep-0")
    assert "retired deployment dep-0" not in lines
