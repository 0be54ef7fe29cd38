"""Shared helpers of the TUI tests: waiting on conditions, models with more scripts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.pilot import Pilot

from core.engine import Engine
from core.service import Deck

EVALUATION = """
def evaluate(context):
    print("evaluating", context.dataset.name)
    context.record_metrics({"accuracy": 0.9})
"""

SCORING = """
def score(context):
    print("scoring", context.dataset.name)
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n0,1\\n")
"""


def screen_text(app: App[Any]) -> str:
    """What the app sends to the terminal for the current screen, as text: the segments of
    every line the compositor made (styles are Textual's own, kept apart from the text)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def extend_scripted(repo: Path) -> None:
    """Give the fast ``scripted`` model an evaluation and a scoring script."""
    folder = repo / "models" / "scripted"
    (folder / "evaluation.py").write_text(EVALUATION)
    (folder / "scoring.py").write_text(SCORING)


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Let the app run until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.1)


def run_all(deck: Deck, timeout: float = 60) -> None:
    """Run what is queued to the end with a short-lived engine (for building state)."""
    engine = Engine(deck)
    try:
        assert engine.run_until_idle(timeout=timeout)
    finally:
        engine.shutdown()  # its fork server too: none left behind


async def status_of(deck: Deck, job_id: str) -> str:
    return (await asyncio.to_thread(deck.job, job_id)).status
