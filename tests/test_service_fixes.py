"""Service and CLI fixes from a review and a field trial, through the real CLI."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Result, ok, refused, write_csv
from deploy_support import add_fast_stages, approved_version, deploy

from core.engine import Engine
from core.service import Deck

Cli = Callable[..., Result]


def jobs(cli: Cli) -> list[dict[str, Any]]:
    listed = ok(cli("jobs", "--json")).json()
    assert isinstance(listed, list)
    return listed


@pytest.fixture
def engine(deck: Deck, project: str, repo: Path) -> Iterator[Engine]:
    """An engine on the test's home, the scripted model given fast stages."""
    add_fast_stages(repo)
    e = Engine(deck, workers=1)
    try:
        yield e
    finally:
        e.shutdown()


# -- import: a file that cannot be read --------------------------------------------------


def unreadable_files(tmp_path: Path) -> list[Path]:
    """Files that exist and cannot be read: /proc/self/mem (whose page 0 is never mapped:
    reading it fails even for root) and, when not root, a file with mode 000."""
    found = [Path("/proc/self/mem")]
    if os.geteuid() != 0:
        locked = tmp_path / "locked.joblib"
        locked.write_bytes(b"x")
        locked.chmod(0)
        found.append(locked)
    return found


def test_an_import_of_a_file_that_cannot_be_read_is_refused_in_one_line(
    cli: Cli, project: str, tmp_path: Path
) -> None:
    for path in unreadable_files(tmp_path):
        for again in ((), ("--again",)):  # --again hashes nothing, but reads it still
            line = refused(cli("import", project, "byom", str(path), *again))
            assert line.startswith("error: cannot read model file '"), line
            assert "mem" in line or "locked" in line
    fifo = tmp_path / "fifo.joblib"
    os.mkfifo(fifo)  # exists, and reading it would wait for a writer: not a file to import
    (tmp_path / "folder.joblib").mkdir()
    for odd in (fifo, tmp_path / "folder.joblib"):
        line = refused(cli("import", project, "byom", str(odd)))
        assert line == f"error: model file '{odd}' is not a regular file", line
    assert jobs(cli) == []  # nothing queued


def test_an_import_checks_the_project_and_model_before_reading_the_file(
    cli: Cli, project: str
) -> None:
    # The file would fail to read: these refusals come first, so it is never read.
    line = refused(cli("import", "nosuch", "byom", "/proc/self/mem"))
    assert "unknown project 'nosuch'" in line
    line = refused(cli("import", project, "clf", "/proc/self/mem"))
    assert "'clf' is a code model of proj" in line


# -- schedule: no deployment made identical to another -----------------------------------


def test_a_schedule_change_that_makes_a_deployment_identical_to_another_is_refused(
    cli: Cli, deck: Deck, engine: Engine, project: str
) -> None:
    version = approved_version(deck, engine, project)
    first = deploy(deck, engine, version, "0 6 * * *")
    second = deploy(deck, engine, version, "0 7 * * *", "Europe/Berlin")

    def schedules() -> dict[str, tuple[str, str]]:
        listed = ok(cli("deployments", project, "--json")).json()
        return {d["id"]: (d["schedule"], d["timezone"]) for d in listed}

    before = schedules()
    assert before == {first: ("0 6 * * *", "UTC"), second: ("0 7 * * *", "Europe/Berlin")}
    # The cron and zone together would make `second` a copy of `first`.
    line = refused(cli("schedule", second, "--cron", "0 6 * * *", "--timezone", "UTC"))
    assert f"an identical deployment is active: {first}" in line, line
    assert schedules() == before  # nothing changed
    ok(cli("schedule", second, "--cron", "0 6 * * *"))  # 06:00 in Berlin: not a copy
    after = schedules()
    assert after[second] == ("0 6 * * *", "Europe/Berlin")
    # So would the zone alone.
    line = refused(cli("schedule", second, "--timezone", "UTC"))
    assert f"an identical deployment is active: {first}" in line, line
    assert schedules() == after
    # A deployment is not identical to itself: giving its own schedule again is fine.
    ok(cli("schedule", first, "--cron", "0 6 * * *", "--timezone", "UTC"))


# -- dataset files: read with no lock held; a missing one named -----------------------------


@pytest.fixture
def trained(deck: Deck, engine: Engine, project: str) -> str:
    """A trained version of the scripted model (its columns kept: x1, x2, label)."""
    job = deck.train(project, "scripted", "train", {"lines": 1})
    assert engine.run_until_idle(30)
    version = deck.job(job.id).version
    assert version, deck.job(job.id)
    return version


