"""How the real ``modeldeck`` command ends: when its standard output is a pipe whose reader
has left (``modeldeck jobs --json | head -1``), and how its refusals quote what was given."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT

from core.db import head_revision
from core.engine import Engine
from core.service import Deck


def to_closed_pipe(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``modeldeck ARGS`` with standard output a pipe already closed by its reader: every
    write to it fails (EPIPE), however short."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "tui.entry", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=ROOT,
            env=dict(os.environ, MODELDECK_HOME=str(home)),
        )
    finally:
        os.close(write)


@pytest.fixture
def trained(deck: Deck, project: str) -> str:
    """A completed training of the scripted model, with a few lines of log."""
    job = deck.train(project, "scripted", "train", {"lines": 5})
    engine = Engine(deck, workers=1)
    try:
        assert engine.run_until_idle(60)
    finally:
        engine.shutdown()
    assert deck.job(job.id).status == "completed"
    return job.id


READS = [  # a table, JSON, a job's fields, a log, a log's bytes
    ["jobs"],
    ["jobs", "--json"],
    ["job", "{job}"],
    ["logs", "{job}", "--follow"],
    ["logs", "{job}", "--raw"],
]


def test_a_reader_that_left_ends_every_read_quietly_with_status_0(home: Path, trained: str) -> None:
    for args in READS:
        argv = [a.format(job=trained) for a in args]
        done = to_closed_pipe(home, *argv)
        assert (done.returncode, done.stderr) == (0, ""), argv


@pytest.mark.parametrize("json", [False, True])
def test_a_job_command_whose_reader_left_follows_its_job_to_the_end(
    home: Path, deck: Deck, project: str, json: bool
) -> None:
    more = ["--json"] if json else []
    done = to_closed_pipe(home, "train", "proj", "scripted", "--dataset", "train", *more)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr
    [job] = deck.jobs("proj")
    assert job.status == "completed"  # run to its end here, though nobody read its log
    failing = ["--set", "fail=on purpose"]
    done = to_closed_pipe(home, "train", "proj", "scripted", "--dataset", "train", *failing)
    assert done.returncode == 1, done.stderr  # the exit status still says how it ended
    assert "train failed" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.sqlite_only  # a refusal before the database has any say
def test_a_refusal_to_a_reader_gone_from_both_outputs_exits_2(tmp_path: Path) -> None:
    """``modeldeck ... 2>&1 | head -0``: the refusal's line goes nowhere, and the status is
    still the refusal's (it was 1 or 120 from a BrokenPipeError in the refusal itself)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tui.entry", "jobs", "--status", "bogus"],
            stdout=write,
            stderr=write,
            timeout=120,
            cwd=ROOT,
            env=dict(os.environ, MODELDECK_HOME=str(tmp_path / "home")),
        )
    finally:
        os.close(write)
    assert done.returncode == 2


@pytest.mark.sqlite_only  # the refusals come before the database has any say
def test_bytes_that_are_not_utf8_are_quoted_as_bytes_in_refusals(cli, deck: Deck) -> None:
    ff = "\udcff"  # the byte 0xff on the command line, as Python holds it
    expected = {
        ("jobs", "--status", ff): "unknown job status '\\xff' (use queued,",
        ("jobs", "--type", f"a{ff}b"): "unknown job type 'a\\xffb' (use train,",
        ("import", "p", "m", "x", "--format", ff): "invalid choice: '\\xff' (choose from",
        ("jobs", "--limit", ff): "--limit takes a whole number from 1 to 1000000, not '\\xff'",
        ("history", "p", "--at", f"20{ff}"): "in the years 1 to 9999, not '20\\xff'",
        ("config", "set", f"k{ff}", "1"): "no setting 'k\\xff': there are",
        ("alert", "add", "p", "--webhook", "https://x", "--on", f"a{ff}"): "event 'a\\xff'",
        # text the user typed is kept as typed: a backslash, then "udcff"
        ("jobs", "--status", "\\udcff"): "unknown job status '\\\\udcff'",
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda args: cli(*args), expected))
    for (args, shown), r in zip(expected.items(), results, strict=True):
        assert r.code == 2 and r.out == "", args
        [line] = r.err.splitlines()
        assert line.startswith("error: ") and shown in line, (args, line)
        assert "\\udc" not in line.replace("\\\\udcff", ""), line


