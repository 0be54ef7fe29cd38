"""A job queued by another process wakes an idle engine at once, not at its next poll."""

from __future__ import annotations

import time
from pathlib import Path

from core.engine import Engine
from core.service import Deck


def test_a_job_queued_by_another_process_starts_without_waiting_for_the_poll(
    deck: Deck, project: str, cli
) -> None:
    engine = Engine(deck, workers=1, poll=60.0)  # a poll this slow would outlast the test
    engine.start()
    try:
        deadline = time.monotonic() + 15
        while deck.serving_engine() is None:
            assert time.monotonic() < deadline, "the engine never took the lease"
            time.sleep(0.05)
        time.sleep(0.3)  # it has gone idle: asleep until a wake-up or its poll
        queued = cli("train", project, "scripted", "--dataset", "train", "--detach", "--json")
        assert queued.code == 0, queued.err
        job = deck.wait(queued.json()["id"], timeout=20)
        assert job.status == "completed", job
        # And a stop asked by another process reaches it the same way.
        long = cli(
            "train",
            project,
            "scripted",
            "--dataset",
            "train",
            "--set",
            "sleep=60",
            "--detach",
            "--json",
        )
        job_id = long.json()["id"]
        while "sleeping" not in deck.read_log(job_id, 0, 5):
            assert time.monotonic() < deadline + 30, "the second job never started"
            time.sleep(0.05)
        assert cli("stop", job_id).code == 0
        assert deck.wait(job_id, timeout=20).status == "cancelled"
    finally:
        engine.shutdown()


def test_a_sqlite_file_has_one_address_however_its_url_is_written() -> None:
    """The engine's --home URL quotes its path; a --db URL typed by hand may not: the same
    file, the same engine to wake (a poke to another address is lost)."""
    from core import wakeup
    from core.db import sqlite_url

    home = Path("/data/My Models")
    assert wakeup.address(sqlite_url(home / "modeldeck.db")) == wakeup.address(
        "sqlite:////data/My Models/modeldeck.db"
    )
    assert wakeup.address(sqlite_url(home / "a.db")) != wakeup.address(sqlite_url(home / "b.db"))
