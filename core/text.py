"""Making text that a user or a job controls safe to show on a terminal.

Names, reasons, hyperparameters, errors and log lines can hold control characters: ESC starts
sequences that set the window title, write the clipboard (OSC 52), clear the screen or make
the terminal type an answer into the shell (``ESC[6n``). Everything shown, in the CLI and the
TUI, goes through :func:`printable` first, which turns every C0 and C1 control character
(except tab, and newline where asked) and every bidirectional control (which reorders the
rest of its line on screen) into a visible stand-in. It also shows lone surrogates
(the stand-ins Python decodes bytes that are not UTF-8 to, with ``surrogateescape``) as the
byte they came from, ``\\xNN``: printed as they are, they make ``print`` raise
``UnicodeEncodeError``. JSON output needs none of this: ``json.dumps`` escapes control
characters itself.

It also holds the formats the CLI and the job kinds' summaries (``core.kinds``) share: a
time on this machine's clock (:func:`local`) and metrics (:func:`metrics_text`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.clock import utc

# C0 (0x00-0x1f) less tab, DEL, C1 (0x80-0x9f), the bidirectional controls (U+061C, U+200E,
# U+200F, U+202A-U+202E, U+2066-U+2069: they reorder what follows them on the line, so that a
# name or a log line reads as another, "Trojan Source"), and lone surrogates (U+D800-U+DFFF,
# which no encoding can write); newline is handled per call.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_CONTROLS_KEEP_NEWLINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")


def _stand_in(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)  # caret notation, as cat -v and less show it: ESC is ^[
    if code == 0x7F:
        return "^?"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, decoded with surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code >= 0x100:  # a bidirectional control, or a lone surrogate that came from no byte
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"  # C1: no caret form that people read


NUL_STAND_IN = "\u2400"  # ␀


def storable(value: Any) -> Any:
    """``value`` (what JSON holds: text, numbers, lists, objects) with each NUL character of
    its text, keys too, as ``␀``: for text a job wrote (its events, its error, its metrics'
    names), which PostgreSQL cannot store in text or JSON; on SQLite too, so that both keep
    the same and a ``db copy`` moves it."""
    if isinstance(value, str):
        return value.replace("\0", NUL_STAND_IN) if "\0" in value else value
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    return value


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with every control character but tab (and newline when ``newlines``) shown
    as a visible stand-in, so that nothing in it reaches the terminal as a command, and every
    lone surrogate as the byte it stands for (``\\xNN``), so that it can be written."""
    pattern = _CONTROLS_KEEP_NEWLINE if newlines else _CONTROLS
    return pattern.sub(_stand_in, text)


def quoted(text: str) -> str:
    """``text`` made printable, between single quotes: as ``repr`` quotes a name in a
    message, without doubling the backslash of a stand-in (``'h\\xffst'``)."""
    return f"'{printable(text)}'"


def cells(text: str) -> int:
    """How many terminal cells ``text`` takes: two for a wide character (CJK, most emoji),
    none for a combining mark or an invisible one, one for the rest."""
    if text.isascii():
        return len(text)
    return sum(_cells(c) for c in text)


def _cells(c: str) -> int:
    kind = unicodedata.category(c)
    if kind in ("Mn", "Me") or (kind == "Cf" and c != "\u00ad"):  # a soft hyphen is drawn
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def cut(text: str, most: int) -> str:
    """``text`` in at most ``most`` terminal cells (see :func:`cells`), cut with ``…``; and
    in at most four characters a cell: marks and invisible characters take no cell, and a
    name of thousands of them is cut too."""
    chars = 4 * most
    if len(text) <= chars and cells(text) <= most:
        return text
    kept, used = [], 1  # the ellipsis takes one
    for c in text:
        used += _cells(c)
        if used > most or len(kept) >= chars - 1:
            break
        kept.append(c)
    return "".join(kept) + "…"


def without_userinfo(url: str) -> str:
    """``url`` with its user and password (``https://user:token@host/...``) masked."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or "@" not in netloc:
        return url
    return f"{scheme}://***@{netloc.rsplit('@', 1)[1]}{slash}{path}"


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a control character other than tab, or a lone surrogate:
    whether :func:`printable` changes it (newlines aside)."""
    return _CONTROLS.search(text) is not None


def compact(values: Mapping[str, Any] | None) -> str:
    """Parameters on one line, to compare at a glance: ``C=0.1 lr=0.0003``. A text value is
    shown as it is unless it would read as more than one value (then JSON-quoted); any other
    value as JSON. Not yet made printable: show it through :func:`printable`."""
    parts = []
    for key, value in (values or {}).items():
        if isinstance(value, str):
            plain = value and not any(c.isspace() or c in '="' for c in value)
            shown = value if plain else json.dumps(value, ensure_ascii=False)
        else:
            shown = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def strftime(dt: datetime, fmt: str) -> str:
    """``dt.strftime(fmt)`` with ``%Y`` always four digits (the C library leaves a year
    before 1000 unpadded: ``2-01-01``)."""
    return dt.strftime(fmt.replace("%Y", f"{dt.year:04d}"))


def local(dt: datetime | None, ms: bool = False) -> str:
    """A time on this machine's clock, labelled with its zone (``2026-03-01 09:30:00 CET``;
    ``ms``: to the millisecond, as JSON gives it)."""
    if dt is None:
        return "-"
    shown = utc(dt).astimezone()  # the database gives naive UTC; the label says which zone
    fraction = f".{shown.microsecond // 1000:03d}" if ms else ""
    label = shown.tzname() or shown.strftime("%z")
    return f"{strftime(shown, '%Y-%m-%d %H:%M:%S')}{fraction} {label}"


def metric_value(x: Any) -> str:
    """A metric as people read it: integers whole, floats to 4 decimals, lists in brackets,
    ``null`` for none (a NaN a job reported is stored as null)."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x != x or x in (float("inf"), float("-inf")):
            return str(x)
        return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e12 else f"{x:.4g}"
    if isinstance(x, list | tuple):
        return "[" + ", ".join(metric_value(item) for item in x) + "]"
    return printable(str(x))


def metrics_text(metrics: Mapping[str, Any]) -> str:
    """Metrics on one line, ``accuracy=0.9500  loss=0.1000``; ``-`` when there are none."""
    return "  ".join(f"{printable(str(k))}={metric_value(v)}" for k, v in metrics.items()) or "-"
