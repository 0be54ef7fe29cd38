"""How values look on screen: user text, times, durations, statuses. Pure functions, no
widgets.

Every text a user or a job controls (names, paths, reasons, hyperparameters, errors, event
messages, metric names, log lines) reaches a widget through :func:`literal`: a ``Text`` is
never parsed as markup (a string given to a Label, a Static, a DataTable cell, a Rich table
cell or a toast is), and :func:`core.text.printable` first turns its control characters into
visible stand-ins, so no escape sequence in it reaches the terminal."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.containers import Lines
from rich.measure import Measurement
from rich.text import Span, Text

from core.clock import utc
from core.errors import ModelDeckError
from core.schedule import zone
from core.text import has_controls, printable, strftime

# Status -> style, with theme variables ($name) that ``resolve_styles`` turns into colours
# of the current theme (Rich styles know nothing of Textual's variables).
STATUS_STYLE: dict[str, str] = {
    "queued": "dim",
    "running": "bold $accent",
    "stopping": "bold $warning",
    "completed": "$success",
    "failed": "bold $error",
    "cancelled": "$warning",
    "trained": "",
    "imported": "",
    "evaluated": "$accent",
    "approved": "$success",
    "rejected": "$error",
    "deployed": "bold $success",
    "retired": "dim",
    "active": "bold $success",
    "paused": "$warning",
    # drift of a deployment's batch run (core.monitoring.views.DRIFT_STATUSES, COLUMN_CHANGES)
    "ok": "$success",
    "warn": "bold $warning",
    "alert": "bold $error",
    "new": "$warning",
    "missing": "$warning",
    "type_changed": "$error",
}

STATUS_MARK: dict[str, str] = {
    "queued": "·",
    "running": "▶",
    "stopping": "■",
    "completed": "✓",
    "failed": "✗",
    "cancelled": "⊘",
}


def literal(
    text: object, style: str = "", *, newlines: bool = False, no_wrap: bool = False
) -> Text:
    """``text`` as it is, for the screen: never markup, control characters made visible
    (newlines kept when ``newlines``, for a text shown over several lines; ``no_wrap``: one
    line, cut with an ellipsis where it does not fit)."""
    shown = Text(printable(str(text), newlines=newlines), style=style, end="")
    if no_wrap:
        shown.no_wrap, shown.overflow = True, "ellipsis"
    return shown


def fit_crumb(crumb: str, width: int) -> str:
    """A breadcrumb (``modeldeck / project / job j-… / event 8``) cut to ``width`` cells,
    keeping its end, where you are: its leading ``modeldeck`` goes first, then the parts
    before the last are cut with …, the longest first, down to 8 cells each (then to 1,
    when the end is short: ``event 8``, not a job's whole title); only then is the end
    cut."""
    if cell_len(crumb) <= width:
        return crumb
    parts = crumb.split(" / ")
    if len(parts) > 1 and parts[0] == "modeldeck":
        parts = parts[1:]
    over = cell_len(" / ".join(parts)) - width
    for keep in (8, 1) if cell_len(parts[-1]) <= 16 else (8,):
        while over > 0:
            cuttable = [i for i in range(len(parts) - 1) if cell_len(parts[i]) > keep + 1]
            if not cuttable:
                break
            i = max(cuttable, key=lambda i: cell_len(parts[i]))
            parts[i] = set_cell_size(parts[i], max(keep, cell_len(parts[i]) - over - 1)) + "…"
            over = cell_len(" / ".join(parts)) - width
    shown = " / ".join(parts)
    return shown if over <= 0 else set_cell_size(shown, max(0, width - 1)) + "…"


def fit_label(label: str, width: int) -> str:
    """A name with its last word (a version label's ``v3``) cut to ``width`` cells: the name
    is cut with …, the last word kept (unless it alone does not fit)."""
    if cell_len(label) <= width:
        return label
    name, space, last = label.rpartition(" ")
    if space and cell_len(last) + 2 <= width:
        return set_cell_size(name, width - cell_len(last) - 2) + "… " + last
    return set_cell_size(label, max(0, width - 1)) + "…"


class Clamped:
    """``text`` wrapped to the width it is given, at most ``most`` lines, the last ending in
    ``…`` when there is more (a job's long error in its header: the whole one is in its log
    and on its events)."""

    def __init__(self, text: Text, most: int) -> None:
        self.text = text
        self.most = most

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = self.text.wrap(console, options.max_width)
        if len(lines) > self.most:
            lines = Lines(lines[: self.most])
            last = lines[-1]
            last.truncate(max(1, options.max_width - 1))
            last.rstrip()
            last.append("…")
        yield Text("\n").join(lines)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.text)


def printable_text(text: Text) -> Text:
    """A styled ``Text`` with its control characters made visible, its styles kept (a
    stand-in takes the styles of the character it replaces)."""
    plain = text.plain
    if not has_controls(plain):
        return text
    out = text.blank_copy()
    start = 0
    for i, char in enumerate(plain):
        stand_in = printable(char)
        if stand_in == char:
            continue
        out.append_text(text[start:i])
        styled = text[i : i + 1]
        spans = [Span(0, len(stand_in), span.style) for span in styled.spans]
        out.append_text(Text(stand_in, style=styled.style, spans=spans))
        start = i + 1
    out.append_text(text[start:])
    return out


def zone_label(shown: datetime) -> str:
    """The name of a time's zone as a label: its abbreviation (``CET``, ``UTC``), else its
    offset (``+0530``) for a zone that has none."""
    return shown.tzname() or shown.strftime("%z")


def _local(dt: datetime | None, fmt: str) -> str:
    d = utc(dt)
    if d is None:
        return "-"
    shown = d.astimezone()  # this machine's clock; the label says which zone that is
    return f"{strftime(shown, fmt)} {zone_label(shown)}"


def when(dt: datetime | None) -> str:
    """A time on this machine's clock, minutes precision, labelled with its zone
    (``2026-03-01 09:30 CET``); ``-`` when unknown."""
    return _local(dt, "%Y-%m-%d %H:%M")


def when_s(dt: datetime | None) -> str:
    """Like :func:`when`, to the second (``2026-03-01 09:30:05 CET``)."""
    return _local(dt, "%Y-%m-%d %H:%M:%S")


def clock_time(dt: datetime | None) -> str:
    """The time of day on this machine's clock, labelled (``09:30:05 CET``)."""
    return _local(dt, "%H:%M:%S")


def in_zone(dt: datetime | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time on the clock of the IANA zone ``tz``, labelled with that zone's name for it
    (a deployment's next run as its schedule reads: ``2026-03-02 06:00 CET``)."""
    d = utc(dt)
    if d is None:
        return "-"
    if not known_zone(tz):  # on UTC's clock, labelled so (``zone_text`` says why)
        return f"{strftime(d, fmt)} UTC"
    shown = d.astimezone(zone(tz))
    return f"{strftime(shown, fmt)} {zone_label(shown)}"


def known_zone(tz: str) -> bool:
    """Whether this machine's tz data knows the zone ``tz`` (another host's may know more)."""
    try:
        zone(tz)
    except ModelDeckError:
        return False
    return True


def zone_text(tz: str) -> Text:
    """A deployment's zone, literal, and ``(unknown here: times in UTC)`` when this machine
    does not know it."""
    shown = literal(tz)
    if not known_zone(tz):
        shown.append(" (unknown here: times in UTC)", style="dim")
    return shown


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m05s``, ``2h04m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def status_text(status: str, styles: dict[str, str] | None = None) -> Text:
    """A status word with a mark, coloured by the theme (``styles`` maps status -> style)."""
    mark = STATUS_MARK.get(status, "")
    label = f"{mark} {status}" if mark else status
    style = (styles or {}).get(status, "")
    return Text(label, style=style)


def mark_only(status: str, styles: dict[str, str] | None = None) -> Text:
    """A status as its mark alone (``▶``, ``✓``), coloured; one without a mark as its word."""
    return Text(STATUS_MARK.get(status, status), style=(styles or {}).get(status, ""))


def status_mark(status: str, styles: dict[str, str] | None = None) -> Text:
    """A job status for a cell short of room: a completed job as its mark alone (``✓``), any
    other status as usual (``✗ failed``): the usual case is quiet, the others say it."""
    return mark_only(status, styles) if status == "completed" else status_text(status, styles)


def resolve_styles(variables: dict[str, str]) -> dict[str, str]:
    """STATUS_STYLE with each ``$name`` replaced by the theme's colour for it."""

    def sub(style: str) -> str:
        return re.sub(r"\$([a-z-]+)", lambda m: variables.get(m.group(1), ""), style).strip()

    return {status: sub(style) for status, style in STATUS_STYLE.items()}
