"""A deployment whose schedule cannot fire (its time zone unknown here, stored before a
tzdata change) is said once in its timeline and in the engine's log; the engine backs off
instead of trying again at once, round after round, and the other schedules still fire."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import approved_version, deploy, scheduling_deck, utc, wait_for

from core.clock import FakeClock
from core.engine import Engine
from core.lifecycle import FINAL_STATUSES
from core.service import Deck

START = utc(2026, 3, 2, 12, 0, 30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fdeck(home: Path, repo: Path, clock: FakeClock) -> Iterator[Deck]:
    yield from scheduling_deck(home, repo, clock)


@pytest.mark.sqlite_only(reason="breaks the schedule with a SQLite trigger")
def test_a_schedule_that_cannot_fire_is_said_once_and_the_engine_does_not_spin(
    fdeck: Deck, home: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    setup = Engine(fdeck, workers=1, schedules=False)
    try:
        version = approved_version(fdeck, setup, "proj")
        good = deploy(fdeck, setup, version, "* * * * *")
        broken = deploy(fdeck, setup, version, "* * * * *", "Europe/Berlin")
    finally:
        setup.shutdown()
    with sqlite3.connect(home / "modeldeck.db", timeout=30) as conn:
        conn.execute("UPDATE deployment SET timezone = 'Mars/Olympus' WHERE id = ?", (broken,))
    clock.advance(60)  # both are due

    caplog.set_level(logging.WARNING, logger="modeldeck.engine")
    engine = Engine(fdeck, workers=1, poll=1.0)
    rounds = 0
    tick = engine.tick

    def counted() -> None:
        nonlocal rounds
        rounds += 1
        tick()

    engine.tick = counted  # type: ignore[method-assign]
    engine.start()
    try:
        # The point: time passes (a poll and a bit) and the rounds in it are counted; an
        # engine that spun on the broken schedule would make hundreds. Not a wait.
        time.sleep(1.2)
        seen = rounds
        fired = wait_for(
            lambda: [j for j in fdeck.jobs(deployment=good) if j.trigger == "schedule"],
            timeout=10,
            what="the good schedule to fire",
        )
        wait_for(lambda: fdeck.job(fired[0].id).status in FINAL_STATUSES, 30, "its run to end")
    finally:
        engine.shutdown()
    # A few rounds (the poll, the back-off, the fired job's start and end), not hundreds.
    assert seen <= 8, seen
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"modeldeck engine: firing schedules failed: UnfirableSchedule: the schedule of "
        f"deployment {broken} cannot fire: ModelDeckError: unknown time zone 'Mars/Olympus' "
        "(use an IANA name such as Europe/Berlin); trying again"
    ], said
    failed = [e for e in fdeck.deployment_events(broken) if e.kind == "schedule_failed"]
    assert [e.message for e in failed] == [
        "its schedule cannot fire: ModelDeckError: unknown time zone 'Mars/Olympus' "
        "(use an IANA name such as Europe/Berlin)"
    ]
    assert [j for j in fdeck.jobs(deployment=broken) if j.trigger == "schedule"] == []
    assert fdeck.job(fired[0].id).status == "completed"
