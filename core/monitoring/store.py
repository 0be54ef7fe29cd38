"""Monitoring's reads and the engine's spec for it: baselines and drift runs as views.

``drift_run_for_job(session, job_id)`` is what the engine's alerts read after a batch job
ends. Reads are batched: one query for many deployments' latest status, never one a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from core import rawsql
from core.lifecycle import JobType
from core.models import Dataset, Deployment, Job, ModelVersion
from core.monitoring.drift import MISSING, bin_labels, column_counts
from core.monitoring.tables import Baseline, DriftRecord
from core.monitoring.views import BaselineView, DriftRun, FeatureDrift, Histogram

DRIFTING = ("warn", "alert")


# -- the engine's spec: what a job computes for monitoring -----------------------------------


def spec_monitoring(s: Session, job: Job) -> dict[str, Any] | None:
    """``spec["monitoring"]`` of a job (see ``core.runner._monitoring``): a training, and an
    evaluation or statistics of a version without a baseline, record one; a batch prediction
    of a version with a baseline compares with it."""
    kind = job.type
    if kind == JobType.train.value:
        features = ((job.params or {}).get("columns") or {}).get("features")
        return _record_baseline(s, job, features)
    if not job.version_id or kind not in (
        JobType.evaluate.value,
        JobType.compute_stats.value,
        JobType.batch_predict.value,
    ):
        return None
    b = s.exec(select(Baseline).where(Baseline.version_id == job.version_id)).first()
    if kind == JobType.batch_predict.value:
        if b is None:
            return None
        return {
            "compare": {
                "id": b.id,
                "features": b.features,
                "ignored": b.ignored,
                "columns": (b.statistics or {}).get("columns") or {},
                "samples": b.samples,
                "prediction": b.prediction,
            }
        }
    if b is not None:
        return None
    v = s.get(ModelVersion, job.version_id)
    return _record_baseline(s, job, ((v.columns if v else None) or {}).get("features"))


_BASELINES = Baseline.__table__
_OFFER = (  # not its samples: the engine copies them if the job reuses it
    core_select(
        _BASELINES.c.id,
        _BASELINES.c.sha256,
        _BASELINES.c.rows,
        _BASELINES.c.statistics,
        _BASELINES.c.features,
    )
    .where(_BASELINES.c.dataset_id == bindparam("dataset_id"), _BASELINES.c.sha256.is_not(None))
    .order_by(_BASELINES.c.id.desc())
    .limit(1)
)


def _record_baseline(s: Session, job: Job, features: Any) -> dict[str, Any]:
    """A baseline to record, with the latest one computed on the job's dataset as an offer:
    the job copies its statistics if the file it reads has the same sha256
    (``core.monitoring.reuse``)."""
    out: dict[str, Any] = {"baseline": True, "features": features}
    if not job.dataset_id:
        return out
    b = rawsql.run(s.connection(), _OFFER, {"dataset_id": job.dataset_id}).first()
    if b is not None:
        out["reuse"] = {
            "id": b.id,
            "sha256": b.sha256,
            "rows": b.rows,
            "columns": list((b.statistics or {}).get("columns") or {}),
            "features": b.features,
        }
    return out


# -- views -------------------------------------------------------------------------------------


def _histogram(raw: Any) -> Histogram | None:
    if not isinstance(raw, dict):
        return None
    return Histogram(
        labels=tuple(raw.get("labels") or ()),
        baseline=tuple(raw.get("baseline") or ()),
        scored=tuple(raw.get("scored") or ()),
    )


def _feature(raw: dict[str, Any]) -> FeatureDrift:
    return FeatureDrift(
        name=raw["name"],
        kind=raw.get("kind", "numeric"),
        psi=raw.get("psi"),
        ks=raw.get("ks"),
        status=raw.get("status", "ok"),
        histogram=_histogram(raw.get("histogram")),
    )


def _names(s: Session, ids: set[str]) -> dict[str, str]:
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    rows = s.exec(select(Dataset.id, Dataset.name).where(col(Dataset.id).in_(ids))).all()
    return dict(rows)


def _views(s: Session, records: Sequence[DriftRecord]) -> list[DriftRun]:
    """Drift runs as views, with their data sets' names and baselines' sizes (batched)."""
    base_ids = {r.baseline_id for r in records if r.baseline_id is not None}
    bases = (
        {b.id: b for b in s.exec(select(Baseline).where(col(Baseline.id).in_(base_ids))).all()}
        if base_ids
        else {}
    )
    names = _names(s, {r.dataset_id for r in records} | {b.dataset_id for b in bases.values()})
    out = []
    for r in records:
        b = bases.get(r.baseline_id)
        out.append(
            DriftRun(
                deployment_id=r.deployment_id,
                job_id=r.job_id,
                version_id=r.version_id,
                at=r.at,
                baseline_dataset=names.get(b.dataset_id) if b else None,
                baseline_rows=b.rows if b else None,
                scored_dataset=names.get(r.dataset_id),
                scored_rows=r.rows,
                features=tuple(_feature(f) for f in r.features or []),
                prediction=_feature(r.prediction) if r.prediction else None,
                status=r.status,
                warn_psi=r.warn_psi,
                alert_psi=r.alert_psi,
                metrics=dict(r.metrics or {}),
            )
        )
    return out


def drift_run_for_job(session: Session, job_id: str) -> DriftRun | None:
    """The drift run a batch prediction job recorded, or None (no baseline, not ended)."""
    r = session.exec(select(DriftRecord).where(DriftRecord.job_id == job_id)).first()
    return _views(session, [r])[0] if r is not None else None


def drift_runs(s: Session, deployment_id: str, limit: int | None = None) -> list[DriftRun]:
    """A deployment's drift runs, newest first."""
    stmt = (
        select(DriftRecord)
        .where(DriftRecord.deployment_id == deployment_id)
        .order_by(col(DriftRecord.id).desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return _views(s, s.exec(stmt).all())


def latest_statuses(s: Session, deployment_ids: Sequence[str]) -> dict[str, str]:
    """Each deployment's latest run's status (those with a run), in one query."""
    if not deployment_ids:
        return {}
    latest = (
        select(func.max(DriftRecord.id).label("id"))
        .where(col(DriftRecord.deployment_id).in_(list(deployment_ids)))
        .group_by(DriftRecord.deployment_id)
        .subquery()
    )
    rows = s.exec(
        select(DriftRecord.deployment_id, DriftRecord.status).where(
            col(DriftRecord.id).in_(select(latest.c.id))
        )
    ).all()
    return dict(rows)


def drifting_counts(s: Session, project_ids: Sequence[str]) -> dict[str, int]:
    """Per project, its active deployments whose latest run is ``warn`` or ``alert`` (one
    query)."""
    if not project_ids:
        return {}
    latest = (
        select(func.max(DriftRecord.id).label("id"))
        .join(Deployment, col(Deployment.id) == DriftRecord.deployment_id)
        .where(col(Deployment.project_id).in_(list(project_ids)), Deployment.status == "active")
        .group_by(DriftRecord.deployment_id)
        .subquery()
    )
    rows = s.exec(
        select(Deployment.project_id, func.count())
        .join(DriftRecord, col(DriftRecord.deployment_id) == Deployment.id)
        .where(col(DriftRecord.id).in_(select(latest.c.id)), col(DriftRecord.status).in_(DRIFTING))
        .group_by(Deployment.project_id)
    ).all()
    return {pid: int(n) for pid, n in rows}


def _baseline_histogram(stats: dict[str, Any]) -> Histogram | None:
    counts = column_counts(stats)
    if counts is None:
        return None
    labels = bin_labels(stats["bins"])
    if counts[-1]:
        labels.append(MISSING)
    else:
        counts = counts[:-1]
    total = max(sum(counts), 1)
    if len(labels) != len(counts):
        return None
    return Histogram(labels=tuple(labels), baseline=tuple(c / total for c in counts))


def baseline_view(s: Session, version_id: str) -> BaselineView | None:
    b = s.exec(select(Baseline).where(Baseline.version_id == version_id)).first()
    if b is None:
        return None
    columns = (b.statistics or {}).get("columns") or {}
    ds = s.get(Dataset, b.dataset_id) if b.dataset_id else None
    hists = {n: h for n in b.features if (h := _baseline_histogram(columns.get(n) or {}))}
    pred = b.prediction or None
    return BaselineView(
        version_id=b.version_id,
        job_id=b.job_id,
        dataset=ds.name if ds else None,
        rows=b.rows,
        at=b.at,
        features=tuple(b.features or ()),
        statistics=columns,
        histograms=hists,
        prediction=_baseline_histogram(pred.get("stats") or {}) if pred else None,
        prediction_kind=pred.get("kind") if pred else None,
    )
