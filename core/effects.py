"""What a job does to the model registry when it ends: versions, metrics, approvals,
deployments. Each function runs inside the engine's write transaction and raises
ModelDeckError when the rules no longer allow the change (the job then fails, and nothing
of it is kept).

There is one function per job type (``trained``, ``decided``, ...); ``core.kinds`` names
each type's, and ``apply_result`` and ``apply_inline`` call the one a job's type names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, select

from core import rawsql
from core import schedule as cron
from core.db import lock_keys
from core.errors import ModelDeckError
from core.evaluations import (
    evaluation_ref,
    judged_evaluation,
    metrics_history,
    model_meta,
    numbers,
)
from core.events import DeploymentEventKind, JobEventKind
from core.home import new_id
from core.jobrow import JobRow
from core.lifecycle import (
    DeploymentStatus,
    JobType,
    VersionStatus,
    version_after,
    version_refusal,
)
from core.models import (
    Approval,
    Dataset,
    Deployment,
    MetricsRecord,
    Model,
    ModelVersion,
    Project,
    StatisticsRecord,
)
from core.predictions import clean_summary, summary_text
from core.records import (
    add_deployment_event,
    identical_deployment,
    identical_deployment_message,
    identical_message,
    identical_version,
)
from core.runner import files_under
from core.team import decision_refusal
from core.text import printable


def _version(s: Session, job: JobRow) -> ModelVersion:
    v = s.get(ModelVersion, job.version_id, with_for_update=True) if job.version_id else None
    if v is None:
        raise ModelDeckError(f"version {job.version_id} no longer exists")
    refusal = version_refusal(JobType(job.type), v.status) or decision_refusal(
        s, JobType(job.type), v, job.actor
    )
    if refusal:
        raise ModelDeckError(refusal)
    return v


def _active_deployment(s: Session, job: JobRow, while_it_ran: bool = False) -> Deployment:
    """The job's deployment, locked; refused unless active (``while_it_ran``: or retired
    after the job started, for a run that was going then)."""
    d = s.get(Deployment, job.deployment_id, with_for_update=True) if job.deployment_id else None
    if d is None:
        raise ModelDeckError(f"deployment {job.deployment_id} no longer exists")
    started, retired = job.started_at, d.retired_at
    ran_before = while_it_ran and started is not None and retired is not None and retired >= started
    if d.status != DeploymentStatus.active.value and not ran_before:
        raise ModelDeckError(f"deployment {d.id} is {d.status}")
    return d


def _decision_evaluations(s: Session, job: JobRow, v: ModelVersion) -> list[dict[str, Any]]:
    """The evaluations an approval or rejection is made on: those its job names (the ones the
    approver was shown when it was submitted), else the one the version is judged on now."""
    history = metrics_history(s, v)
    chosen = job.params.get("evaluations")
    if isinstance(chosen, list):
        by_job = {m.job_id: m for m in history if m.job_type == JobType.evaluate.value}
        missing = [j for j in chosen if j not in by_job]
        if missing:
            raise ModelDeckError(f"evaluation {missing[0]} of version {v.id} has no metrics")
        return [evaluation_ref(by_job[j]) for j in chosen]
    model = s.get(Model, v.model_id)
    project = s.get(Project, model.project_id)
    meta = model_meta(project.repo, model.name) if model.kind == "code" else {}
    judged = judged_evaluation(history, meta.get("judged_on"))
    return [evaluation_ref(judged)] if judged else []


def _set_status(s: Session, job: JobRow, v: ModelVersion, now: datetime) -> None:
    new = version_after(JobType(job.type), v.status)
    if new != v.status:
        job.add_event(
            JobEventKind.version_status,
            f"version {v.number} {v.status} → {new}",
            now,
            {"version": v.id, "from": v.status, "to": new.value},
        )
        v.status = new.value
    v.updated_at = now
    s.add(v)


_versions, _models = ModelVersion.__table__, Model.__table__
# The model's row, locked (PostgreSQL; SQLite's one writer needs no lock): writers beside
# each other number its versions in turn (built once).
_MODEL_LOCKED = (
    core_select(_models.c.project_id, _models.c.name)
    .where(_models.c.id == bindparam("model_id"))
    .with_for_update()
)
# A new version numbered after the model's last one, in the same statement: a statement after
# the lock, so it reads the last number after the one before it has committed.
_ADD_VERSION = (
    insert(ModelVersion.__table__)
    .values(
        number=core_select(func.coalesce(func.max(_versions.c.number), 0) + 1)
        .where(_versions.c.model_id == bindparam("of_model"))
        .scalar_subquery()
    )
    .returning(_versions.c.number)
)
_ADD_METRICS = insert(MetricsRecord.__table__)


def _new_version(
    s: Session,
    job: JobRow,
    model_id: str | None,
    staging: Path,
    artifacts_root: Path,
    status: VersionStatus,
    now: datetime,
    **fields: Any,
) -> tuple[str, int, Path]:
    """A new version of the model ``model_id``, by Core statements: its id, its number and
    its artifact folder (where its files go once the transaction has committed)."""
    conn = s.connection()
    model = rawsql.run(conn, _MODEL_LOCKED, {"model_id": model_id}).first()
    if model is None:
        raise ModelDeckError(f"model {model_id} no longer exists")
    project_id, model_name = model
    # Named by ids, never by what a user typed: no name can reach another model's folder.
    # A folder already there is never removed (a row may point at it): the job fails.
    version_id = new_id("v")
    final = artifacts_root / project_id / model_id / version_id
    if final.exists():
        raise ModelDeckError(f"artifact folder {final} already exists: it is left alone")
    # The files move in only once the transaction has committed (``place_artifacts``): a
    # commit that fails leaves them in staging, for the retry to find.
    values = {
        "id": version_id,
        "model_id": model_id,
        "of_model": model_id,
        "status": status.value,
        "artifact_dir": str(final),
        "job_id": job.id,
        "created_at": now,
        "updated_at": now,
        "hyperparameters": {},
        "source": {},
        "columns": None,
        **fields,
    }
    number = rawsql.run(conn, _ADD_VERSION, values).one()[0]
    job.version_id = version_id
    files = files_under(staging)
    job.add_event(
        JobEventKind.version_created,
        f"{model_name} version {number} created ({status.value})",
        now,
        {"version": version_id, "number": number, "artifacts": files, "artifact_dir": str(final)},
    )
    return version_id, number, final


def place_artifacts(staging: Path, final: Path) -> None:
    """Make a committed version's staging folder its artifact folder (an empty one when the
    job left no staging folder). Called after the commit, and by recovery when a process
    died in between; a folder already in place is left alone."""
    if final.exists():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
    except FileNotFoundError:
        if staging.exists():
            raise
        final.mkdir(exist_ok=True)  # no staging folder (or another process moved it now)


def _record_metrics(
    s: Session, job: JobRow, version_id: str, metrics: dict[str, Any], now: datetime
) -> None:
    if not metrics:
        return
    rawsql.run(
        s.connection(),
        _ADD_METRICS,
        {
            "version_id": version_id,
            "job_id": job.id,
            "dataset_id": job.dataset_id,
            "at": now,
            "metrics": metrics,
        },
    )


# The effect of each kind of job, as ``core.kinds`` names them. A code job's takes its
# runner's result; what it returns is a new version's artifact folder (or None).
ResultEffect = Callable[[Session, JobRow, dict[str, Any], Path, Path, datetime], Path | None]
# A job that runs no code does all it does here, and says what in ``log``.
InlineEffect = Callable[[Session, JobRow, datetime, list[str]], None]


def apply_result(
    s: Session,
    job: JobRow,
    result: dict[str, Any],
    staging: Path,
    artifacts_root: Path,
    now: datetime,
) -> Path | None:
    """Apply a completed code job's result (from its runner) to the registry. A new
    version's artifact folder is returned: ``staging`` becomes it (``place_artifacts``)
    once the transaction has committed, never before."""
    from core.kinds import KINDS  # it names the functions below: imported once they exist

    effect = KINDS[JobType(job.type)].apply_result
    if effect is None:
        raise ModelDeckError(f"{job.type} jobs run no code")
    return effect(s, job, result, staging, artifacts_root, now)


def trained(
    s: Session,
    job: JobRow,
    result: dict[str, Any],
    staging: Path,
    artifacts_root: Path,
    now: datetime,
) -> Path | None:
    """A training: a new version of its model, with the metrics it recorded."""
    version_id, number, final = _new_version(
        s,
        job,
        job.model_id,
        staging,
        artifacts_root,
        VersionStatus.trained,
        now,
        dataset_id=job.dataset_id,
        hyperparameters=job.params.get("hyperparameters", {}),
        code_fingerprint=job.params.get("code_fingerprint"),
        columns=job.params.get("columns"),
    )
    _record_metrics(s, job, version_id, result.get("metrics") or {}, now)
    if result.get("baseline") is not None or result.get("monitoring_error") is not None:
        _monitoring_baseline(s, job, version_id, number, result, now, new=True)
    return final


def imported(
    s: Session,
    job: JobRow,
    result: dict[str, Any],
    staging: Path,
    artifacts_root: Path,
    now: datetime,
) -> Path | None:
    """An import: a new version of a BYOM model (the model too, when it is new)."""
    name = job.params["model"]
    lock_keys(s, [f"modeldeck-model:{job.project_id}:{name}"])  # one new name at a time
    model = s.exec(
        select(Model).where(Model.project_id == job.project_id, Model.name == name)
    ).first()
    if model is None:
        model = Model(
            id=new_id("m"), project_id=job.project_id, name=name, kind="byom", created_at=now
        )
        s.add(model)
        s.flush()
    elif model.kind != "byom":
        raise ModelDeckError(f"{name!r} is a code model")
    elif not job.params.get("again"):
        same = identical_version(s, model.id, str(result.get("sha256") or ""))
        if same is not None:
            raise ModelDeckError(identical_message(job.params["source"], name, same))
    job.model_id = model.id
    source = {k: result.get(k) for k in ("source", "sha256", "size", "format", "class")}
    _, _, final = _new_version(
        s,
        job,
        model.id,
        staging,
        artifacts_root,
        VersionStatus.imported,
        now,
        source=source,
        code_fingerprint=f"sha256:{result.get('sha256', '')[:16]}",
        # The feature names it was fitted with, when it knows them (scikit-learn does).
        columns={"features": result["features"], "target": None}
        if isinstance(result.get("features"), list)
        else None,
    )
    return final


def evaluated(
    s: Session,
    job: JobRow,
    result: dict[str, Any],
    staging: Path,
    artifacts_root: Path,
    now: datetime,
) -> Path | None:
    """An evaluation: its metrics, and the version's status moves on (trained: evaluated)."""
    v = _version(s, job)
    metrics = result.get("metrics") or {}
    if not metrics:
        raise ModelDeckError("the evaluation recorded no metrics")
    _record_metrics(s, job, v.id, metrics, now)
    _set_status(s, job, v, now)
    _monitoring_baseline(s, job, v.id, v.number, result, now)
    return None


