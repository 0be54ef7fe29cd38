"""Cron maths on a fixed clock: strict validation, fire times in the schedule's own zone."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from core import schedule as cron
from core.errors import ModelDeckError

NY = "America/New_York"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 31 2 *",  # 31 February
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "61 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "* * * *",  # four fields
        "* * * * * *",  # six: seconds are not ours
        "every day",
        "",
        "0 22-2 * * *",  # croniter wraps a range that runs backwards; cron refuses it
        "0 0 * * fri-mon",
        "*/61 * * * *",  # longer than the field: only ever minute 0
        "0-59/60 * * * *",
        "0 0 * * */7",  # Sunday is 0 and 7: only Sundays
        "0 25-2 * * *",  # out of range, not merely backwards
        "R * * * *",  # croniter's random value: other times at each computation
        "0 r * * *",
        "H * * * *",  # croniter's hashed value
    ],
)
def test_rejects_what_is_malformed_or_can_never_fire(expr: str) -> None:
    with pytest.raises(ModelDeckError):
        cron.validate_cron(expr)


@pytest.mark.parametrize(
    ("expr", "normal"),
    [
        ("0 0 29 2 *", "0 0 29 2 *"),  # leap days do come
        ("  */5   *  * * 1-5 ", "*/5 * * * 1-5"),
        ("@daily", "0 0 * * *"),
        ("0 12 * * MON", "0 12 * * MON"),
    ],
)
def test_accepts_and_normalises(expr: str, normal: str) -> None:
    assert cron.validate_cron(expr) == normal


@pytest.mark.parametrize(
    ("expr", "split"),
    [
        ("5-1 * * * *", "5-59,0-1"),
        ("0 0 * * fri-mon", "fri-sat,sun-mon"),
        ("0 0 * Dec-feb *", "dec,jan-feb"),
        ("0 0 31-1 * *", "31,1"),
    ],
)
def test_a_range_that_runs_backwards_is_refused_with_its_split(expr: str, split: str) -> None:
    with pytest.raises(ModelDeckError, match="runs backwards") as refused:
        cron.validate_cron(expr)
    assert f"write {split})" in str(refused.value)


@pytest.mark.parametrize("expr", ["0 0 * * 5-7", "0 0 * * 5-0", "0 0 * * fri-sun", "0 0 * * 7-1"])
def test_sunday_is_both_ends_of_the_week(expr: str) -> None:
    """Sunday is 0 and 7: a range to or from it is no wrap, and fires as croniter says."""
    assert cron.validate_cron(expr) == expr
    fires = cron.preview(expr, "UTC", T0, 7)
    expected = {6, 0} if expr.endswith("7-1") else {4, 5, 6}  # Mon 0 .. Sun 6
    assert {f.weekday() for f in fires} == expected


@pytest.mark.parametrize(
    ("expr", "normal", "minutes", "weekdays"),
    [
        ("5-5 * * * *", "5 * * * *", {5}, None),
        ("5-5/2 * * * *", "5 * * * *", {5}, None),
        ("0 0 * * 3-3", "0 0 * * 3", {0}, {2}),  # Wednesdays (Python: Mon 0)
        ("0 0 * * sun-sun", "0 0 * * sun", {0}, {6}),
        ("0 0 * * 7-0", "0 0 * * 7", {0}, {6}),
    ],
)
def test_a_one_value_range_fires_at_that_value_only(
    expr: str, normal: str, minutes: set[int], weekdays: set[int] | None
) -> None:
    """croniter reads ``5-5`` as ``*`` (every minute, every day); cron, and modeldeck, as 5.
    A schedule stored before the rewrite fires as cron reads it too."""
    assert cron.validate_cron(expr) == normal
    for stored in (normal, expr):
        fires = cron.preview(stored, "UTC", T0, 12)
        assert {f.minute for f in fires} == minutes, stored
        if weekdays is not None:
            assert {f.weekday() for f in fires} == weekdays, stored
        else:
            assert len({f.hour for f in fires}) == 12, stored  # hourly, not every minute


def test_unknown_zone_is_a_user_error() -> None:
    with pytest.raises(ModelDeckError, match="unknown time zone"):
        cron.zone("Mars/Olympus_Mons")
    assert cron.zone(None) == ZoneInfo("UTC")


@pytest.mark.parametrize("expr", ["*/7 * * * *", "0 9 * * 1-5", "15 3 1,15 * *", "0 0 29 2 *"])
def test_utc_fire_times_match_croniter(expr: str) -> None:
    ours = cron.preview(expr, "UTC", T0, 30)
    it = croniter(expr, T0)
    theirs = [it.get_next(datetime) for _ in range(30)]
    assert ours == theirs
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in ours)


def test_fire_times_are_computed_in_the_schedules_zone() -> None:
    # 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer.
    winter = cron.next_fire("0 6 * * *", "Europe/Berlin", datetime(2026, 1, 10, tzinfo=UTC))
    summer = cron.next_fire("0 6 * * *", "Europe/Berlin", datetime(2026, 7, 10, tzinfo=UTC))
    assert winter == datetime(2026, 1, 10, 5, tzinfo=UTC)
    assert summer == datetime(2026, 7, 10, 4, tzinfo=UTC)


def test_autumn_change_daily_job_fires_once() -> None:
    # New York falls back on 2026-11-01: 01:30 happens at 05:30 UTC and again at 06:30 UTC.
    fires = cron.preview("30 1 * * *", NY, datetime(2026, 10, 30, tzinfo=UTC), 4)
    assert fires == [
        datetime(2026, 10, 30, 5, 30, tzinfo=UTC),
        datetime(2026, 10, 31, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # the first 01:30 (EDT) only
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]
    # Asked from inside the repeated hour, the second 01:30 does not count as a new fire.
    after_first = cron.next_fire("30 1 * * *", NY, datetime(2026, 11, 1, 5, 45, tzinfo=UTC))
    assert after_first == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    # Every local day of the week around the change fires exactly once.
    week = cron.fires_between(
        "30 1 * * *", NY, datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC), 100
    )[0]
    days = [t.astimezone(ZoneInfo(NY)).date() for t in week]
    assert len(days) == len(set(days)) == 8


def test_spring_change_missing_time_runs_at_first_valid_instant() -> None:
    # New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
    fires = cron.preview("30 2 * * *", NY, datetime(2026, 3, 7, tzinfo=UTC), 3)
    assert fires == [
        datetime(2026, 3, 7, 7, 30, tzinfo=UTC),  # 02:30 EST
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 EDT
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),  # 02:30 EDT
    ]
    local = fires[1].astimezone(ZoneInfo(NY))
    assert (local.hour, local.minute) == (3, 0)


def test_spring_change_in_europe_too() -> None:
    # Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    fire = cron.next_fire("15 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert fire == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_fire_times_strictly_increase_across_a_year_of_zone_changes() -> None:
    for tz in (NY, "Europe/Berlin", "Australia/Lord_Howe", "UTC"):
        fires = cron.preview("*/30 * * * *", tz, T0, 24 * 2 * 366)
        assert all(a < b for a, b in itertools.pairwise(fires)), tz


def test_fires_between_counts_beyond_its_list() -> None:
    found, count = cron.fires_between("* * * * *", "UTC", T0, T0 + timedelta(days=2), limit=10)
    assert len(found) == 10 and count == 2 * 24 * 60
    assert found[0] == T0 + timedelta(minutes=1)


def test_zones_are_the_same_when_their_clocks_are() -> None:
    """The same offsets from the same moments, and the same rule after: whatever the names
    of their times (GMT and UTC; a link's two names). Zones that agree only today are not."""
    from core.schedule import _zone_data, same_zone

    for a, b in (
        ("UTC", "GMT"),
        ("UTC", "Etc/GMT"),
        ("UTC", "Zulu"),
        (None, "Etc/UTC"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("America/New_York", "US/Eastern"),
        ("UTC", "Etc/GMT-0"),
        ("Asia/Tokyo", "Japan"),
        # a transition that changes nothing, and no rule after it (the last offset goes on)
        *([("UTC", "right/UTC")] if _zone_data("right/UTC") else []),
    ):
        assert same_zone(a, b), (a, b)
    for a, b in (
        ("Europe/Berlin", "Europe/Paris"),  # the same rules today, not before 1980
        ("UTC", "Europe/London"),
        ("UTC", "Etc/GMT+1"),
        ("Europe/Berlin", "CET"),
        ("UTC", "Mars/Olympus"),  # unknown: never the same
        ("Etc/GMT-9", "Asia/Tokyo"),  # UTC+9 today; Tokyo had summer time once
        ("UTC", "Atlantic/Reykjavik"),
    ):
        assert not same_zone(a, b), (a, b)


def test_a_question_mark_is_any_day() -> None:
    """``?`` (day or weekday) is ``*``: a schedule written with it is the same schedule."""
    assert cron.same_schedule("0 0 ? * *", "0 0 * * *")
    assert cron.same_schedule("0 6 * * ?", "0 6 * * *")
    assert not cron.same_schedule("0 6 ? * *", "0 7 * * *")