def reader_waits(fifo: Path, proc: subprocess.Popen[str], timeout: float = 60) -> int:
    """Poll until a process has the FIFO open for reading (it then waits for its header);
    the write end, opened."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never read the dataset"
        time.sleep(0.02)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_dataset_header_is_read_while_other_commands_can_write(
    cli: Cli, deck: Deck, home: Path, repo: Path, trained: str, command: str
) -> None:
    """A dataset file that is slow to give its header (a FIFO nobody writes yet) holds
    back only the command reading it: another command writes the database meanwhile."""
    fifo = write_csv(repo / "data" / "piped.csv")
    deck.add_dataset("proj", "piped", fifo, target="label")
    fifo.unlink()
    os.mkfifo(fifo)
    args = (
        ["train", "proj", "scripted", "--dataset", "piped"]
        if command == "train"
        else ["evaluate", trained, "--dataset", "piped"]
    )
    env = dict(os.environ, MODELDECK_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.entry", *args, "--detach", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    fd = None
    try:
        fd = reader_waits(fifo, proc)
        # The reading command holds no write lock: a write of this process goes through at
        # once (in a thread: a write waiting for the lock would wait for its busy timeout).
        wrote = threading.Thread(target=deck.add_project, args=("other", repo), daemon=True)
        wrote.start()
        wrote.join(30)
        if wrote.is_alive():
            pytest.fail(f"`{command}` held the database's write lock while reading a dataset")
        assert deck.project("other").name == "other"
    finally:
        if fd is None:
            fd = os.open(fifo, os.O_RDWR)  # never blocks: lets a reader that came late go on
        os.write(fd, b"x1,x2,label\n")
        os.close(fd)
        out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    job = json.loads(out)
    assert job["type"] == command and job["status"] == "queued"
    assert job["dataset"] == "piped"


def test_a_dataset_whose_file_is_gone_is_named_with_its_path(
    cli: Cli, repo: Path, trained: str
) -> None:
    gone = repo / "data" / "test.csv"
    gone.unlink()
    before = jobs(cli)
    for args in (
        ("evaluate", trained, "--dataset", "test"),
        ("stats", trained, "--dataset", "test"),
        ("train", "proj", "scripted", "--dataset", "test"),
    ):
        line = refused(cli(*args))
        assert line == (
            f"error: the file of dataset 'test' is missing: {gone} does not exist "
            "(moved or deleted?)"
        ), line
    assert jobs(cli) == before  # nothing queued


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xfe\x00junk\x9c" * 100, "test.csv is not a CSV file: it is not UTF-8 text"),
        (b"", "test.csv is empty: a CSV dataset needs a header row"),
        (b'"x1,x2,label\n1,2,0\n', "test.csv is not a CSV file: a quoted field is never closed"),
        (b",,\n1,2,0\n", "test.csv names none of its columns: its first row is the header"),
        (b"x1\0,x2,label\n1,2,0\n", "test.csv is not a CSV file: its header holds a NUL byte"),
    ],
    ids=["junk", "empty", "open-quote", "no-names", "nul"],
)
def test_a_dataset_file_turned_unreadable_says_why(
    cli: Cli, repo: Path, trained: str, content: bytes, why: str
) -> None:
    """Not 'does not fit' with the junk's bytes for column names, nor a reason left out."""
    path = repo / "data" / "test.csv"
    path.write_bytes(content)
    before = jobs(cli)
    line = refused(cli("evaluate", trained, "--dataset", "test"))
    assert line == f"error: cannot read the columns of dataset 'test' ({path}): {why}", line
    assert jobs(cli) == before


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'"x1,x2,label\n1,2,0\n', "odd.csv is not a CSV file: a quoted field is never closed"),
        (b",,\n1,2,0\n", "odd.csv names none of its columns: its first row is the header"),
        (b"x1\0,x2,label\n1,2,0\n", "odd.csv is not a CSV file: its header holds a NUL byte"),
    ],
    ids=["open-quote", "no-names", "nul"],
)
def test_an_odd_csv_is_refused_when_added(
    cli: Cli, repo: Path, project: str, content: bytes, why: str
) -> None:
    """Not "0 rows, 1 column" (an unclosed quote swallowed the file) nor nameless columns."""
    path = repo / "data" / "odd.csv"
    path.write_bytes(content)
    before = ok(cli("datasets", project, "--json")).json()
    assert refused(cli("dataset", "add", project, "odd", str(path))) == f"error: {why}"
    assert ok(cli("datasets", project, "--json")).json() == before


