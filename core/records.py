"""Small helpers on the tables shared by the service and the engine."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from core.events import DeploymentEventKind, JobEventKind
from core.models import Deployment, DeploymentEvent, Job, JobEvent, ModelVersion
from core.schedule import same_schedule, same_zone
from core.text import metric_value, quoted, storable


def add_event(
    s: Session,
    job: Job,
    kind: JobEventKind,
    message: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> JobEvent:
    """Append an event to a job's timeline; sequence numbers come from the job row.

    Callers hold a write transaction (``BEGIN IMMEDIATE``), so two writers never take the
    same number.
    """
    event = JobEvent(
        job_id=job.id,
        seq=job.next_seq,
        at=at,
        kind=kind,
        message=storable(message),  # may hold a job's own text: never a NUL
        details=storable(details or {}),
    )
    job.next_seq += 1
    s.add(job)
    s.add(event)
    return event


def add_deployment_event(
    s: Session,
    deployment_id: str,
    kind: DeploymentEventKind,
    message: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    s.add(
        DeploymentEvent(
            deployment_id=deployment_id, at=at, kind=kind, message=message, details=details or {}
        )
    )


def identical_version(s: Session, model_id: str, sha256: str) -> ModelVersion | None:
    """The first version of a model imported from a file with this sha256, if any."""
    rows = s.exec(
        select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.number)
    )
    return next((v for v in rows if (v.source or {}).get("sha256") == sha256), None)


def identical_message(source: str, model: str, v: ModelVersion) -> str:
    sha = (v.source or {}).get("sha256", "")
    return (
        f"{quoted(source.rsplit('/', 1)[-1])} is identical to {model} v{v.number} "
        f"(sha256 {sha[:16]}…): import it anyway with --again"
    )


def identical_deployment(
    s: Session,
    version_id: str,
    dataset_id: str,
    schedule: str | None,
    timezone: str,
    exclude: str | None = None,
) -> Deployment | None:
    """An active deployment of the version on the dataset with the same schedule and time
    zone: a second one would score the same rows at the same times twice. ``exclude`` is a
    deployment that does not count (the one whose schedule changes)."""
    rows = s.exec(
        select(Deployment).where(
            Deployment.version_id == version_id,
            Deployment.dataset_id == dataset_id,
            Deployment.status == "active",
            Deployment.id != exclude,
        )
    )
    return next(
        (
            d
            for d in rows
            if same_schedule(d.schedule, schedule) and same_zone(d.timezone, timezone)
        ),
        None,
    )


def identical_deployment_message(d: Deployment) -> str:
    when = f"schedule {quoted(d.schedule)} ({d.timezone})" if d.schedule else "no schedule"
    return (
        f"an identical deployment is active: {d.id} (same version, dataset and {when}); "
        "it would score twice: retire it first, or give another schedule"
    )


# -- what a job's process writes ------------------------------------------------------------

# A line of events.jsonl longer than this is skipped unread (a job's runner writes a few
# hundred bytes a record; even a big confusion matrix stays well below it).
MAX_RECORD_BYTES = 1 << 20
_SHOWN_METRICS = 500  # characters of a metrics event's message
_EXCERPT = 200  # characters of a bad record kept in the event that skips it


class BadRecord(ValueError):
    """A line of a job's ``events.jsonl`` that is not a record the engine can take."""


@dataclass(frozen=True)
class JobRecord:
    """A valid line of ``events.jsonl``: the job event it becomes."""

    kind: JobEventKind
    message: str
    details: dict[str, Any]
    at: float | None = None  # when the job made it (its ``at``: seconds since the epoch)


def _is_number(value: Any) -> bool:
    """A JSON number a metric or a fraction may hold: no bool, no NaN, no int too big for a
    float (formatting it would fail)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return not math.isnan(float(value))
    except OverflowError:
        return False


def _metric_ok(value: Any) -> bool:
    """A number, null, or a (nested) list of them, as the runner's record_metrics writes."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif v is not None and not _is_number(v):
            return False
    return True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def parse_job_record(raw: bytes) -> JobRecord:
    """The job event one line of ``events.jsonl`` stands for; ``BadRecord`` saying what is
    wrong with it otherwise. Anything the job wrote is checked: the line is the job's."""
    if len(raw) > MAX_RECORD_BYTES:
        raise BadRecord(f"longer than {MAX_RECORD_BYTES} bytes")
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadRecord("not JSON") from None
    if not isinstance(rec, dict):
        raise BadRecord(f"not a JSON object but {type(rec).__name__} {_short(rec)}")
    at = rec.get("at")
    return replace(_record(rec), at=float(at) if _is_number(at) else None)


