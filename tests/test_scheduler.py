"""Schedules through the engine on a fake clock: fires, overlaps, missed runs, DST, pause."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from deploy_support import approved_version, deploy, scheduling_deck, utc, wait_final, wait_for

from core.clock import FakeClock
from core.engine import Engine
from core.errors import ModelDeckError
from core.models import Deployment
from core.service import Deck

START = utc(2026, 3, 2, 12, 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fdeck(home: Path, repo: Path, clock: FakeClock) -> Iterator[Deck]:
    yield from scheduling_deck(home, repo, clock)


@pytest.fixture
def engine(fdeck: Deck, new_engine: Callable[..., Engine]) -> Engine:
    return new_engine(fdeck, workers=2, poll=0.05)


@pytest.fixture
def version(fdeck: Deck, engine: Engine) -> str:
    return approved_version(fdeck, engine, "proj")


def scheduled_jobs(deck: Deck, dep: str) -> list:
    return [
        j for j in deck.jobs(deployment=dep, job_type="batch_predict") if j.trigger == "schedule"
    ]


def dep_events(deck: Deck, dep: str, kind: str) -> list:
    return [e for e in deck.deployment_events(dep) if e.kind == kind]


def test_schedule_fires_at_its_time_and_advances(fdeck, engine, version, clock) -> None:
    dep = deploy(fdeck, engine, version, "0 * * * *")
    assert fdeck.deployment(dep).next_run_at == utc(2026, 3, 2, 13, 0)
    clock.set(utc(2026, 3, 2, 12, 59, 59))
    engine.tick()
    assert scheduled_jobs(fdeck, dep) == []
    clock.set(utc(2026, 3, 2, 13, 0, 0, 300_000))
    engine.tick()
    [job] = scheduled_jobs(fdeck, dep)
    assert job.trigger == "schedule" and job.actor == "scheduler"
    assert job.params["fire_time"] == "2026-03-02T13:00:00.000Z"
    created = fdeck.events(job.id)[0]
    assert created.kind == "created" and created.details["fire_time"] == "2026-03-02T13:00:00.000Z"
    assert created.details["lateness"] == pytest.approx(0.3)
    assert engine.run_until_idle(30)
    assert fdeck.job(job.id).status == "completed"
    view = fdeck.deployment(dep)
    assert view.next_run_at == utc(2026, 3, 2, 14, 0)
    assert view.last_run["job"] == job.id and view.last_run["status"] == "completed"
    assert len(dep_events(fdeck, dep, "schedule_fired")) == 1
    engine.tick()  # the same fire time never fires twice
    assert len(scheduled_jobs(fdeck, dep)) == 1


def test_fire_during_a_running_batch_is_skipped_with_an_event(
    fdeck, engine, version, clock, repo
) -> None:
    dep = deploy(fdeck, engine, version, "*/10 * * * *")
    hold = repo / "data" / "hold"  # next to the scored dataset
    hold.touch()
    clock.set(utc(2026, 3, 2, 12, 10))
    engine.tick()
    [job] = scheduled_jobs(fdeck, dep)
    wait_for(lambda: (engine.tick(), fdeck.job(job.id).status == "running")[1], what="running")
    clock.set(utc(2026, 3, 2, 12, 20, 1))
    engine.tick()
    assert [j.id for j in scheduled_jobs(fdeck, dep)] == [job.id]
    [skip] = dep_events(fdeck, dep, "schedule_skipped")
    assert skip.details["fire_time"] == "2026-03-02T12:20:00.000Z"
    assert skip.details["running_job"] == job.id
    assert "skipped" in skip.message and job.id in skip.message
    assert any(e.kind == "schedule_skipped" for e in fdeck.events(job.id))
    # A manual run now must wait its turn too: one batch of a deployment at a time.
    manual = fdeck.predict(dep)
    for _ in range(5):
        engine.tick()
    assert fdeck.job(manual.id).status == "queued"
    hold.unlink()
    assert engine.run_until_idle(30)
    assert fdeck.job(job.id).status == "completed"
    assert fdeck.job(manual.id).status == "completed"
    assert fdeck.deployment(dep).next_run_at == utc(2026, 3, 2, 12, 30)
    clock.set(utc(2026, 3, 2, 12, 30))
    engine.tick()
    assert len(scheduled_jobs(fdeck, dep)) == 2


def test_a_run_going_when_its_deployment_is_retired_completes(
    fdeck, engine, version, clock, repo
) -> None:
    """Retiring a deployment while its batch prediction runs: the run ends as it went
    (completed, its predictions recorded), not failed as if something broke."""
    dep = deploy(fdeck, engine, version)
    hold = repo / "data" / "hold"
    hold.touch()
    run = fdeck.predict(dep)
    wait_for(lambda: (engine.tick(), fdeck.job(run.id).status == "running")[1], what="running")
    clock.set(utc(2026, 3, 2, 12, 30))  # retired after the run started
    retire = fdeck.retire(dep, "replaced")
    wait_final(fdeck, retire.id, engine=engine)
    assert fdeck.deployment(dep).status == "retired"
    hold.unlink()
    final = wait_final(fdeck, run.id, engine=engine)
    assert final.status == "completed" and final.error is None, final
    assert any(e.kind == "predictions_written" for e in fdeck.events(run.id))
    # A run asked for after the retirement is refused.
    with pytest.raises(ModelDeckError, match="retired"):
        fdeck.predict(dep)


def test_missed_fires_within_grace_coalesce_into_one_run(
    fdeck, engine, version, clock, new_engine
) -> None:
    dep = deploy(fdeck, engine, version, "*/10 * * * *")
    # No engine ran from 12:00 to 12:55: five fire times passed, all within the hour's grace.
    clock.set(utc(2026, 3, 2, 12, 55))
    fresh = new_engine(fdeck, workers=2, poll=0.05)
    fresh.tick()
    [job] = scheduled_jobs(fdeck, dep)
    created = fdeck.events(job.id)[0]
    assert created.details["fire_time"] == "2026-03-02T12:50:00.000Z"
    assert created.details["coalesced"] == 4
    assert dep_events(fdeck, dep, "schedule_missed") == []
    assert fdeck.deployment(dep).next_run_at == utc(2026, 3, 2, 13, 0)
    assert fresh.run_until_idle(30)


def test_missed_fires_beyond_grace_are_recorded_not_run(
    fdeck, engine, version, clock, new_engine
) -> None:
    dep = deploy(fdeck, engine, version, "0 * * * *")
    clock.set(utc(2026, 3, 2, 18, 30))  # fires at 13..18 passed; only 18:00 is within 1 h
    new_engine(fdeck, workers=2).tick()
    [job] = scheduled_jobs(fdeck, dep)
    assert job.params["fire_time"] == "2026-03-02T18:00:00.000Z"
    [missed] = dep_events(fdeck, dep, "schedule_missed")
    assert missed.details["count"] == 5
    assert missed.details["first"] == "2026-03-02T13:00:00.000Z"
    assert missed.details["last"] == "2026-03-02T17:00:00.000Z"
    assert fdeck.deployment(dep).next_run_at == utc(2026, 3, 2, 19, 0)


def test_grace_is_per_deployment_and_a_long_outage_never_floods(
    fdeck, engine, version, clock, new_engine
) -> None:
    minutely = deploy(fdeck, engine, version, "* * * * *")
    hourly = deploy(fdeck, engine, version, "0 * * * *")
    with fdeck.writer() as s:
        d = s.get(Deployment, hourly)
        d.grace_seconds = 60
        s.add(d)
        s.commit()
    clock.set(utc(2026, 3, 12, 12, 30))  # ten days without an engine: > 10,000 fires
    new_engine(fdeck, workers=2).tick()
    [run] = scheduled_jobs(fdeck, minutely)  # one run for the last hour's fires
    assert run.params["fire_time"] == "2026-03-12T12:30:00.000Z"
    assert fdeck.events(run.id)[0].details["coalesced"] == 60
    [m] = dep_events(fdeck, minutely, "schedule_missed")
    assert m.details["count"] == 10 * 24 * 60 + 30 - 61  # 11:30..12:30 inclusive are within
    assert len(m.details["fire_times"]) <= 20  # the event stays small
    # The hourly one's last fire (12:00) is 30 min old: beyond its own 60 s grace.
    assert scheduled_jobs(fdeck, hourly) == []
    [h] = dep_events(fdeck, hourly, "schedule_missed")
    assert h.details["count"] == 10 * 24
    assert fdeck.count_jobs(job_type="batch_predict") == 1


def _step_through(engine: Engine, clock: FakeClock, until, step: timedelta) -> None:
    while clock.now() < until:
        clock.advance(step.total_seconds())
        engine.tick()
        assert engine.run_until_idle(30)


def test_autumn_change_through_the_engine_fires_once(fdeck, engine, version, clock) -> None:
    clock.set(utc(2026, 10, 31, 12, 0))
    dep = deploy(fdeck, engine, version, "30 1 * * *", "America/New_York")
    _step_through(engine, clock, utc(2026, 11, 2, 12, 0), timedelta(minutes=15))
    fires = sorted(j.params["fire_time"] for j in scheduled_jobs(fdeck, dep))
    assert fires == [
        "2026-11-01T05:30:00.000Z",  # 01:30 EDT; 01:30 EST an hour later does not fire
        "2026-11-02T06:30:00.000Z",
    ]
    assert dep_events(fdeck, dep, "schedule_skipped") == []


def test_spring_change_through_the_engine_runs_at_the_jump(fdeck, engine, version, clock) -> None:
    clock.set(utc(2026, 3, 7, 12, 0))
    dep = deploy(fdeck, engine, version, "30 2 * * *", "America/New_York")
    assert fdeck.deployment(dep).next_run_at == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    _step_through(engine, clock, utc(2026, 3, 9, 12, 0), timedelta(minutes=15))
    fires = sorted(j.params["fire_time"] for j in scheduled_jobs(fdeck, dep))
    assert fires == ["2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"]


def test_pause_and_resume(fdeck, engine, version, clock) -> None:
    dep = deploy(fdeck, engine, version, "0 * * * *")
    view = fdeck.set_schedule(dep, paused=True)
    assert view.paused and view.next_run_at is None
    clock.set(utc(2026, 3, 2, 15, 10))
    engine.tick()
    assert scheduled_jobs(fdeck, dep) == []
    assert dep_events(fdeck, dep, "schedule_missed") == []  # paused is not missed
    view = fdeck.set_schedule(dep, paused=False)
    assert not view.paused and view.next_run_at == utc(2026, 3, 2, 16, 0)
    engine.tick()
    assert scheduled_jobs(fdeck, dep) == []  # no catch-up for the paused hours
    clock.set(utc(2026, 3, 2, 16, 0))
    engine.tick()
    assert len(scheduled_jobs(fdeck, dep)) == 1
    kinds = [e.kind for e in fdeck.deployment_events(dep)]
    assert "schedule_paused" in kinds and "schedule_resumed" in kinds


def test_changing_the_schedule_recomputes_the_next_run(fdeck, engine, version, clock) -> None:
    dep = deploy(fdeck, engine, version, "0 * * * *")
    view = fdeck.set_schedule(dep, "0 6 * * *", "Europe/Berlin")
    assert (view.schedule, view.timezone) == ("0 6 * * *", "Europe/Berlin")
    assert view.next_run_at == utc(2026, 3, 3, 5, 0)


def test_retired_deployment_stops_firing(fdeck, engine, version, clock) -> None:
    dep = deploy(fdeck, engine, version, "0 * * * *")
    fdeck.retire(dep)
    assert engine.run_until_idle(30)
    clock.set(utc(2026, 3, 2, 14, 0))
    engine.tick()
    assert scheduled_jobs(fdeck, dep) == []
    assert fdeck.deployment(dep).next_run_at is None


def test_predict_queues_a_manual_run(fdeck, engine, version) -> None:
    dep = deploy(fdeck, engine, version)
    job = fdeck.predict(dep)
    assert (job.trigger, job.type, job.status) == ("manual", "batch_predict", "queued")
    assert engine.run_until_idle(30)
    assert fdeck.job(job.id).status == "completed"
    assert fdeck.deployment(dep).last_run["trigger"] == "manual"
