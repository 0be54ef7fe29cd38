"""Drift maths: a scored data set's statistics against a baseline's, column by column.

- **PSI** (population stability index) on the baseline's bins: numeric columns on its decile
  edges, text columns on its top values plus ``(other)``; one more bin for missing values.
  With ``b`` and ``s`` the shares of the baseline's and the scored rows in a bin, each floored
  at ``PSI_FLOOR`` (1e-4) so that an empty bin counts instead of dividing by zero,
  ``PSI = sum((s - b) * ln(s / b))``.
- **KS**: the two-sample Kolmogorov-Smirnov statistic, the largest gap between the two
  empirical CDFs, computed exactly on the two samples (each data set's rows when it has at
  most ``profile.SAMPLE_ROWS``, else a uniform sample of them; a baseline keeps
  ``KEPT_SAMPLE`` of its rows).

Pure functions on plain data (numpy only): the job's process computes the numbers, the engine
gives them a status with the deployment's thresholds (``status_of``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

KEPT_SAMPLE = 4_096  # rows of each numeric column a baseline keeps (for later KS)

# numpy is imported where the maths need it: the service reads labels and counts from here,
# and a CLI read must not pay numpy's import.

PSI_FLOOR = 1e-4
MISSING = "(missing)"


def psi(baseline: Sequence[float], scored: Sequence[float]) -> float:
    """The PSI of two count vectors over the same bins (shares floored at ``PSI_FLOOR``)."""
    import numpy as np

    b = np.asarray(baseline, dtype=float)
    s = np.asarray(scored, dtype=float)
    b = np.maximum(b / max(b.sum(), 1.0), PSI_FLOOR)
    s = np.maximum(s / max(s.sum(), 1.0), PSI_FLOOR)
    return float(np.sum((s - b) * np.log(s / b)))


def ks(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The two-sample KS statistic of two samples (None when either is empty)."""
    import numpy as np

    x = np.sort(np.asarray(a, dtype=float))
    y = np.sort(np.asarray(b, dtype=float))
    if not len(x) or not len(y):
        return None
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / len(x)
    fy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


def _number(x: float) -> str:
    return f"{x:.4g}"


def bin_labels(bins: dict[str, Any]) -> list[str]:
    """A person's names of a baseline's bins (``< 1.5``, ``1.5 to 2.7``, ``>= 9.1`` or the
    values and ``(other)``), without the missing bin."""
    if "edges" in bins:
        e = [_number(x) for x in bins["edges"]]
        if not e:
            return ["all"]
        return [f"< {e[0]}", *(f"{a} to {b}" for a, b in itertools.pairwise(e)), f">= {e[-1]}"]
    return [str(v) for v in bins.get("values", [])] + ["(other)"]


def column_counts(stats: dict[str, Any]) -> list[int] | None:
    """A column's counts per bin, the missing rows last; None without bins."""
    bins = stats.get("bins")
    if not isinstance(bins, dict) or not isinstance(bins.get("counts"), list):
        return None
    return [int(c) for c in bins["counts"]] + [int(stats.get("missing") or 0)]


def compare_column(
    name: str,
    base: dict[str, Any],
    scored: dict[str, Any],
    base_sample: Sequence[float] | None,
    scored_sample: Sequence[float] | None,
) -> dict[str, Any]:
    """One column's drift: ``{"name", "kind", "psi", "ks", "labels", "baseline",
    "scored"}`` (shares per bin), or ``"changed": "type"`` when the scored column is not of
    the baseline's type (numbers where text was, or text where numbers were)."""
    kind = base.get("type", "numeric")
    out: dict[str, Any] = {"name": name, "kind": kind, "psi": None, "ks": None}
    if scored.get("type") != kind:
        out["changed"] = "type"
        return out
    b, s = column_counts(base), column_counts(scored)
    if b is None or s is None or len(b) != len(s):
        out["changed"] = "type"
        return out
    out["psi"] = psi(b, s)
    if kind == "numeric" and base_sample is not None and scored_sample is not None:
        out["ks"] = ks(base_sample, scored_sample)
    labels = bin_labels(base["bins"])
    tb, ts = max(sum(b), 1), max(sum(s), 1)
    shares_b = [c / tb for c in b]
    shares_s = [c / ts for c in s]
    if b[-1] or s[-1]:
        labels.append(MISSING)
    else:
        shares_b, shares_s = shares_b[:-1], shares_s[:-1]
    out.update(labels=labels, baseline=shares_b, scored=shares_s)
    return out


def compare(
    baseline: dict[str, Any],
    scored: dict[str, Any],
    features: Sequence[str],
    ignored: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Every feature's drift (``compare_column``), and the scored columns that are not
    features (``"changed": "new"``) and the features it lacks (``"changed": "missing"``);
    ``ignored`` columns (the target, the id column) are in neither."""
    base_cols = baseline.get("columns") or {}
    scored_cols = scored.get("columns") or {}
    base_samples = baseline.get("samples") or {}
    scored_samples = scored.get("samples") or {}
    out = []
    for name in features:
        if name not in scored_cols:
            out.append(
                {
                    "name": name,
                    "kind": base_cols.get(name, {}).get("type", "numeric"),
                    "psi": None,
                    "ks": None,
                    "changed": "missing",
                }
            )
        elif name in base_cols:
            out.append(
                compare_column(
                    name,
                    base_cols[name],
                    scored_cols[name],
                    base_samples.get(name),
                    scored_samples.get(name),
                )
            )
    for name, stats in scored_cols.items():
        if name not in features and name not in ignored:
            out.append(
                {
                    "name": name,
                    "kind": stats.get("type", "numeric"),
                    "psi": None,
                    "ks": None,
                    "changed": "new",
                }
            )
    return out


def status_of(value: float | None, warn: float, alert: float) -> str:
    """``ok`` below ``warn``, ``warn`` below ``alert``, else ``alert``."""
    if value is None or not math.isfinite(value) or value < warn:
        return "ok"
    return "warn" if value < alert else "alert"