def _record(rec: dict[str, Any]) -> JobRecord:
    kind = rec.get("kind")
    if kind == JobEventKind.progress:
        fraction = rec.get("fraction")
        if not _is_number(fraction) or not 0 <= fraction <= 1:
            raise BadRecord(f"progress fraction {_short(fraction)} is not a number from 0 to 1")
        message = rec.get("message")
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise BadRecord(f"progress message {_short(message)} is not a string")
        return JobRecord(
            JobEventKind.progress,
            f"{round(100 * fraction)}%" + (f" {message}" if message else ""),
            {"fraction": fraction, "message": message},
        )
    if kind == JobEventKind.metrics_recorded:
        metrics = rec.get("metrics")
        if not isinstance(metrics, dict):
            raise BadRecord(f"metrics {_short(metrics)} are not a JSON object")
        for key, value in metrics.items():
            if not _metric_ok(value):
                raise BadRecord(
                    f"metric {_short(key)} is {_short(value)}, not a number or a list of numbers"
                )
        # Every metric recorded: a null (a NaN or an infinity the job gave) and a list too.
        shown = ", ".join(
            f"{k}={v:.4g}" if _is_number(v) else f"{k}={metric_value(v)}"
            for k, v in metrics.items()
        )
        if len(shown) > _SHOWN_METRICS:
            shown = shown[: _SHOWN_METRICS - 1] + "…"
        return JobRecord(
            JobEventKind.metrics_recorded, shown or "metrics recorded", {"metrics": metrics}
        )
    if kind == JobEventKind.code_used:
        return _code_used(rec)
    if kind == JobEventKind.metric_skipped:
        metric, reason, value = rec.get("metric"), rec.get("reason"), rec.get("value")
        if not all(isinstance(v, str) for v in (metric, reason, value)):
            raise BadRecord("metric_skipped needs text metric, reason and value")
        return JobRecord(
            JobEventKind.metric_skipped,
            f"metric {_short(metric)} skipped: {reason}",
            {"metric": metric, "reason": reason, "value": value},
        )
    if kind is None:
        raise BadRecord("no kind")
    raise BadRecord(f"unknown kind {_short(kind)}")


_CODE_SOURCES = {
    "version": "the version's own code",
    "repository": "the repository's model folder",
    "builtin": "built-in code",
}


def _code_used(rec: dict[str, Any]) -> JobRecord:
    """Which code a job ran: where from (``source``), its entry point, and the sha256
    fingerprint of the folder's files (none for built-in code only)."""
    source, entry = rec.get("source"), rec.get("entry")
    if source not in _CODE_SOURCES or not isinstance(entry, str):
        raise BadRecord(f"code_used source {_short(source)} or entry {_short(entry)} is not valid")
    details: dict[str, Any] = {"source": source, "entry": entry}
    for key in ("fingerprint", "dir", "pinned"):
        value = rec.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRecord(f"code_used {key} {_short(value)} is not a string")
        if value is not None:
            details[key] = value
    files, skipped = rec.get("files"), rec.get("skipped")
    if files is not None:
        if isinstance(files, bool) or not isinstance(files, int):
            raise BadRecord(f"code_used files {_short(files)} is not a count")
        details["files"] = files
    if skipped is not None:
        if not isinstance(skipped, list) or not all(isinstance(x, str) for x in skipped):
            raise BadRecord(f"code_used skipped {_short(skipped)} is not a list of paths")
        details["skipped"] = skipped
    message = f"runs {entry} from {_CODE_SOURCES[source]}"
    if "fingerprint" in details:
        message += f" ({details['fingerprint']})"
    if "pinned" in details:
        message += f"; copied into the new version's files ({details['pinned']}/)"
    return JobRecord(JobEventKind.code_used, message, details)


def excerpt(raw: bytes) -> str:
    """The start of a bad line, as text, for the event that skips it."""
    text = raw[: _EXCERPT * 4].decode("utf-8", errors="backslashreplace")
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def clean_result(data: Any) -> dict[str, Any] | None:
    """A job's ``result.json`` as the engine may use it: None when it is not a JSON object;
    fields of the wrong type dropped (a job's code could have written the file)."""
    if not isinstance(data, dict):
        return None
    out = storable(data)
    if not isinstance(out.get("status"), str):
        out.pop("status", None)
    if "error" in out and out["error"] is not None and not isinstance(out["error"], str):
        out["error"] = str(out["error"])
    code = out.get("exit_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        out.pop("exit_code")
    outputs = out.get("outputs")
    if outputs is not None:
        # Files inside the job's output folder only.
        out["outputs"] = [
            p
            for p in (outputs if isinstance(outputs, list) else [])
            if isinstance(p, str) and p and not p.startswith("/") and ".." not in p.split("/")
        ]
    metrics = out.get("metrics")
    if metrics is not None:
        out["metrics"] = {
            k: v for k, v in (metrics if isinstance(metrics, dict) else {}).items() if _metric_ok(v)
        }
    return out
