"""The engine survives what a job's process writes and what the disk refuses: a malformed
line of events.jsonl is skipped with an event (in the foreground, in the headless engine and
in recovery), a full disk fails only the job that could not be recorded and the queue goes
on once space is back; a killed fork server and many submitting, stopping processes leave
every job final."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_support import add_ticker, wait_final, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import Engine, LocalExecutor
from core.lifecycle import FINAL_STATUSES
from core.models import Job
from core.procfs import process_alive
from core.service import Deck
from tests.conftest import write_model

ROOT = Path(__file__).resolve().parent.parent

# Lines a job's code may write into its own events.jsonl: each one used to stop the engine.
BAD_LINES = [
    '{"kind": "progress", "fraction": "abc"}',
    "1",
    "1e400",
    '{"kind": "metrics_recorded", "metrics": [1]}',
    '{"kind": "progress", "fraction": 1e400}',
    '{"kind": "metrics_recorded", "metrics": {"big": 1' + "0" * 400 + "}}",
    "[not json",
]

BAD_RECORDS = f"""
import itertools
import json

BAD = {BAD_LINES!r}


def train(context):
    context.progress(0.25, "[b]quarter[/b]")
    with open(context.output_dir.parent / "events.jsonl", "a") as fh:
        for line in BAD:
            fh.write(line + "\\n")
    context.record_metrics({{"loss": 0.5}})
    print("wrote bad records")
"""


def engine_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, MODELDECK_HOME=str(home))
    return env


def start_engine(home: Path, out: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(out, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "tui.entry", "engine", *args],
            cwd=ROOT,
            env=engine_env(home),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def stop_engine(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def kinds(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


def assert_bad_lines_skipped(events: list[dict]) -> None:
    skipped = [e for e in events if e["kind"] == "record_skipped"]
    listed = [e["details"]["line"] for e in skipped if "line" in e["details"]]
    more = sum(e["details"].get("count", 0) for e in skipped)
    assert len(listed) + more == len(BAD_LINES), skipped
    assert listed == BAD_LINES[: len(listed)]  # shown literally, in order
    assert "fraction 'abc' is not a number" in skipped[0]["message"]
    progress = [e for e in events if e["kind"] == "progress"]
    assert [e["message"] for e in progress] == ["25% [b]quarter[/b]"]
    metrics = [e for e in events if e["kind"] == "metrics_recorded"]
    assert [e["details"]["metrics"] for e in metrics] == [{"loss": 0.5}]
    assert events[-1]["kind"] == "completed"


@pytest.fixture
def bad_model(repo: Path, project: str) -> str:
    write_model(repo, "badrec", BAD_RECORDS)
    return "badrec"


def test_a_foreground_job_with_bad_records_completes_and_says_what_was_skipped(
    cli, bad_model: str
) -> None:
    run = cli("train", "proj", bad_model, "--dataset", "train")
    assert "Traceback" not in run.err, run.err
    assert run.code == 0, run.err
    job_id = run.out.split()[0]
    assert "wrote bad records" in run.out
    events = cli("events", job_id, "--json")
    assert events.code == 0, events.err
    assert_bad_lines_skipped(events.json())


def test_the_headless_engine_skips_bad_records_and_keeps_dispatching(
    cli, home: Path, tmp_path: Path, bad_model: str
) -> None:
    out = tmp_path / "engine.out"
    engine = start_engine(home, out, "--workers", "1")
    try:
        bad = cli("train", "proj", bad_model, "--dataset", "train", "--detach").out.split()[0]
        good = cli("train", "proj", "scripted", "--dataset", "train", "--detach").out.split()[0]
        deck = Deck(home=home)
        try:
            for job_id in (bad, good):
                assert wait_final(deck, job_id, timeout=60).status == "completed", out.read_text()
        finally:
            deck.close()
        assert engine.poll() is None, out.read_text()
        assert_bad_lines_skipped(cli("events", bad, "--json").json())
    finally:
        code = stop_engine(engine)
    assert code == 0
    assert "Traceback" not in out.read_text()


def test_a_restarted_engine_recovers_a_job_with_bad_records(
    deck: Deck, cli, home: Path, bad_model: str, new_engine: Callable[..., Engine]
) -> None:
    """The job ended while no engine followed it: recovery meets its bad lines first. It
    used to crash there, again at every restart."""
    job = deck.train("proj", bad_model, "train")
    first = new_engine(deck, workers=1)
    first.tick()  # starts it, then "dies" before reading anything the job wrote
    result = deck.job_dir(job.id) / "result.json"
    wait_for(result.exists, timeout=30, what="the job to end")
    first.shutdown()
    assert deck.job(job.id).status == "running"
    run = cli("engine", "--exit-when-idle", timeout=60)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    events = cli("events", job.id, "--json").json()
    assert "recovered" in [e["kind"] for e in events]
    assert_bad_lines_skipped(events)


FOLDER_EVENTS = """
import os


