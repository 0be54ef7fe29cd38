"""Fire times across daylight saving changes, against times computed here by a plain clock.

The expected times come from walking real time minute by minute, converting each minute to
the zone's wall clock with zoneinfo, with Debian cron's rules (as cronsim follows them):
- a schedule whose minute or hour field starts with ``*`` fires at every real minute whose
  wall time matches: both occurrences of a repeated hour, nothing in a skipped one;
- any other schedule fires once per matching wall time, as soon as the wall clock has
  reached it: the first occurrence of a repeated time, and the jump for a skipped one.
No croniter here: the fields are matched by the small matcher below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from core import schedule as cron

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana"]
EXPRESSIONS = [
    "0 * * * *",
    "*/15 * * * *",
    "*/5 * * * *",
    "*/20 1 * * *",  # a wildcard minute: real time too (Debian cron's rule)
    "0 */2 * * *",
    "30 2 * * *",
    "30 1 * * *",
    "15 2 * * *",
    "45 1,2 * * *",
    "0 0 * * *",  # Havana changes its clocks at midnight
    "10 0-2 * * *",
]
MINUTE = timedelta(minutes=1)
SPAN = timedelta(hours=26)
HISTORY = timedelta(hours=3)  # the wall clock's high-water mark needs what came before
STARTS = [-SPAN, -timedelta(minutes=45), -timedelta(minutes=20), timedelta(minutes=10)]
STARTS += [timedelta(minutes=20), timedelta(minutes=50)]


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(x) for x in base.split("-"))
        else:
            first = last = int(base)
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _matcher(expr: str):
    minute, hour, dom, month, dow = expr.split()
    assert (dom, month, dow) == ("*", "*", "*"), "the matcher knows minutes and hours only"
    minutes, hours = _field(minute, 0, 59), _field(hour, 0, 23)
    return lambda wall: wall.minute in minutes and wall.hour in hours


@cache
def _transitions(zone: str) -> list[datetime]:
    """The instants (UTC, on the minute) at which the zone's offset changes in 2026-2027."""
    tz = ZoneInfo(zone)
    found = []
    t = datetime(2026, 1, 1, tzinfo=UTC)
    before = t.astimezone(tz).utcoffset()
    while t < datetime(2028, 1, 1, tzinfo=UTC):
        t += timedelta(hours=1)
        offset = t.astimezone(tz).utcoffset()
        if offset != before:
            exact = t
            while (exact - MINUTE).astimezone(tz).utcoffset() == offset:
                exact -= MINUTE
            found.append(exact)
            before = offset
    assert len(found) == 4, (zone, found)
    return found


@cache
def _clock(zone: str, change: datetime) -> list[tuple[datetime, datetime]]:
    """(UTC minute, naive wall time) for every minute around ``change``."""
    tz = ZoneInfo(zone)
    t, end = change - SPAN - HISTORY, change + SPAN
    out = []
    while t <= end:
        out.append((t, t.astimezone(tz).replace(tzinfo=None)))
        t += MINUTE
    return out


def _expected(expr: str, zone: str, change: datetime) -> list[datetime]:
    matches = _matcher(expr)
    clock = _clock(zone, change)
    if expr.split()[0].startswith("*") or expr.split()[1].startswith("*"):
        return [t for t, wall in clock if matches(wall)]
    fires = []
    high = clock[0][1]  # the latest wall time seen so far
    for t, wall in clock[1:]:
        if wall > high:
            reached = high + MINUTE
            while reached <= wall and not matches(reached):
                reached += MINUTE
            if reached <= wall:  # some matching wall time was reached at this instant
                fires.append(t)
            high = wall
    return fires


@pytest.mark.parametrize("zone", ZONES)
def test_fire_times_across_the_2026_and_2027_changes(zone: str) -> None:
    for change in _transitions(zone):
        for expr in EXPRESSIONS:
            expected = _expected(expr, zone, change)
            for offset in STARTS:
                start, end = change + offset, change + SPAN
                want = [t for t in expected if start < t <= end]
                got, count = cron.fires_between(expr, zone, start, end, limit=10_000)
                assert got == want, (zone, change, expr, offset)
                assert count == len(want)


def test_autumn_wildcard_schedule_keeps_running_through_the_repeated_hour() -> None:
    # Berlin falls back on 2026-10-25 at 01:00 UTC: 02:00-03:00 happens twice. `*/5` runs
    # every five minutes of real time, 24 times in those two hours, not 12.
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    got, _ = cron.fires_between(
        "*/5 * * * *", "Europe/Berlin", start, start + timedelta(hours=2), 100
    )
    assert got == [start + timedelta(minutes=5 * i) for i in range(1, 25)]
    # A fixed hour still runs once: at 02:30 CEST.
    [once] = cron.fires_between(
        "30 2 * * *", "Europe/Berlin", start, start + timedelta(hours=3), 9
    )[0]
    assert once == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_which_schedules_follow_real_time() -> None:
    real = ["* * * * *", "0 * * * *", "*/5 * * * *", "5 */2 * * *", "*/10 3 * * *", "@hourly"]
    wall = ["30 2 * * *", "0 9 * * 1-5", "0 0-23 * * *", "@daily", "15 3 1,15 * *"]
    assert all(cron.follows_real_time(e) for e in real)
    assert not any(cron.follows_real_time(e) for e in wall)
