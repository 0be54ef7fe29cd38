"""The deployment commands: listing a project's deployments, and changing, pausing, resuming
or previewing a deployment's schedule (deploying, retiring and predicting are job commands)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from core.cli.output import out, retired, say, table
from core.cli.session import Cli, Command
from core.clock import iso
from core.errors import ModelDeckError
from core.text import local, quoted, strftime

if TYPE_CHECKING:
    from core.service import Deck


def deployments(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    serving = d.serving_engine() is not None
    return cli.listing(
        d.deployments(a.project),
        [
            "id",
            "version",
            "status",
            "dataset",
            "schedule",
            "timezone",
            "paused",
            "next run",
            "last run",
            "retired",
        ],
        lambda x: [
            x.id,
            x.label,
            x.status,
            x.dataset,
            x.schedule,
            x.timezone,
            "yes" if x.paused else "no",
            local(x.next_run_at) + x.unserved_mark(serving),
            x.last_run["status"] if x.last_run else "-",
            retired(x),
        ],
    )


def schedule(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    paused = True if a.pause else False if a.resume else None
    # Refuse a bad preview before changing anything.
    if a.start is not None and a.next is None:
        raise ModelDeckError("--from goes with --next N (the fire times to preview)")
    if a.next is not None and not 1 <= a.next <= 1000:
        raise ModelDeckError("--next takes a number from 1 to 1000")
    dep = d.deployment(a.deployment)
    if a.next is not None:  # the preview of the schedule as it will be, before it changes
        _preview(d, a, a.cron or dep.schedule, a.timezone or dep.timezone)
    if a.cron or a.timezone or paused is not None:
        dep = d.set_schedule(a.deployment, a.cron, a.timezone, paused)
    preview: list[datetime] = []
    if a.next is not None:
        if not dep.schedule:
            raise ModelDeckError(f"deployment {dep.id} has no schedule")
        preview = _preview(d, a, dep.schedule, dep.timezone)
    if cli.json:
        data = dep.to_json()
        if a.next is not None:
            data["preview"] = [_fire_json(t, dep.timezone) for t in preview]
        out(data)
        return 0
    state = "paused" if dep.paused else "active"
    unserved = dep.unserved_mark(d.serving_engine() is not None)
    say(
        f"{dep.id}: {dep.schedule or 'no schedule'} ({dep.timezone}), {state}, "
        f"next run {local(dep.next_run_at)}{unserved}"
    )
    if preview:
        print(
            table(
                [f"local ({dep.timezone})", "utc"],
                [[_in_zone(t, dep.timezone), strftime(t, "%Y-%m-%d %H:%M UTC")] for t in preview],
            )
        )
    return 0


def _preview(d: Deck, a: argparse.Namespace, cron: str | None, tz: str) -> list[datetime]:
    """The next ``--next`` fire times of ``cron`` in ``tz`` from ``--from`` on (a fire at
    that time itself too); refused in one line when they cannot be computed."""
    if not cron:
        return []
    start = _parse_time(a.start, tz) if a.start is not None else None
    try:
        after = start - timedelta(microseconds=1) if start is not None else None
        return d.preview_schedule(cron, tz, a.next, after=after)
    except OverflowError:  # the calendar ends (Python's years are 1 to 9999)
        raise ModelDeckError(
            f"--from {quoted(a.start or '')}: the next {a.next} fire times would fall "
            "outside the years 1 to 9999"
        ) from None


def _parse_time(text: str, tz: str) -> datetime:
    """An ISO 8601 time given by the user; one without an offset is on the clock of ``tz``."""
    from core.schedule import zone

    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ModelDeckError(
            f"--from {quoted(text)} is not a time: use ISO 8601, such as 2026-10-25T00:00 "
            "(on the schedule's clock) or 2026-10-24T22:00Z"
        ) from None
    t = t.replace(tzinfo=zone(tz)) if t.tzinfo is None else t
    try:
        t.astimezone(UTC)
    except OverflowError:
        raise ModelDeckError(
            f"--from {quoted(text)} is outside the years 1 to 9999 in UTC"
        ) from None
    return t


def _fire_json(t: datetime, tz: str) -> dict[str, str | None]:
    """A fire time in JSON: ``utc`` (``2026-11-28T05:00:00.000Z``), ``local`` on the
    schedule's clock with its offset (``2026-11-28T06:00:00.000+01:00``) and ``zone``, that
    clock's abbreviation then (``CET``; the deployment's ``timezone`` names the zone)."""
    from core.schedule import zone

    there = t.astimezone(zone(tz))
    return {
        "utc": iso(t),
        "local": there.isoformat(timespec="milliseconds"),
        "zone": there.tzname(),
    }


def _in_zone(t: datetime, tz: str) -> str:
    from core.schedule import zone

    return strftime(t.astimezone(zone(tz)), "%Y-%m-%d %H:%M %Z")


RUN: dict[str, Command] = {"deployments": deployments, "schedule": schedule}
