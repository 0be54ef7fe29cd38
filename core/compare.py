"""Versions side by side: what ``modeldeck compare`` prints and the TUI's compare screen shows.

For each version: its status, the dataset it was trained on, its code fingerprint, who made
it (the actor of its training or import job), its approval, and the evaluation its metrics
come from (the one it is judged on, else its training). Metrics are rows with a delta
against the first version; hyperparameters are rows too, only those whose values differ
between the versions unless all are asked for. Plain frozen data, read through the Deck.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.errors import ModelDeckError
from core.views import VersionDetail, _View

if TYPE_CHECKING:
    from core.service import Deck

MISSING = None  # a hyperparameter or metric a version does not have


@dataclass(frozen=True)
class ComparedVersion(_View):
    """One version's column."""

    id: str
    project: str
    model: str
    number: int
    status: str
    dataset: str | None  # trained on
    code_fingerprint: str | None
    trainer: str | None  # the actor of the job that made it
    approval: str | None  # ``approved by ana: reason``
    approved_at: datetime | None
    metrics_job: str | None  # the evaluation (or training) its metrics come from
    metrics_dataset: str | None
    created_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.model} v{self.number}"


@dataclass(frozen=True)
class ComparedRow(_View):
    """A metric or hyperparameter across the versions, in their order (None: it has none);
    a metric's ``deltas`` are its value minus the first version's (None when either is not a
    number, and for the first version)."""

    name: str
    values: tuple[Any, ...]
    deltas: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Comparison(_View):
    versions: tuple[ComparedVersion, ...]
    metrics: tuple[ComparedRow, ...]
    hyperparameters: tuple[ComparedRow, ...]
    all_hyperparameters: bool  # False: only those that differ
    same_hyperparameters: int  # how many were left out because every version has the same


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _column(d: VersionDetail) -> ComparedVersion:
    v = d.version
    maker = next((j for j in d.lineage if j.id == v.job_id), None)
    approval = None
    if v.approval is not None:
        approval = f"{v.approval.decision} by {v.approval.by}: {v.approval.reason}"
    return ComparedVersion(
        id=v.id,
        project=v.project,
        model=v.model,
        number=v.number,
        status=v.status,
        dataset=v.dataset,
        code_fingerprint=v.code_fingerprint,
        trainer=maker.actor if maker is not None else None,
        approval=approval,
        approved_at=v.approval.at if v.approval is not None else None,
        metrics_job=v.metrics_from.job_id if v.metrics_from else None,
        metrics_dataset=v.metrics_from.dataset if v.metrics_from else None,
        created_at=v.created_at,
    )


def _same(values: Sequence[Any]) -> bool:
    """Whether every version has this value (missing counts as a value of its own)."""
    shown = {json.dumps(v, sort_keys=True, default=str) if v is not None else "\0" for v in values}
    return len(shown) == 1


def _metric_rows(details: Sequence[VersionDetail]) -> tuple[ComparedRow, ...]:
    """Numeric metrics only: a list (a confusion matrix) has no delta and no room here."""
    names: list[str] = []
    for d in details:
        names.extend(
            k
            for k, x in d.version.metrics.items()
            if k not in names and (_number(x) is not None or x is None)
        )
    rows = []
    for name in names:
        values = tuple(_number(d.version.metrics.get(name)) for d in details)
        first = values[0]
        deltas = tuple(
            None if i == 0 or first is None or x is None else x - first
            for i, x in enumerate(values)
        )
        rows.append(ComparedRow(name, values, deltas))
    return tuple(rows)


def compare(deck: Deck, refs: Sequence[str], all_hyperparameters: bool = False) -> Comparison:
    """Versions (ids, prefixes, ``MODEL:N``) side by side, in the order given: at least two,
    each once. Refuses (nothing changes) an unknown or repeated version."""
    if len(refs) < 2:
        raise ModelDeckError("compare takes at least two versions")
    details = [deck.version_detail(ref) for ref in refs]
    seen: dict[str, str] = {}
    for ref, d in zip(refs, details, strict=True):
        if d.version.id in seen:
            raise ModelDeckError(
                f"{ref!r} and {seen[d.version.id]!r} are the same version ({d.version.label}): "
                "give each version once"
            )
        seen[d.version.id] = ref
    keys: list[str] = []
    for d in details:
        keys.extend(k for k in d.version.hyperparameters if k not in keys)
    hyper = []
    same = 0
    for key in sorted(keys):
        values = tuple(d.version.hyperparameters.get(key, MISSING) for d in details)
        if _same(values):
            same += 1
            if not all_hyperparameters:
                continue
        hyper.append(ComparedRow(key, values))
    return Comparison(
        versions=tuple(_column(d) for d in details),
        metrics=_metric_rows(details),
        hyperparameters=tuple(hyper),
        all_hyperparameters=all_hyperparameters,
        same_hyperparameters=same,
    )


def hyperparameter_text(value: Any) -> str:
    """A hyperparameter's value in a cell: text as it is, anything else as JSON; ``-``
    when the version has none (not yet made printable)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def delta_text(delta: float | None) -> str:
    """``+0.0123`` / ``-0.0400`` / ``±0``; empty for no delta."""
    if delta is None:
        return ""
    if delta == 0:
        return "±0"
    return f"{delta:+.4f}" if 1e-4 <= abs(delta) < 1e6 else f"{delta:+.3g}"