def stats_computed(
    s: Session,
    job: JobRow,
    result: dict[str, Any],
    staging: Path,
    artifacts_root: Path,
    now: datetime,
) -> Path | None:
    """A dataset's statistics for a version, kept as a record of their own."""
    v = _version(s, job)
    stats = result.get("statistics") or {}
    record = StatisticsRecord(
        version_id=v.id,
        job_id=job.id,
        dataset_id=job.dataset_id,
        at=now,
        rows=stats.get("rows"),
        statistics=stats,
    )
    s.add(record)
    v.updated_at = now
    s.add(v)
    cols = len(stats.get("columns", {}))
    job.add_event(
        JobEventKind.statistics_computed,
        f"statistics of {cols} columns of {stats.get('dataset') or 'the dataset'} stored",
        now,
        {"version": v.id, "dataset": job.dataset_id, "rows": stats.get("rows")},
    )
    _monitoring_baseline(s, job, v.id, v.number, result, now)
    return None


def predicted(
    s: Session,
    job: JobRow,
    result: dict[str, Any],
    staging: Path,
    artifacts_root: Path,
    now: datetime,
) -> Path | None:
    """A batch prediction: an event with the summary of what it wrote (the files stay in
    the job's output folder). A run that was going when its deployment was retired is
    recorded as it ended: what it scored is real."""
    d = _active_deployment(s, job, while_it_ran=True)
    summary = clean_summary(result.get("predictions"))
    files = f"{len(job.outputs or [])} output file(s)"
    job.add_event(
        JobEventKind.predictions_written,
        f"{summary_text(summary)}; {files}" if summary else files,
        now,
        {"deployment": d.id, "outputs": job.outputs, "summary": summary},
    )
    _monitoring_drift(s, job, d, result, now)
    return None


