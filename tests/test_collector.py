"""The cycle collector while the console script starts (core/collector.py): held, never off."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def console_script(command: str) -> dict:
    """What ``command`` (the body of a main() run by the console script) saw: it prints
    its findings as JSON after a NUL."""
    probe = (
        "import gc, json, sys\n"
        "from tui import entry\n"
        "def main():\n"
        + "".join(f"    {line}\n" for line in command.splitlines())
        + "    return 0\n"
        "entry.main = main\n"
        "sys.argv = ['modeldeck']\n"
        "entry.run()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.rpartition("\x00")[2])


def test_a_command_that_opens_no_database_still_collects_cycles() -> None:
    seen = console_script(
        "import weakref\n"
        "class Node: pass\n"
        "first = Node(); first.me = first; probe = weakref.ref(first); del first\n"
        "for _ in range(400_000):  # a command's work, making cyclic garbage\n"
        "    n = Node(); n.me = n\n"
        "print('\\x00' + json.dumps({'enabled': gc.isenabled(), 'collected': probe() is None}))"
    )
    assert seen == {"enabled": True, "collected": True}


def test_a_command_that_opens_its_database_gets_the_collector_back_as_it_was(
    tmp_path: Path,
) -> None:
    seen = console_script(
        "held = gc.get_threshold()\n"
        "from core.db import make_engine\n"
        f"make_engine('sqlite:///{tmp_path}/x.db')\n"
        "print('\\x00' + json.dumps({'held': held[0], 'after': gc.get_threshold(),"
        " 'frozen': gc.get_freeze_count() > 10_000}))"
    )
    from core.collector import HOLD_THRESHOLD

    assert seen["held"] == HOLD_THRESHOLD
    assert seen["after"] == list(gc.get_threshold()) and seen["frozen"]