def train(context):
    events = context.output_dir.parent / "events.jsonl"
    os.remove(events)
    os.mkdir(events)
    (events / "x").write_text("x" * 100)
    print("events.jsonl is a folder now")
"""


def test_an_unreadable_events_file_is_said_once_and_the_job_still_ends(
    deck: Deck, project: str, repo: Path
) -> None:
    write_model(repo, "folder", FOLDER_EVENTS)
    engine = Engine(deck, workers=1)
    try:
        odd = deck.train("proj", "folder", "train").id
        nxt = deck.train("proj", "scripted", "train", {"lines": 1}).id
        assert wait_final(deck, odd, timeout=30, engine=engine).status == "completed"
        assert wait_final(deck, nxt, timeout=30, engine=engine).status == "completed"
    finally:
        engine.shutdown()
    said = [e for e in deck.events(odd) if e.kind == "record_skipped"]
    assert len(said) == 1 and said[0].message.startswith("could not read events.jsonl: ")
    assert "IsADirectoryError" in said[0].message


def test_a_failing_part_of_the_round_is_logged_once_and_backs_off(
    deck: Deck, caplog: pytest.LogCaptureFixture, new_engine: Callable[..., Engine]
) -> None:
    engine = new_engine(deck, workers=1)
    tries: list[float] = []
    broken = True

    def part() -> None:
        tries.append(time.monotonic())
        if broken:
            raise OSError(28, "No space left on device")

    caplog.set_level(logging.WARNING, logger="modeldeck.engine")
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:  # a round every 10 ms
        assert engine.guard.run("writing the thing", part) is False
        time.sleep(0.01)
    # At once, then after 0.5 s, then after 1 s more: a few tries, never a spin.
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert len(tries) <= 3 and all(g >= 0.5 for g in gaps), gaps
    failed = [r.getMessage() for r in caplog.records]
    assert failed == [
        "modeldeck engine: writing the thing failed: OSError: [Errno 28] No space left on "
        "device; trying again"
    ]
    broken = False
    wait_for(lambda: engine.guard.run("writing the thing", part), timeout=6, what="a retry")
    assert "works again" in caplog.records[-1].getMessage()
    assert engine.guard.run("writing the thing", part) is True  # no back-off left


@pytest.mark.parametrize(
    "written",
    [
        "[1]",
        '{"status": "completed", "exit_code": "x", "outputs": 5, "metrics": {"a": "b"}}',
        '{"status": "failed", "error": {"a": 1}, "outputs": ["../../x"]}',
    ],
    ids=["a-list", "wrong-types", "error-object-and-outside-path"],
)
def test_a_result_file_not_as_the_runner_writes_it_does_not_stop_recovery(
    deck: Deck, project: str, written: str, new_engine: Callable[..., Engine]
) -> None:
    job = deck.train("proj", "scripted", "train", {"lines": 1}).id
    first = new_engine(deck, workers=1)
    first.tick()
    result = deck.job_dir(job) / "result.json"
    wait_for(result.exists, timeout=30, what="the job to end")
    first.shutdown()  # before it read the result
    result.write_text(written)  # whatever wrote it: the engine reads it as the job's
    nxt = deck.train("proj", "scripted", "train", {"lines": 1}).id
    second = Engine(deck, workers=1)
    try:
        assert wait_final(deck, nxt, timeout=30, engine=second).status == "completed"
    finally:
        second.shutdown()
    done = deck.job(job)
    assert done.status in FINAL_STATUSES and "recovered" in kinds(deck, job)
    assert all(isinstance(x, str) and "/../" not in x for x in done.outputs)
    assert done.error is None or isinstance(done.error, str)


# -- property: random records never stop the engine -----------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
records = st.fixed_dictionaries(
    {"kind": st.sampled_from(["progress", "metrics_recorded", "started", None])},
    optional={
        "fraction": json_values | st.floats(0, 1),
        "message": json_values,
        "metrics": json_values
        | st.dictionaries(st.text(max_size=5), st.floats() | st.lists(st.integers(), max_size=3)),
        "at": json_values,
    },
)
lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
    st.just(b"[" * 5000),
).map(lambda b: b.replace(b"\n", b" "))


@pytest.fixture
def sleeper(deck: Deck, project: str) -> Iterator[tuple[Engine, str]]:
    """An engine with two workers, one of them busy with a job that sleeps; each round
    reads its new records (no wait between reads)."""
    engine = Engine(deck, workers=2, ingest_every=0)
    job = deck.train("proj", "scripted", "train", {"lines": 0, "sleep": 300}).id
    try:
        engine.tick()
        assert job in engine.running
        # Its own records (the code it runs) are in before a test appends any.
        log = deck.log_path(job)
        wait_for(lambda: log.is_file() and "sleeping" in log.read_text(), what="the job to sleep")
        engine.tick()
        assert [e.kind for e in deck.events(job)].count("code_used") == 1
        yield engine, job
    finally:
        try:
            deck.stop(job)
            wait_final(deck, job, timeout=30, engine=engine)
        finally:
            engine.shutdown()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(lines, min_size=1, max_size=12))
def test_random_records_never_stop_the_engine_from_dispatching(
    deck: Deck, sleeper: tuple[Engine, str], batch: list[bytes]
) -> None:
    engine, busy = sleeper
    path = deck.job_dir(busy) / "events.jsonl"
    with open(path, "ab") as fh:
        fh.write(b"".join(line + b"\n" for line in batch))
    size = path.stat().st_size
    before = len(deck.events(busy))
    nxt = deck.train("proj", "scripted", "train", {"lines": 1}).id
    engine.tick()
    with deck.reader() as s:
        assert s.get(Job, busy).events_offset == size  # every line taken or skipped
    assert deck.job(nxt).status != "queued"  # dispatched in the same round
    assert wait_final(deck, nxt, timeout=30, engine=engine).status == "completed"
    assert deck.job(busy).status == "running"
    added = deck.events(busy)[before:]
    assert all(e.kind in ("progress", "metrics_recorded", "record_skipped") for e in added)
    assert len(added) >= (1 if any(line.strip() for line in batch) else 0)


# -- a full disk -------------------------------------------------------------------------

LOUD = """
def train(context):
    line = "x" * 1023
    for _ in range(12 * 1024):  # 12 MB
        print(line)
