"""A chatty job neither stalls nor corrupts its log: every line, in order, every byte kept."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import write_model

from core.engine import Engine
from core.service import Deck

LINES = 1_000_000
LONG = 200_000

NOISY_TRAINING = f"""
import sys


def train(context):
    out = sys.stdout
    for i in range({LINES}):
        if i % 100_000 == 50_000:
            print(f"err {{i}}", file=sys.stderr)
        print(f"line {{i}}")
    out.flush()
    out.buffer.write(b"bad \\xff\\xfe bytes\\n")
    out.buffer.flush()
    print("x" * {LONG})
    print("done", file=sys.stderr)
"""


def expected_lines() -> list[bytes]:
    lines = []
    for i in range(LINES):
        if i % 100_000 == 50_000:
            lines.append(f"err {i}".encode())
        lines.append(f"line {i}".encode())
    lines += [b"bad \xff\xfe bytes", b"x" * LONG, b"done"]
    return lines


def test_a_million_lines_invalid_utf8_and_a_huge_line(
    deck: Deck, project: str, repo: Path, cli
) -> None:
    write_model(repo, "noisy", NOISY_TRAINING)
    engine = Engine(deck, workers=1, poll=0.05)
    engine.start()
    try:
        job = deck.train("proj", "noisy", "train")
        # Tail it while it runs, as a UI would: complete lines only, never a torn one.
        tailed: list[str] = []
        offset = 0
        deadline = time.monotonic() + 90
        while deck.job(job.id).status not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, "the job stalled"
            lines, offset = deck.tail_log(job.id, offset)
            tailed.extend(lines)
            time.sleep(0.02)
        lines, offset = deck.tail_log(job.id, offset, final=True)
        tailed.extend(lines)
        while lines:
            lines, offset = deck.tail_log(job.id, offset, final=True)
            tailed.extend(lines)
    finally:
        engine.shutdown()
    done = deck.job(job.id)
    assert done.status == "completed", done.error

    expected = expected_lines()
    raw = deck.log_path(job.id).read_bytes()
    assert raw.split(b"\n")[:-1] == expected  # the file keeps every byte, in order
    assert raw.endswith(b"\n")

    assert len(tailed) == len(expected)
    assert tailed[:3] == ["line 0", "line 1", "line 2"]
    assert tailed[49_999:50_002] == ["line 49999", "err 50000", "line 50000"]
    assert tailed[-3] == "bad \ufffd\ufffd bytes"  # shown leniently, not as a crash
    assert tailed[-2].startswith("x" * 4096 + " … [")  # cut for display only
    assert tailed[-1] == "done"

    index = deck.log_index(job.id)
    assert index.refresh() == len(expected)
    assert index.read(999_990, 3) == ["line 999980", "line 999981", "line 999982"]

    shown = cli("logs", job.id)
    assert shown.code == 0, shown.err
    out = shown.out.split("\n")[:-1]
    assert len(out) == len(expected)
    assert out[-3:-1] == ["bad \ufffd\ufffd bytes", tailed[-2]]
    assert out[-1] == "done"


def test_stdout_and_stderr_interleave_in_order(deck: Deck, project: str, repo: Path) -> None:
    write_model(
        repo,
        "chatty",
        """
        import sys
        import warnings


        def train(context):
            for i in range(2000):
                stream = sys.stderr if i % 3 == 0 else sys.stdout
                print(f"{'err' if i % 3 == 0 else 'out'} {i}", file=stream)
            warnings.warn("a warning goes to stderr too")
            print("after the warning")
        """,
    )
    engine = Engine(deck, workers=1, poll=0.05)
    engine.start()
    try:
        done = deck.wait(deck.train("proj", "chatty", "train").id, timeout=30)
    finally:
        engine.shutdown()
    assert done.status == "completed", done.error
    lines = deck.read_log(done.id, 0, 5000)
    assert lines[:2000] == [f"{'err' if i % 3 == 0 else 'out'} {i}" for i in range(2000)]
    assert "a warning goes to stderr too" in lines[2000]
    assert lines[-1] == "after the warning"


def test_output_of_child_processes_keeps_its_place(deck: Deck, project: str, repo: Path) -> None:
    # A subprocess writes to the log file itself; lines the job still buffers must go first.
    write_model(
        repo,
        "shelling",
        """
        import os
        import subprocess


        def train(context):
            print("one")
            subprocess.run(["echo", "two"], check=True)
            print("three")
            os.system("echo four")
            print("five")
        """,
    )
    engine = Engine(deck, workers=1, poll=0.05)
    engine.start()
    try:
        done = deck.wait(deck.train("proj", "shelling", "train").id, timeout=30)
    finally:
        engine.shutdown()
    assert done.status == "completed", done.error
    assert deck.read_log(done.id, 0, 10) == ["one", "two", "three", "four", "five"]