# -- monitoring (core.monitoring.record): a version's baseline, a batch run's drift ----------


def _monitoring_baseline(
    s: Session,
    job: JobRow,
    version_id: str,
    number: int,
    result: dict[str, Any],
    now: datetime,
    new: bool = False,
) -> None:
    from core.monitoring.record import record_baseline

    record_baseline(s, job, version_id, number, result, now, new=new)


def _monitoring_drift(
    s: Session, job: JobRow, d: Deployment, result: dict[str, Any], now: datetime
) -> None:
    from core.monitoring.record import record_drift

    record_drift(s, job, d, result, now)


def _dataset_file_info(value: Any) -> dict[str, Any] | None:
    """A job's ``dataset_file`` result, checked (the job's code could have written it)."""
    if not isinstance(value, dict):
        return None
    sha = value.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        return None
    info: dict[str, Any] = {"sha256": sha}
    for key in ("size", "rows", "columns"):
        n = value.get(key)
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            info[key] = n
    return info


_DATASETS = Dataset.__table__
_DATASET_READ = (
    core_select(
        _DATASETS.c.id, _DATASETS.c.name, _DATASETS.c.sha256, _DATASETS.c.rows, _DATASETS.c.columns
    )
    .where(_DATASETS.c.id == bindparam("dataset_id"))
    .with_for_update()  # jobs ending beside each other see its file change once
)


