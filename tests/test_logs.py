"""A chatty job neither stalls nor corrupts its log: every line, in order, every byte kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, write_model

from core.engine import Engine
from core.logs import CHUNK, LogIndex, LogReader, tail
from core.service import Deck
from core.text import has_controls

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
    assert tailed[-3] == "bad \\xff\\xfe bytes"  # the bytes made visible, not a crash
    assert tailed[-2].startswith("x" * 4096 + " … [")  # cut for display only
    assert tailed[-1] == "done"

    index = deck.log_index(job.id)
    assert index.refresh() == len(expected)
    assert index.read(999_990, 3) == ["line 999980", "line 999981", "line 999982"]

    shown = cli("logs", job.id)
    assert shown.code == 0, shown.err
    out = shown.out.split("\n")[:-1]
    assert len(out) == len(expected)
    assert out[-3:-1] == ["bad \\xff\\xfe bytes", tailed[-2]]
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


# -- what reaches the terminal: escape sequences, carriage returns, a line over 4 MiB ------

HOSTILE_TRAINING = r"""
import sys


def train(context):
    out = sys.stdout
    print("osc-st \x1b]0;pwned title\x1b\\ after")
    print("osc-bel \x1b]52;c;ZXZpbA==\x07 after")
    print("ask \x1b[6n after")
    print("clear \x1b[2J\x1b[H c1 \x9b2J tab\tkept")
    for i in range(0, 101, 10):
        out.write(f"\r{i:3d}%|{'#' * (i // 10):<10}|")
    out.write("\n")
    print("after the bar")
    out.write("x" * (5 << 20) + "\n")
    print("after the long line")
    out.write("crlf line\r\n")
    print("last")
"""

LONG_NOTE = f" … [{(5 << 20) - 4096} more characters]"

# The job's lines as readers give them: controls kept (JSON escapes them), \r resolved, cut.
HOSTILE_LINES = [
    "osc-st \x1b]0;pwned title\x1b\\ after",
    "osc-bel \x1b]52;c;ZXZpbA==\x07 after",
    "ask \x1b[6n after",
    "clear \x1b[2J\x1b[H c1 \x9b2J tab\tkept",
    "100%|##########|",
    "after the bar",
    "x" * 4096 + LONG_NOTE,
    "after the long line",
    "crlf line",
    "last",
]

# The same lines as the terminal gets them: every control character but tab made visible.
HOSTILE_SHOWN = [
    "osc-st ^[]0;pwned title^[\\ after",
    "osc-bel ^[]52;c;ZXZpbA==^G after",
    "ask ^[[6n after",
    "clear ^[[2J^[[H c1 \\x9b2J tab\tkept",
    *HOSTILE_LINES[4:],
]


def run_bytes(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The real ``modeldeck`` command, its output kept as bytes (no newline translation)."""
    env = dict(os.environ, MODELDECK_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "tui.entry", *args],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def no_controls(text: str) -> bool:
    return not any(has_controls(line) for line in text.split("\n"))


def test_a_job_cannot_drive_the_terminal_and_a_huge_line_hides_nothing(
    deck: Deck, project: str, repo: Path, home: Path, cli
) -> None:
    write_model(repo, "hostile", HOSTILE_TRAINING)
    run = cli("train", "proj", "hostile", "--dataset", "train")
    assert run.code == 0, run.err
    job_id, *streamed = run.out.split("\n")[:-1]
    assert streamed == HOSTILE_SHOWN  # the foreground stream
    assert no_controls(run.out) and no_controls(run.err)

    shown = cli("logs", job_id)
    assert shown.code == 0, shown.err
    assert shown.out.split("\n")[:-1] == HOSTILE_SHOWN
    assert no_controls(shown.out)

    as_json = cli("logs", job_id, "--json")
    assert as_json.code == 0, as_json.err
    assert as_json.json()["lines"] == HOSTILE_LINES  # the exact text, escaped by JSON
    assert "\x1b" not in as_json.out

    raw = run_bytes(home, "logs", job_id, "--raw")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == deck.log_path(job_id).read_bytes()  # only when asked: every byte
    refused = cli("logs", job_id, "--raw", "--json")
    assert refused.code == 2 and refused.out == ""
    assert refused.err.startswith("error: ") and refused.err.count("\n") == 1

    # The index the TUI's log view reads finds every line after the long one.
    index = LogIndex(deck.log_path(job_id))
    assert index.refresh() == len(HOSTILE_LINES)
    assert index.read(0, 100) == HOSTILE_LINES
    assert index.read(7, 3) == HOSTILE_LINES[7:]
    assert index.search("after the long", 0) == 7


def test_lines_written_in_pieces_show_their_last_state(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"")
    reader = LogReader(path)
    with open(path, "ab", buffering=0) as log:
        log.write(b"epoch 1\r  0%|")
        assert reader.read() == []  # held back until its newline comes
        log.write(b"    |\r 50%|##  |")
        assert reader.read() == []
        log.write(b"\r100%|####|\nnext\n\xe2\x9c")  # a character split over two writes
        assert reader.read() == ["100%|####|", "next"]
        log.write(b"\x93 done\n")
        assert reader.read() == ["\u2713 done"]
        log.write(b"abcdef\rXY\n")
        assert reader.read() == ["XYcdef"]  # what follows \r overwrites the start, no more
        log.write(b"no newline at the end")
        assert reader.read() == []
        assert reader.read(final=True) == ["no newline at the end"]
    assert reader.offset == path.stat().st_size
    assert tail(path, 0, final=True) == (
        ["100%|####|", "next", "\u2713 done", "XYcdef", "no newline at the end"],
        path.stat().st_size,
    )


def test_a_line_longer_than_a_read_neither_stalls_tail_nor_the_index(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"a\n" + b"y" * (3 * CHUNK) + b"\rshort\nb\n")
    # however small the reads, the offset moves past the long line and the next one is found
    lines, offset = tail(path, 0, max_bytes=CHUNK)
    assert lines == ["a"]
    lines, offset = tail(path, offset, max_bytes=CHUNK)
    assert lines[0].startswith("shorty") and lines[0].endswith(
        f" … [{3 * CHUNK - 4096} more characters]"
    )
    assert lines[1:] == ["b"] and offset == path.stat().st_size
    index = LogIndex(path)
    assert index.refresh() == 3
    assert index.read(2, 1) == ["b"]


BURST_TRAINING = """
import sys


def train(context):
    print("start", flush=True)
    sys.stdout.write("".join(f"{i:08d} {'z' * 90}\\n" for i in range(150_000)))  # 14 MiB
    print("end")
"""


def test_the_foreground_stream_prints_everything_a_job_wrote_before_it_ended(
    project: str, repo: Path, cli
) -> None:
    write_model(repo, "burst", BURST_TRAINING)
    run = cli("train", "proj", "burst", "--dataset", "train")
    assert run.code == 0, run.err
    lines = run.out.split("\n")[:-1]
    assert lines[1] == "start" and lines[-1] == "end"
    assert len(lines) == 1 + 1 + 150_000 + 1  # the job's id, then every line it wrote
    assert lines[2 + 149_999].startswith("00149999 ")
