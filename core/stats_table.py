"""Statistics of a dataset as a table a person reads: one row per column, with a sparkline of
its histogram. Plain strings, shared by the CLI and the TUI (each makes them safe to show)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

STATS_HEADERS = ("column", "type", "count", "missing", "mean", "std", "distribution")
BARS = "▁▂▃▄▅▆▇█"
TOP_SHOWN = 3


def sparkline(counts: Sequence[float]) -> str:
    """One character per bin, its height the bin's count (an empty bin is a space)."""
    values = [max(0.0, float(c)) for c in counts]
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    out = []
    for v in values:
        out.append(" " if v == 0 else BARS[min(len(BARS) - 1, int(v / top * len(BARS) - 1e-9))])
    return "".join(out)


def number(value: Any) -> str:
    """A number in at most 4 significant digits (``1.235e+04`` past that)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return f"{value:.4g}"


def _distribution(stats: dict[str, Any]) -> str:
    hist = stats.get("histogram")
    if isinstance(hist, dict) and isinstance(hist.get("counts"), list):
        lo, hi = number(stats.get("min")), number(stats.get("max"))
        return f"{lo} {sparkline(hist['counts'])} {hi}"
    top = stats.get("top")
    if isinstance(top, list) and top:
        shown = [
            f"{t.get('value')} {100 * float(t.get('frequency') or 0):.0f}%"
            for t in top[:TOP_SHOWN]
            if isinstance(t, dict)
        ]
        unique = stats.get("unique")
        more = unique - len(shown) if isinstance(unique, int) else len(top) - len(shown)
        return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")
    return "-"


def stats_rows(columns: dict[str, Any]) -> list[list[str]]:
    """One row per column: name, type, count, missing, mean, std, and the distribution (a
    sparkline of the histogram between min and max, or the top values with their share)."""
    rows = []
    for name, stats in columns.items():
        if not isinstance(stats, dict):
            continue
        rows.append(
            [
                str(name),
                str(stats.get("type", "-")),
                number(stats.get("count")),
                number(stats.get("missing")),
                number(stats.get("mean")),
                number(stats.get("std")),
                _distribution(stats),
            ]
        )
    return rows
