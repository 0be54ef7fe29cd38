"""What the command line prints: tables, a job's fields, JSON, and lines for people.

Text for people goes through say(), say_lines() or err() (tables through table()): user and
job text in it is shown with its control characters made visible, never obeyed by the
terminal (see core.text)."""

from __future__ import annotations

import json
import os
import re
import select
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from core.text import cells, local, metric_value, printable

if TYPE_CHECKING:
    from core.views import JobView


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def job_lines(job: JobView) -> list[str]:
    """A job's fields, one a line, aligned: times on this machine's clock, labelled; lists
    one item a line; ``params`` and other mappings as JSON."""
    fields = job.to_json()
    width = max(len(k) for k in fields) + 2
    lines = []
    for key, value in fields.items():
        raw = getattr(job, key, value)
        if isinstance(raw, datetime):
            shown = [local(raw)]
        elif value in (None, [], {}, ""):
            shown = ["-"]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = list(value)
        elif isinstance(value, dict):  # still JSON: a key a line, its value on it
            items = [f"{json.dumps(k, ensure_ascii=False)}: {_json(v)}" for k, v in value.items()]
            shown = ("{" + ",\n ".join(items) + "}").splitlines()
        elif isinstance(value, list):
            shown = [_json(value)]
        else:
            shown = [str(value)]
        lines.append(f"{key:<{width}}{shown[0]}")
        lines.extend(" " * width + more for more in shown[1:])
    return lines


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned columns; every cell shown with its control characters made visible."""
    shown = [[("-" if v is None else printable(str(v))) for v in row] for row in rows]
    # Padded by the cells each takes on a terminal: a wide character (CJK, emoji) takes two.
    widths = [max([len(h)] + [cells(r[i]) for r in shown]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        padded = (c + " " * (w - cells(c)) for c, w in zip(row, widths, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line([h.upper() for h in headers]), *(line(r) for r in shown)])


def out(obj: Any) -> None:
    """JSON on standard output: ``json.dumps`` escapes control characters itself."""
    print(json.dumps(obj, indent=2, default=str))


def say(text: str, flush: bool = False) -> None:
    """One line of text on standard output."""
    print(printable(text), flush=flush)


def say_lines(lines: Sequence[str]) -> None:
    """Lines (of a log) on standard output."""
    if lines:
        sys.stdout.write("\n".join(printable(line) for line in lines) + "\n")


# A byte of the command line that is not UTF-8 is a lone surrogate in Python (b"\xff" is
# "\udcff"), which repr() writes as the text \udcff: an odd backslash before it.
_SURROGATE_REPR = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([89a-fA-F][0-9a-fA-F])")


def error(message: str) -> None:
    """A refusal, one line on standard error: ``error: <message>``. The bytes of the user's
    text that are not UTF-8 are shown as bytes (``'\xff'``), also where the message quotes
    that text with repr() (which writes ``'\udcff'``)."""
    err("error: " + _SURROGATE_REPR.sub(r"\1\\x\2", message))


def reader_left(stream: TextIO | None = None) -> bool:
    """After a BrokenPipeError: whether ``stream`` (standard output by default) is a pipe
    whose reader has closed it (``modeldeck jobs | head -1``). Then what is still to be
    written there goes nowhere, not even at exit: the reader had what it wanted, and the
    command goes on or ends quietly, as it would have had its output fitted in the pipe.
    False for a pipe of something else."""
    try:
        fd = (stream or sys.stdout).fileno()
        poll = select.poll()
        poll.register(fd, 0)  # the write end of a pipe whose reader left reports POLLERR
        left = any(flags & select.POLLERR for _fd, flags in poll.poll(0))
    except (OSError, ValueError):
        return False
    if left:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    return left


def unless_left(write: Callable[[], object], stream: TextIO | None = None) -> None:
    """``write()`` to ``stream`` (standard output by default); once its reader has left
    (``... | head -3``) the rest goes nowhere and the command goes on, as it would had its
    output fitted in the pipe."""
    try:
        write()
    except BrokenPipeError:
        if not reader_left(stream):
            raise


def err(msg: str) -> None:
    """One line of text on standard error (none once its reader has gone: ``2>&1 | head``)."""
    unless_left(lambda: print(printable(msg), file=sys.stderr), sys.stderr)


def metric(v: Any) -> str:
    """A version's headline metric, and the dataset it was measured on."""
    head = v.headline_metric()
    if not head:
        return "-"
    on = v.metrics_from.dataset if v.metrics_from else None
    return f"{head[0]}={metric_value(head[1])}" + (f" on {on}" if on else "")


def retired(dep: Any) -> str:
    """When a retired deployment was retired, and why (its reason, when one was given)."""
    if dep.retired_at is None:
        return "-"
    return local(dep.retired_at) + (f": {dep.retire_reason}" if dep.retire_reason else "")
