"""A version's metrics per evaluation (job, dataset, time), and which evaluation judges it.

Every metrics record keeps the job that made it and the dataset it ran on. A version is
judged on one evaluation: by default the latest evaluation on a dataset other than the one it
was trained on; a model may name the dataset it is judged on and its headline metric in its
``model.json`` (``"judged_on": "holdout"``, ``"metric": "f1"``). Approvals record the
evaluations the approver saw (``evaluation_refs``), not whatever was recorded last.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from core.clock import utc
from core.lifecycle import JobType
from core.models import Dataset, Job, MetricsRecord, ModelVersion
from core.views import MetricsView

_META_CACHE: dict[str, tuple[int, dict[str, Any]]] = {}


def model_meta(repo: str | Path, model: str) -> dict[str, Any]:
    """A code model's ``model.json`` (``{}`` when it has none or it is not a JSON object).

    Read on every view (cheap: cached by modification time), so a changed headline metric
    shows at once."""
    path = Path(repo) / "models" / model / "model.json"
    key = str(path)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    cached = _META_CACHE.get(key)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    meta = data if isinstance(data, dict) else {}
    _META_CACHE[key] = (mtime, meta)
    return meta


def metrics_history(s: Session, v: ModelVersion) -> list[MetricsView]:
    """Every metrics record of a version, oldest first, with its job type and dataset."""
    return metrics_histories(s, [v])[v.id]


def metrics_histories(s: Session, versions: list[ModelVersion]) -> dict[str, list[MetricsView]]:
    """``metrics_history`` of several versions in one query, by version id."""
    out: dict[str, list[MetricsView]] = {v.id: [] for v in versions}
    trained_on = {v.id: v.dataset_id for v in versions}
    rows = s.exec(
        select(MetricsRecord, Job.type, Dataset.name)
        .outerjoin(Job, col(Job.id) == MetricsRecord.job_id)
        .outerjoin(Dataset, col(Dataset.id) == MetricsRecord.dataset_id)
        .where(col(MetricsRecord.version_id).in_(list(out)))
        .order_by(col(MetricsRecord.id))
    ).all()
    for r, job_type, name in rows:
        out[r.version_id].append(
            MetricsView(
                at=r.at,
                job_id=r.job_id,
                dataset=name,
                metrics=dict(r.metrics),
                dataset_id=r.dataset_id,
                job_type=job_type,
                training=job_type == JobType.train.value
                or (r.dataset_id is not None and r.dataset_id == trained_on[r.version_id]),
            )
        )
    return out


def evaluations(history: list[MetricsView]) -> list[MetricsView]:
    return [m for m in history if m.job_type == JobType.evaluate.value]


def judged_evaluation(history: list[MetricsView], judged_on: Any = None) -> MetricsView | None:
    """The evaluation a version is judged on: the latest on the dataset its model.json names
    (``judged_on``), else the latest on a dataset it was not trained on, else the latest."""
    evals = evaluations(history)
    if isinstance(judged_on, str) and judged_on:
        named = [m for m in evals if m.dataset == judged_on]
        if named:
            return named[-1]
    held_out = [m for m in evals if not m.training]
    if held_out:
        return held_out[-1]
    return evals[-1] if evals else None


def evaluation_ref(m: MetricsView) -> dict[str, Any]:
    """How an approval keeps an evaluation: plain JSON, copied, so later records change
    nothing."""
    at = utc(m.at)
    return {
        "job_id": m.job_id,
        "dataset_id": m.dataset_id,
        "dataset": m.dataset,
        "at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z") if at else None,
        "training": m.training,
        "metrics": dict(m.metrics),
    }


def evaluation_from_ref(ref: dict[str, Any]) -> MetricsView:
    at = ref.get("at")
    return MetricsView(
        at=datetime.fromisoformat(at.replace("Z", "+00:00")) if isinstance(at, str) else at,
        job_id=ref.get("job_id"),
        dataset=ref.get("dataset"),
        metrics=dict(ref.get("metrics") or {}),
        dataset_id=ref.get("dataset_id"),
        job_type=JobType.evaluate.value,
        training=bool(ref.get("training")),
    )


def numbers(metrics: dict[str, Any], digits: int = 4) -> str:
    """``accuracy=0.9722, f1=0.97``: the numeric metrics, for logs and one-line summaries."""
    out = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out.append(f"{key}={value:.{digits}f}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(out)
