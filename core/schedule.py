"""Cron maths: strict validation and fire times computed in the schedule's own time zone.

Daylight saving changes follow Debian cron's rules (as cronsim does):
- a schedule whose minute or hour field starts with ``*`` (``0 * * * *``, ``*/15 * * * *``,
  ``*/5 1 * * *``) runs in real time: a wall time that happens twice (autumn) fires at both
  occurrences, and one that does not exist (spring) does not fire;
- any other schedule (a fixed minute and hour, such as ``30 2 * * *``) is walked on the
  zone's wall clock: a repeated wall time fires once, at its first occurrence, and a missing
  one fires at the first valid instant after it, the moment the clocks jump.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ModelDeckError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# Files of the zone database that name no zone but the host's setting: another host (an
# engine elsewhere) would read them as another zone.
HOST_DEPENDENT = frozenset({"localtime", "posixrules"})


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name`` (default UTC), or a clear error."""
    name = name or "UTC"
    if name in HOST_DEPENDENT:
        raise ModelDeckError(
            f"time zone {name!r} is this host's setting, not a zone: use an IANA name such as "
            "Europe/Berlin"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        raise ModelDeckError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


def validate_cron(expr: str) -> str:
    """The normalised expression, or ModelDeckError when it is malformed or can never fire."""
    from croniter import croniter
    from croniter.croniter import CroniterBadCronError, CroniterBadDateError, CroniterError

    text = " ".join((expr or "").split())
    text = ALIASES.get(text.lower(), text)
    if len(text.split(" ")) != 5:
        raise ModelDeckError(
            f"invalid cron expression {expr!r}: it needs 5 fields (minute hour day month weekday)"
        )
    text = _as_cron_reads_it(text, strict=expr)
    if _RANDOM.search(text):
        raise ModelDeckError(
            f"invalid cron expression {expr!r}: R (a random value) is not cron's: the times "
            "it gives change each time they are computed"
        )
    try:
        it = croniter(text, datetime(2000, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise ModelDeckError(f"invalid cron expression {expr!r}: {_reason(exc)}") from None
    try:
        # 28 years covers every weekday/leap-year combination: what cannot fire by then never will.
        first = it.get_next(datetime)
        if first.year > 2028:
            raise CroniterBadDateError("never fires")
    except CroniterBadDateError:
        raise ModelDeckError(f"cron expression {expr!r} can never fire (no such date)") from None
    return text


# Each field's name, its smallest and largest value, and its names (in their order from the
# smallest value on).
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("weekday", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")),
)
_RANGE = re.compile(r"^(\w+)-(\w+)(?:/(\d+))?$")
_STEP = re.compile(r"^(?:\*|\w+)/(\d+)$")


def _as_cron_reads_it(text: str, strict: str | None = None) -> str:
    """``text`` (five fields) with each one-value range written as its value: croniter
    reads ``5-5`` as ``*`` (and ``5-5/2`` as ``*/2``), cron as ``5``. With ``strict`` (the
    expression as given, for the message), also refuse what croniter accepts but cron does
    not: a range that runs backwards (``22-2``, which croniter wraps around) and a step
    longer than its field (``*/61``: the first value only)."""
    return " ".join(
        ",".join(_part(part, strict, *spec) for part in field.split(","))
        for field, spec in zip(text.split(" "), _FIELDS, strict=True)
    )


@functools.lru_cache(maxsize=256)
def _cron_text(expr: str) -> str:
    """A stored expression as croniter must be given it (see ``_as_cron_reads_it``): one
    saved before one-value ranges were rewritten fires as cron reads it too."""
    return _as_cron_reads_it(expr) if len(expr.split()) == 5 else expr


def _part(
    part: str, strict: str | None, name: str, low: int, high: int, names: tuple[str, ...]
) -> str:
    weekday = name == "weekday"
    span = 6 if weekday else high - low  # Sunday is both 0 and 7
    step = None
    found = _RANGE.match(part)
    if found is not None:
        a, b, step = found.groups()
        first, last = _value(a, low, names), _value(b, low, names)
        if first is None or last is None or not low <= min(first, last) <= max(first, last) <= high:
            return part  # not a plain range, or out of range: croniter says what is wrong
        if first == last or (weekday and (first, last) == (7, 0)):
            return a  # one value (Sunday to Sunday too)
        if weekday and last == 0:
            last = 7  # fri-sun: 5-7
        elif weekday and first == 7:
            first = 0  # 7-3: Sunday to Wednesday, as croniter reads it
        if first > last and strict is not None:
            top = high - 1 if weekday else high
            label = (lambda v: names[v - low]) if a.isalpha() else str
            split = ",".join(
                label(x) if x == y else f"{label(x)}-{label(y)}"
                for x, y in ((first, top), (low, last))
            )
            raise ModelDeckError(
                f"invalid cron expression {strict!r}: the {name} range {a}-{b} runs backwards "
                f"(cron ranges do not wrap around: write {split})"
            )
    else:
        plain = _STEP.match(part)
        step = plain.group(1) if plain is not None else None
    if step is not None and int(step) > span and strict is not None:
        raise ModelDeckError(
            f"invalid cron expression {strict!r}: the {name} step /{step} is longer than the "
            f"field ({low}-{low + span}), so it would only ever give its first value"
        )
    return part


def _value(token: str, low: int, names: tuple[str, ...]) -> int | None:
    if token.isdigit():
        return int(token)
    token = token.lower()
    return names.index(token) + low if token in names else None


def same_schedule(a: str | None, b: str | None) -> bool:
    """Whether two valid cron expressions fire at the same times (``*/1`` and ``*``, ``0-59``
    and ``*``, ``sun`` and ``0`` and ``7`` are alike); None (no schedule) is only like None."""
    if a is None or b is None:
        return a is b
    if a == b:
        return True
    if _SPECIAL.search(a) or _SPECIAL.search(b):
        return False  # nth weekday (5#1), nearest weekday (1W), last (L), hashed
    from croniter import croniter

    return bool(croniter(_cron_text(a)).expanded == croniter(_cron_text(b)).expanded)


def same_zone(a: str | None, b: str | None) -> bool:
    """Whether two time zone names (None is UTC) name one clock: the same name, or tz data
    that differ at most in what their times are called (``UTC``, ``Etc/UTC``, ``Zulu`` and
    ``GMT``; ``Asia/Calcutta`` and ``Asia/Kolkata``): the same offsets from the same moments,
    and the same rule after the last. Zones that merely agree today (Europe/Berlin,
    Europe/Paris) are not: their pasts differ, and so may their futures."""
    a, b = a or "UTC", b or "UTC"
    if a == b:
        return True
    clock = _clock(_zone_data(a))
    return clock is not None and clock == _clock(_zone_data(b))


def _clock(data: bytes | None) -> tuple[object, ...] | None:
    """What a TZif file (RFC 8536, version 2 or later) says of the clock, without names:
    each transition's moment and the offset and DST flag it starts, those before the first,
    and the POSIX rule for after the last with its zone abbreviations left out."""
    import struct

    if not data or data[:4] != b"TZif" or data[4:5] < b"2":
        return None
    try:
        # Skip the version 1 block (32-bit times), then read the 64-bit one.
        isut, isstd, leap, times, types, chars = struct.unpack(">6l", data[20:44])
        start = 44 + times * 5 + types * 6 + chars + leap * 8 + isstd + isut
        isut, isstd, leap, times, types, chars = struct.unpack(">6l", data[start + 20 : start + 44])
        at = start + 44
        moments = struct.unpack(f">{times}q", data[at : at + times * 8])
        at += times * 8
        indices = data[at : at + times]
        at += times
        kinds = [struct.unpack(">lBB", data[at + 6 * i : at + 6 * i + 6])[:2] for i in range(types)]
        at += types * 6 + chars + leap * 12 + isstd + isut
        rule = data[at:].strip(b"\n")
    except struct.error:
        return None
    first = kinds[0] if kinds else None
    # Transitions that change nothing (``right/UTC`` has one) are none.
    kept, before = [], first
    for moment, i in zip(moments, indices, strict=True):
        if kinds[i] != before:
            kept.append((moment, kinds[i]))
            before = kinds[i]
    unnamed = re.sub(rb"<[^>]*>|[A-Za-z]{3,}", b"N", rule)
    fixed = re.fullmatch(rb"N([+-]?)(\d+)(?::(\d+))?(?::(\d+))?", unnamed)
    if not unnamed or fixed:
        # No rule (the last offset goes on) or one fixed offset, without daylight saving time
        # (POSIX counts west of Greenwich): both say the clock's offset.
        if fixed:
            sign = -1 if fixed[1] != b"-" else 1
            h, m, sec = (int(x or 0) for x in fixed.groups()[1:])
            before = (sign * (h * 3600 + m * 60 + sec), 0)
        unnamed = repr(before).encode()
    return tuple(kept), first, unnamed


def _zone_data(name: str) -> bytes | None:
    """The tz data file ``ZoneInfo(name)`` loads (the system's, else the tzdata package's)."""
    try:
        zone(name)  # a known name: no path of its own to walk
    except ModelDeckError:
        return None
    import zoneinfo

    for root in zoneinfo.TZPATH:
        try:
            return (Path(root) / name).read_bytes()
        except OSError:
            continue
    try:
        from importlib import resources

        return resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    except (ImportError, OSError):
        return None


# What croniter keeps outside its expanded fields: compared as text, never as alike (``?``
# is expanded as ``*``, and ``R`` refused).
_SPECIAL = re.compile(r"#|\b[LWH]\b|\d[LW]\b|\bLW\b", re.IGNORECASE)
_RANDOM = re.compile(r"\bR\b", re.IGNORECASE)


def _reason(exc: Exception) -> str:
    msg = str(exc)
    if "out of range" in msg:
        return "a field is out of range"
    return "a field is not a valid cron value"


def _to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """Map a naive wall time in ``tz`` to UTC: first occurrence, or the jump after a gap."""
    first = wall.replace(tzinfo=tz, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) == wall:
        return as_utc
    # In a gap: fold=0 and fold=1 give instants on either side of the jump; find it.
    lo, hi = sorted((as_utc, wall.replace(tzinfo=tz, fold=1).astimezone(UTC)))
    off = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == off:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def follows_real_time(expr: str) -> bool:
    """Whether a schedule runs in real time across clock changes: its minute or hour field
    starts with ``*`` (Debian cron's "wildcard" jobs); see the module's docstring."""
    fields = ALIASES.get(expr.strip().lower(), expr).split()
    return len(fields) >= 2 and (fields[0].startswith("*") or fields[1].startswith("*"))


def _occurrences(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """The instants (aware UTC, in order) at which the naive ``wall`` time happens in ``tz``:
    one, two in a repeated hour, none in a gap."""
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]  # the usual case: no change of offset near here
    found = set()
    for local in (first, second):
        t = local.astimezone(UTC)
        if t.astimezone(tz).replace(tzinfo=None) == wall:
            found.add(t)
    return sorted(found)


def fire_times(expr: str, tz_name: str | None, after: datetime) -> Iterator[datetime]:
    """Fire times (aware UTC) strictly after ``after``, in order, without end."""
    from croniter import croniter

    tz = zone(tz_name)
    after = after.astimezone(UTC)
    if follows_real_time(expr):
        yield from _real_time_fires(expr, tz, after)
        return
    wall = after.astimezone(tz).replace(tzinfo=None)
    # Start at the wall time of ``after``: an earlier wall time maps to an earlier instant
    # (first occurrence, or the jump after a gap), so nothing later is missed, and a minutely
    # schedule does not walk through two hours of candidates on every call.
    it = croniter(_cron_text(expr), wall - timedelta(seconds=1))
    last = after
    while True:
        candidate = _to_utc(it.get_next(datetime), tz)
        if candidate > last:
            last = candidate
            yield candidate


def _real_time_fires(expr: str, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Every instant after ``after`` whose wall time in ``tz`` matches ``expr``.

    The wall clock is walked with croniter; a matching wall time in a repeated stretch has two
    instants, so the candidates of that whole stretch are gathered and put in real-time order
    (all first occurrences, then all second ones) before any is given out.
    """
    from croniter import croniter

    wall = after.astimezone(tz).replace(tzinfo=None)
    here = _occurrences(wall, tz)
    # Inside a repeated stretch, earlier wall times still have a second occurrence to come.
    start = wall - (here[-1] - here[0])
    it = croniter(_cron_text(expr), start - timedelta(seconds=1))
    pending: datetime | None = None
    last = after
    while True:
        candidate = pending or it.get_next(datetime)
        pending = None
        instants = _occurrences(candidate, tz)
        if len(instants) == 2:
            # The stretch's wall times end before candidate + its length (the offset change).
            end = candidate + (instants[1] - instants[0])
            while True:
                nxt = it.get_next(datetime)
                if nxt >= end:
                    pending = nxt
                    break
                instants.extend(_occurrences(nxt, tz))
            instants.sort()
        for t in instants:
            if t > last:
                last = t
                yield t


def next_fire(expr: str, tz_name: str | None, after: datetime) -> datetime:
    return next(fire_times(expr, tz_name, after))


def preview(expr: str, tz_name: str | None, after: datetime, n: int) -> list[datetime]:
    gen = fire_times(expr, tz_name, after)
    return [next(gen) for _ in range(n)]


def fires_between(
    expr: str, tz_name: str | None, after: datetime, until: datetime, limit: int
) -> tuple[list[datetime], int]:
    """Fire times in (after, until]: the first ``limit`` of them and how many there are in all.

    Counting stops at 1,000,000 so that a minutely schedule missed for years stays cheap.
    """
    found, count, _ = due_fires(expr, tz_name, after, until, limit)
    return found, count


def due_fires(
    expr: str,
    tz_name: str | None,
    after: datetime,
    until: datetime,
    limit: int,
    cap: int = 1_000_000,
    keep_last: bool = False,
) -> tuple[list[datetime], int, datetime]:
    """As ``fires_between`` (counting stops at ``cap``; ``keep_last`` keeps the last ``limit``
    fires instead of the first), plus the first fire after ``until``."""
    found: deque[datetime] = deque(maxlen=limit if keep_last else None)
    count = 0
    for t in fire_times(expr, tz_name, after):
        if t > until:
            return list(found), count, t
        if count >= cap:
            break
        if keep_last or len(found) < limit:
            found.append(t)
        count += 1
    return list(found), count, next_fire(expr, tz_name, until)
