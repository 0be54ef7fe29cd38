"""`modeldeck schedule`, `deployments --json` and `predict` through the real CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from deploy_support import add_fast_stages, approved_version, deploy, wait_for

from core.engine import Engine
from core.service import Deck


@pytest.fixture
def dep(deck: Deck, project: str, repo: Path) -> str:
    add_fast_stages(repo)
    engine = Engine(deck, workers=2)
    version = approved_version(deck, engine, project)
    dep = deploy(deck, engine, version, "0 * * * *")
    engine.release_lease()
    return dep


def test_schedule_change_preview_pause_resume(cli, dep: str, deck: Deck) -> None:
    r = cli("schedule", dep, "--cron", "0 6 * * *", "--timezone", "Europe/Berlin", "--next", "3")
    assert r.code == 0, r.err
    assert "local (europe/berlin)" in r.out.lower() and "06:00 CE" in r.out and ":00 UTC" in r.out
    r = cli("schedule", dep, "--next", "3", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert (data["schedule"], data["timezone"], data["paused"]) == (
        "0 6 * * *",
        "Europe/Berlin",
        False,
    )
    preview = data["preview"]
    assert len(preview) == 3 and preview[0]["utc"] == data["next_run_at"]
    for p in preview:
        utc = datetime.fromisoformat(p["utc"].replace("Z", "+00:00"))
        assert utc.hour in (4, 5)  # 06:00 Berlin is 05:00 UTC in winter, 04:00 in summer
        # ISO 8601 on the schedule's clock, with its offset; the zone's abbreviation apart
        local = datetime.fromisoformat(p["local"])
        assert local == utc and local.strftime("%H:%M:%S") == "06:00:00"
        assert p["local"][19:] in (".000+01:00", ".000+02:00"), p
        assert p["zone"] == {"+01:00": "CET", "+02:00": "CEST"}[p["local"][-6:]]

    r = cli("schedule", dep, "--pause", "--json")
    assert r.code == 0 and r.json()["paused"] is True and r.json()["next_run_at"] is None
    kinds = [e.kind for e in deck.deployment_events(dep)]
    r = cli("schedule", dep, "--pause", "--json")  # paused already: nothing more recorded
    assert r.code == 0 and r.json()["paused"] is True
    assert [e.kind for e in deck.deployment_events(dep)] == kinds
    r = cli("schedule", dep, "--resume", "--json")
    assert r.code == 0 and r.json()["paused"] is False and r.json()["next_run_at"]

    [view] = [d for d in cli("deployments", "proj", "--json").json() if d["id"] == dep]
    for key in ("schedule", "timezone", "paused", "next_run_at", "last_run"):
        assert key in view
    assert view["next_run_at"] == r.json()["next_run_at"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 0 31 2 *"], "never fire"),
        (["--cron", "* * * *"], "5 fields"),
        (
            ["--cron", "0 22-2 * * *"],
            "runs backwards (cron ranges do not wrap around: write 22-23,0-2)",
        ),
        (["--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--pause", "--resume"], "not allowed"),
        (["--next", "0"], "--next"),
        (["--next", "3", "--from", "yesterday"], "--from 'yesterday' is not a time"),
        (["--next", "3", "--from", "\udcff\x1b"], "--from '\\xff^[' is not a time"),
        (["--from", "2026-10-25T00:00"], "--from goes with --next"),
        # the calendar's ends: Python's years are 1 to 9999
        (["--next", "3", "--from", "9999-12-31T23:59"], "outside the years 1 to 9999"),
        (["--next", "3", "--from", "0001-01-01T00:00+01:00"], "outside the years 1 to 9999"),
        (["--cron", "0 7 * * *", "--next", "3", "--from", "9999-12-31T23:59"], "1 to 9999"),
        (["--timezone", "Asia/Tokyo", "--next", "1", "--from", "0001-01-01T00:30"], "1 to 9999"),
        (["--cron", "61 * * * *", "--next", "3"], "invalid cron expression"),
        # a bad preview changes nothing, not even the schedule given with it
        (["--cron", "0 7 * * *", "--next", "0"], "--next"),
        (["--cron", "0 7 * * *", "--next", "3", "--from", "07:00 tomorrow"], "is not a time"),
    ],
)
def test_schedule_refusals(cli, dep: str, deck: Deck, args: list[str], message: str) -> None:
    r = cli("schedule", dep, *args)
    assert r.code == 2
    assert r.err.startswith("error:") and message in r.err
    assert deck.deployment(dep).schedule == "0 * * * *"


def test_predict_is_started_within_a_second_by_a_running_engine(cli, dep: str, deck) -> None:
    engine = Engine(deck, workers=2)
    engine.start()
    try:
        wait_for(lambda: engine.holds_lease, what="the engine to take the lease")
        r = cli("predict", dep, "--detach", "--json")
        assert r.code == 0, r.err
        job = r.json()
        assert (job["trigger"], job["type"]) == ("manual", "batch_predict")
        # As it is when read back after the commit: on PostgreSQL the engine, woken by the
        # commit's notification, may have claimed it already.
        assert job["status"] in ("queued", "running")
        started = wait_for(
            lambda: next((e for e in deck.events(job["id"]) if e.kind == "started"), None),
            timeout=10,
            what="the run to start",
        )
        created = deck.events(job["id"])[0].at
        assert (started.at - created).total_seconds() < 1.0
        final = wait_for(lambda: deck.job(job["id"]).finished_at and deck.job(job["id"]))
        assert final.status == "completed"
        assert deck.deployment(dep).last_run["job"] == job["id"]
    finally:
        engine.shutdown()


def test_preview_from_a_time_shows_both_repeated_hours_of_the_autumn_change(cli, dep: str) -> None:
    # Berlin falls back on 2026-10-25: 02:00-03:00 happens in CEST and again in CET. A
    # half-hourly schedule runs every 30 minutes of real time through it.
    start = datetime(2026, 10, 25, 1, 0, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    expected = [start + timedelta(minutes=30 * i) for i in range(6)]
    set_up = ["--cron", "*/30 * * * *", "--timezone", "Europe/Berlin"]
    for given in ("2026-10-25T01:00", "2026-10-24T23:00Z", "2026-10-25 01:00+02:00"):
        r = cli("schedule", dep, *set_up, "--from", given, "--next", "6", "--json")
        assert r.code == 0, r.err
        preview = r.json()["preview"]
        got = [datetime.fromisoformat(p["utc"].replace("Z", "+00:00")) for p in preview]
        assert got == expected, given
        assert [(p["local"][11:], p["zone"]) for p in preview] == [
            ("01:00:00.000+02:00", "CEST"),
            ("01:30:00.000+02:00", "CEST"),
            ("02:00:00.000+02:00", "CEST"),
            ("02:30:00.000+02:00", "CEST"),
            ("02:00:00.000+01:00", "CET"),
            ("02:30:00.000+01:00", "CET"),
        ]
    r = cli("schedule", dep, "--from", "2026-10-25T01:00", "--next", "6")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[-2].split("  ")[0] == "2026-10-25 02:00 CET"
    assert lines[-1].split("  ")[0] == "2026-10-25 02:30 CET"
    assert lines[-1].endswith("2026-10-25 01:30 UTC")
