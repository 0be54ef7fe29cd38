"""What monitoring hands the CLI and the TUI: plain frozen data, never ORM rows.

A batch prediction of a deployment is compared with the deployed version's **baseline** (the
statistics of its training data and of its predictions on that data): per feature and for the
prediction a population stability index on the baseline's bins, a two-sample
Kolmogorov-Smirnov statistic for numeric columns, and a status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.views import _View

DRIFT_STATUSES = ("ok", "warn", "alert")  # in rising order of concern
# A column in only one of the two data sets, or of another type in each (numbers where text
# was, or text where numbers were: no PSI compares them): reported, never ignored.
COLUMN_CHANGES = ("new", "missing", "type_changed")
DEFAULT_WARN_PSI = 0.1
DEFAULT_ALERT_PSI = 0.25


@dataclass(frozen=True)
class Histogram(_View):
    """Shares of rows per bin: numeric columns on the baseline's bin edges (``labels`` are
    the ranges), categorical columns on the baseline's top values plus ``(other)``."""

    labels: tuple[str, ...]
    baseline: tuple[float, ...]
    scored: tuple[float, ...] = ()


@dataclass(frozen=True)
class FeatureDrift(_View):
    name: str
    kind: str  # "numeric" | "categorical"
    psi: float | None  # None for a column that appeared or vanished
    ks: float | None  # numeric columns only
    status: str  # one of DRIFT_STATUSES, or one of COLUMN_CHANGES
    histogram: Histogram | None = None


@dataclass(frozen=True)
class DriftRun(_View):
    """One batch prediction of a deployment, compared with its version's baseline."""

    deployment_id: str
    job_id: str
    version_id: str
    at: datetime
    baseline_dataset: str | None
    baseline_rows: int | None
    scored_dataset: str | None
    scored_rows: int
    features: tuple[FeatureDrift, ...]  # the worst first
    prediction: FeatureDrift | None
    status: str  # the worst of all features and the prediction ("ok" when all are)
    warn_psi: float = DEFAULT_WARN_PSI
    alert_psi: float = DEFAULT_ALERT_PSI
    # The model's metrics on the scored data when it carried the target column, else empty.
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class BaselineView(_View):
    """A version's baseline: the statistics of the data it was trained on (or, imported, of
    its first statistics or evaluation), as ``compute_stats`` gives them, its shares per bin,
    and the distribution of its predictions there."""

    version_id: str
    job_id: str | None
    dataset: str | None
    rows: int | None
    at: datetime
    features: tuple[str, ...]
    statistics: dict  # {column: compute_stats' statistics, with "bins"}
    histograms: dict[str, Histogram] = field(default_factory=dict)  # per feature
    prediction: Histogram | None = None
    prediction_kind: str | None = None  # "numeric" | "categorical"
