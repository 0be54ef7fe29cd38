"""How long the command line takes to answer, against the interpreter's own floors.

    .venv/bin/python tests/bench/bench_cli.py [--runs 15] [--against REV]

Wall time (median of ``--runs``, all commands interleaved) of, each a fresh process:

- ``python -c pass``: the interpreter alone;
- ``python -c "import sqlmodel"``: the floor a read cannot go under while reads use SQLModel;
- ``modeldeck --help``;
- ``modeldeck jobs bench --json`` on a data home holding that project and 50 jobs.

The modeldeck commands run as the console script does (``tui.entry.run``; ``main`` for a
revision from before it had ``run``), with
bytecode written and read as an installed modeldeck has it. ``--against REV`` also runs the
commands with the code of git revision REV (extracted with ``git archive`` into a temp dir),
on the same data home, so that one run prints before and after side by side.
Not collected by pytest (``--ignore=tests/bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import fresh_deck, write_repo  # noqa: E402

CONSOLE = "import sys, tui.entry as e; e.run() if hasattr(e, 'run') else sys.exit(e.main())"


def wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def extract(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` of this repository, as files under ``into``."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "core", "tui"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also time the code of git revision REV")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-cli-") as tmp:
        root = Path(tmp)
        repo = write_repo(root, 1)
        deck = fresh_deck(root, repo, "cli")
        for _ in range(50):
            deck.train("bench", "noop", "d")  # no engine: they stay queued
        env["MODELDECK_HOME"] = str(deck.home)
        env.pop("MODELDECK_DB", None)
        deck.close()
        py = sys.executable
        commands: dict[str, tuple[list[str], Path]] = {
            "python -c pass": ([py, "-c", "pass"], ROOT),
            "python -c 'import sqlmodel'": ([py, "-c", "import sqlmodel"], ROOT),
        }
        codes = {"": ROOT}
        if args.against:
            codes = {f" [{args.against}]": extract(args.against, root / "against"), **codes}
        for tag, code in codes.items():
            commands[f"modeldeck --help{tag}"] = ([py, "-c", CONSOLE, "--help"], code)
            commands[f"modeldeck jobs bench --json{tag}"] = (
                [py, "-c", CONSOLE, "jobs", "bench", "--json"],
                code,
            )
        for cmd, cwd in commands.values():  # warm up: bytecode written, files in the cache
            wall(cmd, cwd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (cmd, cwd) in commands.items():
                times[name].append(wall(cmd, cwd, env))
        med = {name: statistics.median(v) for name, v in times.items()}
        bare, orm = med["python -c pass"], med["python -c 'import sqlmodel'"]
        print(f"python {sys.version.split()[0]}, median of {args.runs} runs each\n")
        print(f"  {'command':<44} {'ms':>7} {'- bare':>8} {'- sqlmodel':>11}")
        for name, secs in med.items():
            print(
                f"  {name:<44} {1000 * secs:7.0f} {1000 * (secs - bare):+8.0f} "
                f"{1000 * (secs - orm):+11.0f}"
            )


if __name__ == "__main__":
    main()
