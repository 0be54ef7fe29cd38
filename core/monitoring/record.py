"""What a finished job's monitoring results do to the registry, in the engine's transaction:
a version's baseline (once), a batch prediction's drift run with its statuses.

A job's ``result.json`` is written by a process that runs the user's code: everything read
from it is checked here (shapes, types, finite numbers) before it is stored.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert
from sqlalchemy import select as core_select
from sqlmodel import Session

from core import rawsql
from core.events import DeploymentEventKind, JobEventKind
from core.jobrow import JobRow
from core.lifecycle import JobType
from core.models import Deployment, StatisticsRecord
from core.monitoring.drift import KEPT_SAMPLE, status_of
from core.monitoring.tables import Baseline, DriftRecord
from core.monitoring.views import DEFAULT_ALERT_PSI, DEFAULT_WARN_PSI, DRIFT_STATUSES
from core.records import add_deployment_event

# How a column that appeared, vanished or changed type weighs in a run's overall status.
CHANGE_WEIGHT = {"new": "warn", "missing": "alert", "type_changed": "alert"}
MAX_COLUMNS = 10_000


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _names(value: Any) -> list[str]:
    return [str(v) for v in value[:MAX_COLUMNS]] if isinstance(value, list) else []


def _sample(value: Any) -> list[float]:
    if not isinstance(value, list):
        return []
    out = [_num(v) for v in value[:KEPT_SAMPLE]]
    return sorted(v for v in out if v is not None)


def thresholds(d: Deployment) -> tuple[float, float]:
    """A deployment's PSI thresholds: warn from, alert from."""
    return (
        d.warn_psi if d.warn_psi is not None else DEFAULT_WARN_PSI,
        d.alert_psi if d.alert_psi is not None else DEFAULT_ALERT_PSI,
    )


_BASELINE = Baseline.__table__
_STATISTICS = StatisticsRecord.__table__
# Core statements built once (a training's end runs them): values bound when they run.
_HAS_BASELINE = core_select(_BASELINE.c.id).where(_BASELINE.c.version_id == bindparam("version"))
_SOURCE = core_select(
    _BASELINE.c.id,
    _BASELINE.c.version_id,
    _BASELINE.c.sha256,
    _BASELINE.c.rows,
    _BASELINE.c.features,
    _BASELINE.c.statistics,
    _BASELINE.c.samples,
).where(_BASELINE.c.id == bindparam("id"))
_ADD_BASELINE = insert(_BASELINE)
_ADD_STATISTICS = insert(_STATISTICS)


def _reused(
    conn: Connection, job: JobRow, data: dict[str, Any], result: dict[str, Any], now: datetime
) -> Row | None:
    """The baseline a job's result says it reused, checked: it exists, it was computed on a
    file with the sha256 of the one the job read, and it has samples of every feature asked
    (else an event says why, and the version gets no baseline from this job)."""
    source = data.get("reused")
    ok = isinstance(source, int) and not isinstance(source, bool)
    src = rawsql.run(conn, _SOURCE, {"id": source}).first() if ok else None
    read = (result.get("dataset_file") or {}).get("sha256")
    if src is None or not src.sha256 or src.sha256 != read or data.get("sha256") != read:
        why = f"baseline {source} to reuse is gone or was computed on another file content"
    elif not set(_names(data.get("features"))) <= set(src.features or []):
        why = f"baseline {source} to reuse has no samples of some of the features"
    else:
        return src
    job.add_event(JobEventKind.monitoring_failed, f"no baseline: {why}", now, {"error": why})
    return None


