"""Fixed data for the snapshot tests: built through the Deck on a frozen clock, with
counted ids, one actor and one host, in a fixed folder so paths are stable too."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from conftest import SCRIPTED_TRAINING, write_csv, write_model
from sqlmodel import select
from tui_support import EVALUATION, SCORING, run_all

from core.clock import FakeClock
from core.models import Job, JobEvent
from core.service import Deck

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ROOT = Path(tempfile.gettempdir()) / "modeldeck-snapshots"


def _repo(root: Path) -> Path:
    repo = root / "repo"
    for name in ("fraud-logreg", "fraud-forest"):
        write_model(
            repo,
            name,
            SCRIPTED_TRAINING,
            **{
                "config.json": json.dumps({"hyperparameters": {"lines": 6}}),
                "evaluation.py": EVALUATION,
                "scoring.py": SCORING,
            },
        )
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_csv(data / "train.csv")
    write_csv(data / "test.csv", rows=40)
    write_csv(data / "score.csv", rows=20, target=False)
    return repo


def build() -> Path:
    """Create the snapshot home (again) and return it."""
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    repo = _repo(ROOT)
    home = ROOT / "home"
    counter = itertools.count(1)

    def new_id(prefix: str) -> str:
        return f"{prefix}-{next(counter):06d}"

    clock = FakeClock(START)
    with fixed_ids_and_actor(new_id, "ana"):
        deck = Deck(home=home, clock=clock)
        deck.add_project("fraud", repo)
        deck.add_dataset("fraud", "train", repo / "data" / "train.csv", target="label")
        deck.add_dataset("fraud", "test", repo / "data" / "test.csv", target="label")
        deck.add_dataset("fraud", "score", repo / "data" / "score.csv")
        trains = []
        for model, overrides in (
            ("fraud-logreg", {}),
            ("fraud-logreg", {"lines": 12}),
            ("fraud-forest", {}),
        ):
            clock.advance(minutes=7)
            trains.append(deck.train("fraud", model, "train", overrides))
            run_all(deck)
        clock.advance(minutes=5)
        deck.train("fraud", "fraud-forest", "train", {"fail": "out of memory"})
        run_all(deck)
        v1, v2, v3 = (deck.job(t.id).version for t in trains)
        for v in (v1, v2, v3):
            clock.advance(minutes=3)
            deck.evaluate(v, "test")
            run_all(deck)
        clock.advance(minutes=10)
        deck.approve(v1, "beats the baseline on recall")
        deck.reject(v2, "overfits: worse on the holdout")
        run_all(deck)
        clock.advance(minutes=2)
        deck.deploy(v1, "score", "0 6 * * 1-5", "Europe/Paris")
        run_all(deck)
        clock.advance(minutes=30)
        deck.predict(deck.deployments("fraud")[0].id)
        run_all(deck)
        clock.advance(minutes=1)
        deck.train("fraud", "fraud-forest", "train", {})  # stays queued: no engine in snapshots
        _normalise(deck)
        deck.close()
    return home


@contextlib.contextmanager
def fixed_ids_and_actor(new_id: Callable[[str], str], who: str) -> Iterator[None]:
    """Ids from ``new_id`` and ``who`` as the actor, in every core module that uses them
    (found by what they hold, so moving code between modules does not break the fixture)."""
    import core.home
    import core.identity

    originals = {core.home.new_id: new_id, core.identity.os_login: lambda: who}
    with contextlib.ExitStack() as stack:
        for name, module in list(sys.modules.items()):
            if name != "core" and not name.startswith("core."):
                continue
            for attr, value in list(vars(module).items()):
                if callable(value) and value in originals:
                    stack.enter_context(mock.patch.object(module, attr, originals[value]))
        yield


def _normalise(deck: Deck) -> None:
    """Process ids and host names differ between runs: give them fixed values."""
    with deck.writer() as s:
        for job in s.exec(select(Job)):
            job.pid = 4242 if job.pid else None
            job.host = "build-host" if job.host else None
            s.add(job)
        for event in s.exec(select(JobEvent)):
            event.message = re.sub(r"pid \d+", "pid 4242", event.message)
            event.message = re.sub(r" on \S+ \(", " on build-host (", event.message)
            details = dict(event.details)
            for key in ("pid", "pgid"):
                if key in details:
                    details[key] = 4242
            for key in ("host", "engine"):
                if key in details:
                    details[key] = "build-host"
            if "duration" in details:
                details["duration"] = 0.5
            if "python" in details:  # the checkout's own venv: differs between clones
                details["python"] = "/usr/bin/python3"
            event.details = details
            s.add(event)
        s.commit()


def deck_at_now(home: Path) -> Deck:
    return Deck(home=home, clock=FakeClock(NOW))