@pytest.mark.sqlite_only  # refused before the database has any say
def test_a_host_name_that_cannot_be_stored_is_refused_in_one_line(cli) -> None:
    """$MODELDECK_HOST names this host in every job and engine row: a byte that is not UTF-8
    could not be stored (the engine failed its every round), a control character would reach
    other hosts' terminals."""
    for host, shown in (("ho\udcffst", "'ho\\xffst'"), ("a\x1b]0;x\x07", "'a^[]0;x^G'")):
        for args in (("engine", "--exit-when-idle"), ("jobs",)):
            r = cli(*args, env={"MODELDECK_HOST": host})
            assert r.code == 2 and r.out == "", (args, r)
            assert (
                r.err == f"error: $MODELDECK_HOST {shown} is not a host name: it holds a "
                "control character, a byte that is not UTF-8 or spaces around it\n"
            ), r.err


@pytest.mark.sqlite_only  # the data home's own SQLite file
def test_a_read_only_data_home_is_read_and_writes_to_it_are_refused_in_one_line(
    cli, repo: Path, tmp_path: Path
) -> None:
    # Tests run as root, whom file modes do not stop: a read-only mount stops root too.
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a tmpfs needs root, and CI runs as root")
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "read-only"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    home = mount / "home?#%41"  # quoted in its URL: still this folder's file
    try:
        deck = Deck(home=home)
        try:
            deck.add_project("proj", repo)
            deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
            job = deck.train("proj", "scripted", "train", {"lines": 2})
            engine = Engine(deck, workers=1)
            try:
                assert engine.run_until_idle(60)
            finally:
                engine.shutdown()
        finally:
            deck.close()  # closed cleanly: its -wal and -shm files are gone
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        env = {"MODELDECK_HOME": str(home)}

        listed = cli("jobs", "--json", env=env)
        assert listed.code == 0, listed.err
        assert [(j["id"], j["status"]) for j in listed.json()] == [(job.id, "completed")]
        log = cli("logs", job.id, env=env)
        assert (log.code, log.out, log.err) == (0, "line 0\nline 1\n", "")
        assert cli("projects", env=env).out.startswith("NAME")

        read_only = "error: the data home " + str(home) + " is read-only: cannot "
        refusals = {
            ("project", "add", "other", "--repo", str(repo)): "error: the database is read-only",
            ("train", "proj", "scripted", "--dataset", "train"): read_only + "run a job here",
            ("engine", "--exit-when-idle"): read_only + "serve as an engine",
        }
        for args, said in refusals.items():
            r = cli(*args, env=env)
            assert r.code == 2 and r.out == "", (args, r)
            [line] = r.err.splitlines()
            assert line.startswith(said), (args, line)
        shown = cli("db", "current", env=env).out
        assert shown.startswith(f"database sqlite:///{home}/modeldeck.db: revision "), shown

        # A schema behind this modeldeck's cannot be upgraded here: one line, not a traceback.
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        conn = sqlite3.connect(home / "modeldeck.db")
        with conn:
            conn.execute("UPDATE alembic_version SET version_num = '0011'")
        conn.close()  # an open file keeps the mount from going read-only
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        behind = cli("jobs", env=env)
        assert behind.code == 2 and behind.out == "", behind
        assert behind.err.splitlines() == [
            f"error: the database's schema is at revision 0011 and this modeldeck needs "
            f"{head_revision()}, but its folder is read-only here: upgrade it where it can "
            "be written (`modeldeck db upgrade`)"
        ]
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=False)