def test_csv_quirks_pandas_reads_are_still_added(cli: Cli, repo: Path, project: str) -> None:
    """A nameless first column (pandas' index) and a quote inside a field, as pandas reads
    them: added, not refused by the checks above."""
    path = repo / "data" / "quirky.csv"
    path.write_text(',"x1"x,label\n0,1,1\n1,2,0\n')
    line = ok(cli("dataset", "add", project, "quirky", str(path))).out
    assert line.startswith("dataset quirky added: 2 rows, 3 column")


# -- job and list output -----------------------------------------------------------------

ZONE = {"TZ": "Asia/Kolkata"}  # +05:30 all year, labelled IST: never UTC's clock


@pytest.mark.timeout(120)
def test_job_shows_times_on_the_local_clock_and_params_as_json_aligned(
    cli: Cli, deck: Deck, engine: Engine, project: str, repo: Path
) -> None:
    job = deck.train(project, "scripted", "train", {"lines": 1, "tag": "a'b", "lr": 3e-4})
    assert engine.run_until_idle(30)
    shown = ok(cli("job", job.id, env=ZONE)).out.splitlines()
    data = ok(cli("job", job.id, "--json")).json()
    assert isinstance(data, dict)
    fields = {}
    for line in shown:
        if not line.startswith(" "):
            key, _, value = line.partition(" ")
            fields[key] = value.lstrip()
    assert list(fields) == list(data)  # every field, in order, one a line (or more)
    width = len(shown[0]) - len(fields["id"])
    heads = [line for line in shown if not line.startswith(" ")]
    assert all(line[width - 1] == " " and line[width] != " " for line in heads)  # aligned
    more = [line for line in shown if line.startswith(" ")]
    assert more and all(line[width + 1] == '"' for line in more)  # params' keys, under its first
    for key in ("created_at", "started_at", "finished_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST", fields[key]), fields[key]
    at = shown.index(next(line for line in shown if line.startswith("params ")))
    text = "\n".join(line[width:] for line in shown[at:] if line == shown[at] or line[0] == " ")
    assert json.loads(text) == data["params"]
    assert fields["params"].startswith('{"hyperparameters": {"lines": 1, "tag": "a\'b"')


@pytest.mark.timeout(120)
def test_approve_says_which_evaluation_it_was_decided_on_with_a_local_time(
    cli: Cli, deck: Deck, engine: Engine, trained: str
) -> None:
    evaluation = deck.evaluate(trained, "test")
    assert engine.run_until_idle(30)
    engine.shutdown()  # gives the lease back: the command runs its job itself, at once
    result = ok(cli("approve", trained, "--reason", "fine", env=ZONE))
    [line] = [line for line in result.err.splitlines() if "on evaluation" in line]
    assert line.startswith(f"version {trained} approved on evaluation {evaluation.id} of test (")
    assert line.endswith(" IST)"), line
    # No approval reads a dataset: `jobs` leaves the column out.
    assert "DATASET" not in ok(cli("jobs", "--type", "approve")).out


@pytest.mark.timeout(120)
def test_jobs_show_their_dataset_and_versions_their_hyperparameters(
    cli: Cli, deck: Deck, engine: Engine, project: str
) -> None:
    deck.train(project, "scripted", "train")  # no hyperparameters
    assert engine.run_until_idle(30)
    assert "HYPERPARAMETERS" not in ok(cli("versions", project)).out  # none: left out
    for c in (0.1, 1):
        deck.train(project, "scripted", "train", {"lines": 1, "C": c})
    assert engine.run_until_idle(30)
    rows = ok(cli("versions", project)).out.splitlines()
    assert rows[0].split()[:6] == ["ID", "MODEL", "VERSION", "STATUS", "METRIC", "HYPERPARAMETERS"]
    at = rows[0].index("HYPERPARAMETERS")
    assert [row[at:].split()[0] for row in rows[1:]] == ["lines=1", "lines=1", "-"]
    assert "lines=1 C=1 " in rows[1] and "lines=1 C=0.1 " in rows[2]  # newest first
    rows = ok(cli("jobs", project)).out.splitlines()
    assert rows[0].split()[:4] == ["ID", "TYPE", "TARGET", "DATASET"]
    at = rows[0].index("DATASET")
    assert [row[at:].split()[0] for row in rows[1:]] == ["train"] * 3


@pytest.mark.timeout(120)
def test_approving_on_an_evaluation_of_the_training_data_only_warns(
    cli: Cli, deck: Deck, engine: Engine, trained: str
) -> None:
    deck.evaluate(trained, "train")  # the data it learnt from
    assert engine.run_until_idle(30)
    engine.shutdown()
    result = ok(cli("approve", trained, "--reason", "looks great"))
    assert f"warning: version {trained} (train) is approved on an evaluation of its training" in (
        result.err
    )
    assert deck.version(trained).status == "approved"  # a warning, not a refusal