def record_dataset_read(s: Session, job: JobRow, result: dict[str, Any], now: datetime) -> None:
    """Keep the dataset file a job read (sha256, size, rows, columns) in the job's params and
    a ``dataset_read`` event; when the file changed since it was last seen, the dataset's
    rows, columns and sha256 follow it (a changed file is said in the event)."""
    info = _dataset_file_info(result.get("dataset_file"))
    if info is None or not job.dataset_id:
        return
    conn = s.connection()
    ds = rawsql.run(conn, _DATASET_READ, {"dataset_id": job.dataset_id}).first()
    if ds is None:
        return
    before = {"sha256": ds.sha256, "rows": ds.rows, "columns": ds.columns}
    changed = ds.sha256 is not None and ds.sha256 != info["sha256"]
    job.params = {**(job.params or {}), "dataset_file": info}
    rows = info.get("rows")
    message = f"read dataset {ds.name}: {rows if rows is not None else '?'} rows, "
    message += f"sha256 {info['sha256'][:12]}"
    details: dict[str, Any] = {"dataset": ds.id, "name": ds.name, **info, "changed": changed}
    if changed:
        message += f" (the file changed: it had {before['rows']} rows, sha256 "
        message += f"{(before['sha256'] or '')[:12]})"
        details["before"] = before
    if ds.sha256 != info["sha256"]:
        follow: dict[str, Any] = {"sha256": info["sha256"]}
        for key, value in (("rows", rows), ("columns", info.get("columns"))):
            # What the job could not count of a changed file is unknown now, not the old
            # file's; a file never hashed before (registered earlier) keeps its counts.
            if value is not None or changed:
                follow[key] = value
        conn.execute(update(_DATASETS).where(_DATASETS.c.id == ds.id).values(**follow))
    job.add_event(JobEventKind.dataset_read, message, now, details)


def apply_inline(s: Session, job: JobRow, now: datetime, log: list[str]) -> None:
    """Do a job that runs no code (approve, reject, deploy, retire) inside the transaction."""
    from core.kinds import KINDS  # it names the functions below: imported once they exist

    effect = KINDS[JobType(job.type)].apply_inline
    if effect is None:
        raise ModelDeckError(f"{job.type} jobs run code")
    effect(s, job, now, log)


