"""Predictions a batch prediction wrote: a summary of them and the head of ``predictions.csv``.

Standard library only: the scorer (in the job's process), the engine, the CLI and the TUI
all use it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

PREDICTIONS_FILE = "predictions.csv"
MOST_CLASSES = 20  # class counts kept in a summary; the rest are counted as "other"
MAX_SUMMARY_BYTES = 16_384
QUANTILES = ("0.05", "0.25", "0.5", "0.75", "0.95")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clean_summary(value: Any) -> dict[str, Any] | None:
    """A summary as a job wrote it, checked (the job's code could have written anything):
    ``{"kind": "classes", "rows", "counts": {label: n}, "other"}`` or ``{"kind":
    "numbers", "rows", "mean", "std", "min", "max", "quantiles": {q: x}}``; else None."""
    if not isinstance(value, dict):
        return None
    rows = value.get("rows")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        return None
    kind = value.get("kind")
    if kind == "classes":
        counts = value.get("counts")
        if not isinstance(counts, dict):
            return None
        clean = {
            str(k): n
            for k, n in list(counts.items())[:MOST_CLASSES]
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0
        }
        other = value.get("other")
        other = other if isinstance(other, int) and not isinstance(other, bool) else 0
        out: dict[str, Any] = {"kind": kind, "rows": rows, "counts": clean, "other": other}
    elif kind == "numbers":
        out = {"kind": kind, "rows": rows}
        for key in ("mean", "std", "min", "max"):
            out[key] = _number(value.get(key))
        quantiles = value.get("quantiles")
        quantiles = quantiles if isinstance(quantiles, dict) else {}
        out["quantiles"] = {q: _number(quantiles.get(q)) for q in QUANTILES}
    else:
        return None
    if len(json.dumps(out)) > MAX_SUMMARY_BYTES:
        return None
    return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


def summary_text(summary: dict[str, Any] | None) -> str:
    """One line for people: class counts with shares, or the mean and quantiles."""
    if not summary:
        return "no summary (the scorer wrote none)"
    rows = summary.get("rows", 0)
    if not rows:
        return "0 predictions (no rows to score)"
    if summary.get("kind") == "classes":
        parts = [
            f"{label}: {n} ({100 * n / rows:.0f}%)"
            for label, n in summary.get("counts", {}).items()
        ]
        if summary.get("other"):
            parts.append(f"other: {summary['other']}")
        return f"{rows} predictions: " + ", ".join(parts)
    q = summary.get("quantiles", {})
    return (
        f"{rows} predictions: mean {_fmt(summary.get('mean'))}, std {_fmt(summary.get('std'))}, "
        f"min {_fmt(summary.get('min'))}, q5 {_fmt(q.get('0.05'))}, "
        f"q25 {_fmt(q.get('0.25'))}, median {_fmt(q.get('0.5'))}, q75 {_fmt(q.get('0.75'))}, "
        f"q95 {_fmt(q.get('0.95'))}, max {_fmt(summary.get('max'))}"
    )


def read_head(path: Path, rows: int = 10, width: int = 64) -> tuple[list[str], list[list[str]]]:
    """The header and the first ``rows`` rows of a CSV file (each cell cut at ``width``
    characters); empty when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None) or []
            head: list[list[str]] = []
            for row in reader:
                if len(head) >= rows:
                    break
                head.append([c if len(c) <= width else c[: width - 1] + "…" for c in row])
    except (OSError, csv.Error):
        return [], []
    return header, head