"""


def job_pid(deck: Deck, job_id: str) -> int | None:
    """The pid the job's runner leaves in its folder (the database may have had no room)."""
    try:
        return int((deck.job_dir(job_id) / "pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def fill_up(path: Path) -> None:
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
        except OSError:
            pass  # full


def test_a_full_disk_fails_the_job_it_swallowed_and_the_queue_runs_once_space_is_back(
    repo: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a small tmpfs needs root, and CI runs as root")
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    write_model(repo, "loud", LOUD)
    home = tmp_path / "small"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(home)], check=True)
    engine = None
    deck = None
    try:
        deck = Deck(home=home)
        deck.add_project("proj", repo)
        deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
        loud = deck.train("proj", "loud", "train").id
        queued = deck.train("proj", "scripted", "train", {"lines": 1}).id
        out = tmp_path / "engine.out"
        engine = start_engine(home, out, "--workers", "1")
        pid = wait_for(lambda: job_pid(deck, loud), timeout=30, what="the loud job to start")
        wait_for(lambda: not process_alive(pid, None), timeout=60, what="the loud job to end")
        wait_for(lambda: "disk is full" in out.read_text(), timeout=30, what="a write to fail")
        # Time passes while rounds go on failing against the full disk, and the engine must
        # not die of it: nothing to wait for (its heartbeats cannot be written), so a sleep.
        time.sleep(1.0)
        assert engine.poll() is None, out.read_text()  # it survives
        assert deck.job(queued).status in ("queued", "running")

        subprocess.run(["mount", "-o", "remount,size=64m", str(home)], check=True)
        failed = wait_final(deck, loud, timeout=30)
        assert failed.status == "failed"
        assert failed.error.startswith("no space left on device"), failed.error
        assert failed.pid == pid and "started" in kinds(deck, loud)
        assert wait_final(deck, queued, timeout=60).status == "completed", out.read_text()
        assert engine.poll() is None
        text = out.read_text()
        assert "Traceback" not in text
        assert text.count("disk is full") <= 5, text  # said once per part, not per round
        assert "works again" in text

        fill_up(home / "filler")  # full again: stopping the engine must not fail either
        assert stop_engine(engine) == 0, out.read_text()
        assert "Traceback" not in out.read_text()
    finally:
        if engine is not None:
            stop_engine(engine)
        if deck is not None:
            deck.close()
        subprocess.run(["umount", str(home)], check=False)
        if os.path.ismount(home):
            subprocess.run(["umount", "-l", str(home)], check=False)


# -- what held, and the suite did not cover yet ----------------------------------------------


def test_a_killed_fork_server_leaves_its_jobs_running_and_is_started_again(
    deck: Deck, project: str, repo: Path
) -> None:
    add_ticker(repo)
    engine = Engine(deck, workers=2)
    try:
        job = deck.train("proj", "ticker", "train", {"lines": 40, "every": 0.02}).id
        engine.tick()
        local = engine.executors.get("local")
        assert isinstance(local, LocalExecutor)
        (server,) = local.fork_servers.values()  # the one that forked the job
        log = deck.log_path(job)
        wait_for(lambda: log.exists() and "tick 3" in log.read_text(), what="the job to print")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        done = wait_final(deck, job, timeout=30, engine=engine)
        assert done.status == "completed", done
        assert deck.read_log(job, 0, 100) == [f"tick {i}" for i in range(40)]
        after = deck.train("proj", "scripted", "train", {"lines": 1}).id
        assert wait_final(deck, after, timeout=30, engine=engine).status == "completed"
        assert not server.alive()
        assert any(s is not server and s.alive() for s in local.fork_servers.values())
    finally:
        engine.shutdown()


# Submits argv[2] jobs, stopping one of its jobs so far after about every other submission
# (some still queued, some running, some ended), while the other processes do the same.
SUBMIT_AND_STOP = """
import random
import sys
from core.errors import ModelDeckError
from core.service import Deck

deck = Deck()
rng = random.Random(int(sys.argv[1]))
ids = []
for i in range(int(sys.argv[2])):
    hp = {"lines": 1, "sleep": rng.choice([0, 0, 0.2])}
    ids.append(deck.train("proj", "scripted", "train", hp).id)
    print(ids[-1], flush=True)
    if rng.random() < 0.5:
        try:
            deck.stop(rng.choice(ids))
        except ModelDeckError:
            pass  # it ended meanwhile
"""


EACH = 5  # jobs a submitting process queues (the seeds below stop 9 times in all)


def test_four_processes_submit_and_stop_and_every_job_ends(
    deck: Deck, project: str, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "engine.out"
    engine = start_engine(home, out, "--workers", "2", "--grace", "2")
    try:
        wait_for(deck.serving_engine, what="the engine to take the lease")
        subs = [
            subprocess.Popen(
                [sys.executable, "-c", SUBMIT_AND_STOP, str(seed), str(EACH)],
                cwd=ROOT,
                env=engine_env(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for seed in range(4)  # fixed seeds: a failure can be replayed
        ]
        ids: list[str] = []
        errors = ""
        for p in subs:
            got, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            ids += got.split()
            errors += err
        assert len(set(ids)) == 4 * EACH
        wait_for(
            lambda: deck.count_jobs(status=["queued", "running", "stopping"]) == 0,
            timeout=120,
            what=f"all {4 * EACH} jobs to end",
        )
        statuses = [deck.job(i).status for i in ids]
        assert all(s in FINAL_STATUSES for s in statuses), statuses
        assert "completed" in statuses and "cancelled" in statuses  # the stops reached some
        assert "database is locked" not in errors
    finally:
        code = stop_engine(engine)
    assert code == 0
    text = out.read_text()
    assert "database is locked" not in text and "Traceback" not in text