def record_baseline(
    s: Session,
    job: JobRow,
    version_id: str,
    number: int,
    result: dict[str, Any],
    now: datetime,
    new: bool = False,
) -> None:
    """Keep the baseline a job computed as its version's, unless the version has one: its
    first baseline stays. A job that read a file with the content of an earlier baseline's
    copies that one's statistics and samples (``core.monitoring.reuse``). A training's
    statistics are also kept as a statistics record of the version (a compute_stats job keeps
    its own; an evaluation's are the baseline's only). Core statements, in ``s``'s
    transaction; the version by its id and number; ``new``: it was created in this
    transaction (it has no baseline yet)."""
    error = result.get("monitoring_error")
    if isinstance(error, str):
        job.add_event(
            JobEventKind.monitoring_failed, f"no baseline: {error}", now, {"error": error}
        )
    data = result.get("baseline")
    if not isinstance(data, dict):
        return
    reusing = "reused" in data
    if not reusing and not isinstance(data.get("statistics"), dict):
        return
    conn = s.connection()
    if not new and rawsql.run(conn, _HAS_BASELINE, {"version": version_id}).first() is not None:
        return
    features = _names(data.get("features"))
    src = _reused(conn, job, data, result, now) if reusing else None
    if reusing and src is None:
        return
    if src is not None:
        rows = src.rows
        columns = (src.statistics or {}).get("columns") or {}
        samples = {k: x for k, x in (src.samples or {}).items() if k in features}
        sha = src.sha256
    else:
        stats = data["statistics"]
        columns = stats.get("columns") if isinstance(stats.get("columns"), dict) else {}
        raw = data.get("samples") if isinstance(data.get("samples"), dict) else {}
        samples = {str(k): _sample(x) for k, x in list(raw.items())[:MAX_COLUMNS]}
        rows = data.get("rows") if isinstance(data.get("rows"), int) else None
        read = (result.get("dataset_file") or {}).get("sha256")
        sha = read if isinstance(read, str) and data.get("sha256") == read else None
    prediction = data.get("prediction") if isinstance(data.get("prediction"), dict) else None
    if prediction is not None:
        prediction = {
            "kind": "categorical" if prediction.get("kind") == "categorical" else "numeric",
            "stats": prediction.get("stats") if isinstance(prediction.get("stats"), dict) else {},
            "sample": _sample(prediction.get("sample")),
        }
    name = data.get("dataset") if isinstance(data.get("dataset"), str) else None
    statistics = {"rows": rows, "dataset": name, "columns": columns}
    rawsql.run(
        conn,
        _ADD_BASELINE,
        {
            "version_id": version_id,
            "job_id": job.id,
            "dataset_id": job.dataset_id,
            "at": now,
            "rows": rows,
            "features": features,
            "ignored": _names(data.get("ignored")),
            "statistics": statistics,
            "samples": samples,
            "prediction": prediction,
            "sha256": sha,
        },
    )
    if job.type == JobType.train.value:  # the statistics of its training data, as a run
        rawsql.run(
            conn,
            _ADD_STATISTICS,
            {
                "version_id": version_id,
                "job_id": job.id,
                "dataset_id": job.dataset_id,
                "at": now,
                "rows": rows,
                "statistics": statistics,
            },
        )
    with_pred = " and its predictions" if prediction else ""
    details: dict[str, Any] = {
        "version": version_id,
        "dataset": job.dataset_id,
        "rows": rows,
        "features": features,
    }
    reused = ""
    if src is not None:
        reused = f"; statistics reused from baseline {src.id} (same file content)"
        details.update(reused_from=src.id, reused_version=src.version_id)
    job.add_event(
        JobEventKind.baseline_recorded,
        f"baseline of version {number}: {len(features)} features of "
        f"{name or 'the dataset'}{with_pred}, {rows} rows{reused}",
        now,
        details,
    )


def _feature(raw: Any, warn: float, alert: float) -> dict[str, Any] | None:
    """One column's drift from the job, checked, with its status."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    changed = raw.get("changed")
    psi, ks = _num(raw.get("psi")), _num(raw.get("ks"))
    if changed in ("new", "missing", "type"):
        status, psi, ks = "type_changed" if changed == "type" else changed, None, None
    elif psi is None:
        status = "alert"  # nothing measured it: not to be taken for ok
    else:
        status = status_of(psi, warn, alert)
    out: dict[str, Any] = {
        "name": raw["name"],
        "kind": "categorical" if raw.get("kind") == "categorical" else "numeric",
        "psi": psi,
        "ks": ks,
        "status": status,
    }
    labels = raw.get("labels")
    if isinstance(labels, list) and len(labels) <= 1000:
        b = [_num(x) or 0.0 for x in raw.get("baseline") or []]
        sc = [_num(x) or 0.0 for x in raw.get("scored") or []]
        if len(b) == len(labels) == len(sc):
            out["histogram"] = {"labels": [str(x) for x in labels], "baseline": b, "scored": sc}
    return out


def _weight(status: str) -> int:
    return DRIFT_STATUSES.index(CHANGE_WEIGHT.get(status, status))


def record_drift(
    s: Session, job: JobRow, d: Deployment, result: dict[str, Any], now: datetime
) -> None:
    """Keep a batch prediction's drift against its version's baseline, with the statuses
    the deployment's thresholds give (the thresholds are kept with the run)."""
    error = result.get("monitoring_error")
    if isinstance(error, str):
        job.add_event(JobEventKind.monitoring_failed, f"no drift: {error}", now, {"error": error})
    data = result.get("drift")
    if not isinstance(data, dict):
        return
    warn, alert = thresholds(d)
    features = [f for f in (_feature(x, warn, alert) for x in data.get("features") or []) if f]
    features.sort(key=lambda f: (-_weight(f["status"]), -(f["psi"] or 0.0), f["name"]))
    prediction = _feature(data.get("prediction"), warn, alert)
    every = [*features, *([prediction] if prediction else [])]
    status = DRIFT_STATUSES[max((_weight(f["status"]) for f in every), default=0)]
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    base_id = data.get("baseline") if isinstance(data.get("baseline"), int) else None
    rows = data.get("scored_rows") if isinstance(data.get("scored_rows"), int) else 0
    s.add(
        DriftRecord(
            deployment_id=d.id,
            job_id=job.id,
            version_id=d.version_id,
            baseline_id=base_id,
            dataset_id=job.dataset_id,
            at=now,
            rows=rows,
            status=status,
            warn_psi=warn,
            alert_psi=alert,
            features=features,
            prediction=prediction,
            metrics={str(k): _num(v) for k, v in metrics.items()},
        )
    )
    top = [f"{f['name']} {f['status']}" for f in features if f["status"] != "ok"][:3]
    message = f"drift {status}" + (f": {', '.join(top)}" if top else "")
    details = {"deployment": d.id, "status": status, "rows": rows, "top": top}
    job.add_event(JobEventKind.drift_computed, message, now, details)
    add_deployment_event(
        s, d.id, DeploymentEventKind.drift_computed, message, now, {**details, "job": job.id}
    )