def decided(s: Session, job: JobRow, now: datetime, log: list[str]) -> None:
    """An approval or a rejection: its record (on the evaluations it names), and the
    version's status moves on."""
    kind = JobType(job.type)
    v = _version(s, job)
    reason = job.params.get("reason", "")
    seen = _decision_evaluations(s, job, v)
    metrics = dict(seen[0]["metrics"]) if seen else None
    s.add(
        Approval(
            version_id=v.id,
            job_id=job.id,
            decision="approved" if kind == JobType.approve else "rejected",
            reason=reason,
            by=job.actor,
            at=now,
            metrics=metrics,
            evaluations=seen,
        )
    )
    _set_status(s, job, v, now)
    word = "approved" if kind == JobType.approve else "rejected"
    job.add_event(
        JobEventKind(word),
        f"version {v.number} {word} by {job.actor}: {reason}",
        now,
        {
            "version": v.id,
            "by": job.actor,
            "reason": reason,
            "metrics": metrics,
            "evaluations": seen,
        },
    )
    # One line of the log: a newline in the reason must not write lines of its own there.
    log.append(f"{word} version {v.id} by {job.actor}: {printable(reason)}")
    for ref in seen:
        log.append(
            f"  on evaluation {ref['job_id']} of dataset {ref['dataset']} "
            f"({ref['at']}): {numbers(ref['metrics'])}"
        )
    if not seen:
        log.append("  on no evaluation: the version has no evaluation metrics")


def deployed(s: Session, job: JobRow, now: datetime, log: list[str]) -> None:
    """A deployment: active from now, its schedule's next run set."""
    v = _version(s, job)
    expr = job.params.get("schedule")
    tz = job.params.get("timezone") or "UTC"
    same = identical_deployment(s, v.id, job.dataset_id or "", expr, tz)
    if same is not None:  # queued twice before either ran
        raise ModelDeckError(identical_deployment_message(same))
    d = Deployment(
        id=new_id("dep"),
        project_id=job.project_id,
        version_id=v.id,
        dataset_id=job.dataset_id,
        status=DeploymentStatus.active.value,
        schedule=expr,
        timezone=tz,
        next_run_at=cron.next_fire(expr, tz, now) if expr else None,
        created_at=now,
        job_id=job.id,
    )
    s.add(d)
    job.deployment_id = d.id
    _set_status(s, job, v, now)
    details = {
        "deployment": d.id,
        "schedule": expr,
        "timezone": tz,
        "next_run_at": d.next_run_at,
    }
    job.add_event(JobEventKind.deployment_created, f"deployment {d.id} active", now, details)
    add_deployment_event(
        s, d.id, DeploymentEventKind.created, f"deployed version {v.number}", now, details
    )
    log.append(f"deployed version {v.id} as {d.id}" + (f", schedule {expr} ({tz})" if expr else ""))


def retired(s: Session, job: JobRow, now: datetime, log: list[str]) -> None:
    """A deployment retired; its version too when no active deployment of it is left."""
    d = _active_deployment(s, job)
    reason = job.params.get("reason") or None
    d.status = DeploymentStatus.retired.value
    d.retired_at = now
    d.retire_reason = reason
    d.next_run_at = None
    s.add(d)
    why = f": {reason}" if reason else ""
    details = {"deployment": d.id, "by": job.actor, "reason": reason}
    job.add_event(JobEventKind.deployment_retired, f"deployment {d.id} retired{why}", now, details)
    add_deployment_event(
        s, d.id, DeploymentEventKind.retired, f"retired by {job.actor}{why}", now, details
    )
    log.append(f"retired deployment {d.id}{printable(why)}")  # one line, as above
    others = s.exec(
        select(Deployment).where(
            Deployment.version_id == d.version_id,
            Deployment.status == DeploymentStatus.active.value,
            Deployment.id != d.id,
        )
    ).first()
    v = s.get(ModelVersion, d.version_id)
    if others is None and v.status != VersionStatus.retired.value:
        job.add_event(
            JobEventKind.version_status,
            f"version {v.number} {v.status} → retired",
            now,
            {"version": v.id, "from": v.status, "to": "retired"},
        )
        v.status = VersionStatus.retired.value
        v.updated_at = now
        s.add(v)
        log.append(f"version {v.id} retired: no active deployment of it is left")
