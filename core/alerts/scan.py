"""Finding what alerts must tell: the engine looks at the job and deployment timelines past
a cursor and turns each occurrence an active alert listens for into a notice.

Why a cursor over the timelines, not a hook where a job's outcome is recorded: outcomes are
recorded in several places (the engine, its recovery, a command reading while no engine
serves), and schedule misses in the scheduler; every one of them appends an event. An event
id past the cursor is looked at once. A notice is unique per alert and occurrence
(``alert_notice``'s unique key), and is written in the transaction that moves the cursor: an
engine that stops between the two leaves the cursor behind and the next engine finds the same
occurrences again, and the unique key keeps them from being told twice. The cursor is kept in
the database (``alert_cursor``), so a restart neither repeats nor loses an alert; only events
at or after an alert's creation count for it.

On PostgreSQL a sequence does not hand out ids in commit order, so each look also goes over
the last ``LOOKBACK`` ids below the cursor again (SQLite commits in id order).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select as core_select
from sqlmodel import Session, col, func, select

from core.alerts.rules import Rule, parse_events
from core.alerts.tables import Alert, AlertCursor, AlertNotice
from core.clock import iso, utc
from core.db import is_sqlite
from core.events import DeploymentEventKind, JobEventKind
from core.lifecycle import JobType
from core.models import Deployment, DeploymentEvent, Job, JobEvent, Model, ModelVersion, Project
from core.store import Store

log = logging.getLogger("modeldeck.alerts")

CHUNK = 5000  # ids of a timeline looked at in one go
LOOKBACK = 200  # ids below the cursor looked at again where ids may commit out of order
JOB_KINDS = (JobEventKind.failed.value, JobEventKind.completed.value)
MISSED_KINDS = (
    DeploymentEventKind.schedule_missed.value,
    DeploymentEventKind.schedule_skipped.value,
)
TOP_FEATURES = 5  # drifting features named in a drift notice
# Whether any alert is active: the engine's look every SCAN_EVERY, one statement and no
# transaction (an idle engine's most frequent read).
_ANY_ACTIVE = (
    core_select(Alert.__table__.c.id).where(Alert.__table__.c.removed_at.is_(None)).limit(1)
)


@dataclass(frozen=True)
class Found:
    """An occurrence an alert must tell: what becomes an ``alert_notice`` row."""

    alert_id: str
    source: str
    event: str
    project_id: str
    deployment_id: str | None
    job_id: str | None
    body: dict[str, Any]


def active_alerts(s: Session) -> list[Alert]:
    return list(s.exec(select(Alert).where(col(Alert.removed_at).is_(None))))


def rules_of(alert: Alert, *kinds: str) -> list[Rule]:
    """The alert's rules of those kinds (its EVENTS were checked when it was added)."""
    return [r for r in parse_events(alert.events) if r.kind in kinds]


def timeline_tops(s: Session) -> dict[str, int]:
    """The newest id of each timeline (0 when empty)."""
    return {
        "job_event": s.exec(select(func.max(JobEvent.id))).one() or 0,
        "deployment_event": s.exec(select(func.max(DeploymentEvent.id))).one() or 0,
    }


def _positions(s: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Each timeline's newest id, and how far the scans have looked."""
    tops = timeline_tops(s)
    return tops, {n: (c.position if (c := s.get(AlertCursor, n)) else 0) for n in tops}


def start_cursors_at_top(s: Session) -> None:
    """Put the cursors at the newest events (for a first alert: history is not alerted on)."""
    for name, top in timeline_tops(s).items():
        row = s.get(AlertCursor, name)
        if row is None:
            s.add(AlertCursor(name=name, position=top))
        else:
            row.position = max(row.position, top)
            s.add(row)


class Scanner:
    """Looks at the timelines past the cursors and writes the notices found; returns their
    ids for the engine's courier."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lookback = 0 if is_sqlite(store.db_url) else LOOKBACK
        self._drift_missing = False

    def scan(self) -> tuple[list[int], bool]:
        """The ids of new notices, and whether any alert is active."""
        if not self.store.read_rows(_ANY_ACTIVE):
            return [], False
        with self.store.reader() as s:
            alerts = active_alerts(s)
            if not alerts:
                return [], False
            tops, cursors = _positions(s)
        if all(tops[n] <= cursors[n] for n in tops):
            return [], True
        with self.store.writer() as s:
            ends = {n: min(tops[n], cursors[n] + CHUNK) for n in tops}
            found = [
                *self._jobs(s, alerts, cursors["job_event"], ends["job_event"]),
                *self._missed(s, alerts, cursors["deployment_event"], ends["deployment_event"]),
            ]
            ids = self._write(s, found)
            for name, end in ends.items():
                row = s.get(AlertCursor, name) or AlertCursor(name=name)
                row.position = max(row.position, end)
                s.add(row)
            s.commit()
        return ids, True

    def caught_up(self) -> bool:
        """Whether the cursors are at the timelines' newest events (or no alert listens):
        everything that happened so far has been looked at."""
        if not self.store.read_rows(_ANY_ACTIVE):
            return True
        with self.store.reader() as s:
            tops, cursors = _positions(s)
        return all(tops[n] <= cursors[n] for n in tops)

    # -- what is written ------------------------------------------------------------------

    def _write(self, s: Session, found: list[Found]) -> list[int]:
        if not found:
            return []
        known = {
            (a, src)
            for a, src in s.exec(
                select(AlertNotice.alert_id, AlertNotice.source).where(
                    col(AlertNotice.source).in_({f.source for f in found})
                )
            )
        }
        now = self.store.now()
        rows = []
        for f in found:
            if (f.alert_id, f.source) in known:
                continue
            known.add((f.alert_id, f.source))
            row = AlertNotice(
                alert_id=f.alert_id,
                source=f.source,
                event=f.event,
                project_id=f.project_id,
                deployment_id=f.deployment_id,
                job_id=f.job_id,
                body=f.body,
                created_at=now,
            )
            s.add(row)
            rows.append(row)
        s.flush()
        return [r.id for r in rows if r.id is not None]

    # -- the job timeline: failures, and batch runs' drift and metrics ----------------------

    def _jobs(self, s: Session, alerts: list[Alert], after: int, upto: int) -> Iterable[Found]:
        events = s.exec(
            select(JobEvent.kind, JobEvent.at, Job)
            .join(Job, col(Job.id) == JobEvent.job_id)
            .where(
                col(JobEvent.id) > after - self.lookback,
                col(JobEvent.id) <= upto,
                col(JobEvent.kind).in_(JOB_KINDS),
            )
            .order_by(col(JobEvent.id))
        ).all()
        for kind, at, job in events:
            mine = [a for a in alerts if _concerns(a, job.project_id, job.deployment_id, at)]
            if not mine:
                continue
            if kind == JobEventKind.failed.value:
                for a in mine:
                    if rules_of(a, "failed"):
                        yield self._failed(s, a, job, at)
            elif job.type == JobType.batch_predict.value and job.deployment_id:
                yield from self._batch_run(s, mine, job, at)

    def _failed(self, s: Session, alert: Alert, job: Job, at: datetime) -> Found:
        context = _context(s, job.project_id, job.version_id, job.deployment_id)
        target = f" of deployment {job.deployment_id}" if job.deployment_id else ""
        summary = f"{job.type} job {job.id}{target} in {context['project']} failed: {job.error}"
        details = {
            "type": job.type,
            "status": job.status,
            "error": job.error,
            "trigger": job.trigger,
            "exit_code": job.exit_code,
            "version_id": job.version_id,
        }
        return _found(alert, f"job:{job.id}:failed", "failed", job, context, summary, details, at)

    def _batch_run(
        self, s: Session, alerts: list[Alert], job: Job, at: datetime
    ) -> Iterable[Found]:
        rules = {a.id: rules_of(a, "drift", "metric") for a in alerts}
        if not any(rules.values()):
            return
        run = self._drift_run(s, job.id)
        if run is None:
            return
        context = _context(s, job.project_id, job.version_id, job.deployment_id)
        where = f"deployment {job.deployment_id} ({context['version']}), job {job.id}"
        for a in alerts:
            for rule in rules[a.id]:
                if rule.kind == "drift" and rule.drift_hit(run.status):
                    worst = [f for f in run.features if f.status != "ok"][:TOP_FEATURES]
                    named = ", ".join(f"{f.name} {f.status}" for f in worst) or "prediction"
                    summary = f"drift {run.status} on {where}: {named}"
                    yield _found(
                        a,
                        f"drift:{job.id}",
                        "drift",
                        job,
                        context,
                        summary,
                        _drift_details(run),
                        at,
                    )
                elif rule.kind == "metric" and rule.metric in run.metrics:
                    value = run.metrics[rule.metric]
                    if rule.metric_hit(value):
                        summary = (
                            f"{rule.metric}={value:.4g} {rule.op} {rule.threshold:g} on {where}"
                        )
                        details = {
                            "metric": rule.metric,
                            "value": value,
                            "op": rule.op,
                            "threshold": rule.threshold,
                            "rule": rule.text,
                            "metrics": dict(run.metrics),
                        }
                        yield _found(
                            a,
                            f"metric:{job.id}:{rule.text}",
                            "metric",
                            job,
                            context,
                            summary,
                            details,
                            at,
                        )

    def _drift_run(self, s: Session, job_id: str) -> Any:
        """The batch run's drift (``core.monitoring.store``), or None when there is none or
        monitoring is not installed."""
        try:
            from core.monitoring.store import drift_run_for_job  # type: ignore[import-not-found]
        except ImportError:
            if not self._drift_missing:
                log.warning("drift alerts need core.monitoring.store, which is missing")
                self._drift_missing = True
            return None
        return drift_run_for_job(s, job_id)

    # -- the deployment timeline: missed schedules -----------------------------------------

    def _missed(self, s: Session, alerts: list[Alert], after: int, upto: int) -> Iterable[Found]:
        listening = [a for a in alerts if rules_of(a, "missed")]
        if not listening:
            return
        rows = s.exec(
            select(DeploymentEvent, Deployment)
            .join(Deployment, col(Deployment.id) == DeploymentEvent.deployment_id)
            .where(
                col(DeploymentEvent.id) > after - self.lookback,
                col(DeploymentEvent.id) <= upto,
                col(DeploymentEvent.kind).in_(MISSED_KINDS),
            )
            .order_by(col(DeploymentEvent.id))
        ).all()
        for ev, dep in rows:
            for a in listening:
                if not _concerns(a, dep.project_id, dep.id, ev.at):
                    continue
                context = _context(s, dep.project_id, dep.version_id, dep.id)
                summary = (
                    f"deployment {dep.id} ({context['version']}) in {context['project']}: "
                    f"{ev.message}"
                )
                details = {
                    "kind": ev.kind,
                    "schedule": dep.schedule,
                    "timezone": dep.timezone,
                    **_plain(ev.details),
                }
                yield Found(
                    alert_id=a.id,
                    source=f"deployment_event:{ev.id}",
                    event="missed",
                    project_id=dep.project_id,
                    deployment_id=dep.id,
                    job_id=(ev.details or {}).get("running_job"),
                    body=_body(
                        "missed",
                        context,
                        (ev.details or {}).get("running_job"),
                        summary,
                        details,
                        ev.at,
                    ),
                )


def _concerns(alert: Alert, project_id: str, deployment_id: str | None, at: datetime) -> bool:
    return (
        alert.project_id == project_id
        and (alert.deployment_id is None or alert.deployment_id == deployment_id)
        and utc(at) >= utc(alert.created_at)
    )


def _context(
    s: Session, project_id: str, version_id: str | None, deployment_id: str | None
) -> dict[str, Any]:
    project = s.get(Project, project_id)
    label = None
    if version_id:
        v = s.get(ModelVersion, version_id)
        m = s.get(Model, v.model_id) if v else None
        label = f"{m.name}:{v.number}" if v and m else version_id
    return {
        "project": project.name if project else project_id,
        "deployment": deployment_id,
        "version": label,
    }


def _body(
    event: str,
    context: dict[str, Any],
    job_id: str | None,
    summary: str,
    details: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """The documented JSON body."""
    return {
        "event": event,
        "project": context["project"],
        "deployment": context["deployment"],
        "version": context["version"],
        "job": job_id,
        "summary": summary,
        "details": details,
        "at": iso(at),
    }


def _found(
    alert: Alert,
    source: str,
    event: str,
    job: Job,
    context: dict[str, Any],
    summary: str,
    details: dict[str, Any],
    at: datetime,
) -> Found:
    return Found(
        alert_id=alert.id,
        source=source,
        event=event,
        project_id=job.project_id,
        deployment_id=job.deployment_id,
        job_id=job.id,
        body=_body(event, context, job.id, summary, details, at),
    )


def _drift_details(run: Any) -> dict[str, Any]:
    def feature(f: Any) -> dict[str, Any]:
        return {"name": f.name, "psi": f.psi, "ks": f.ks, "status": f.status}

    return {
        "status": run.status,
        "features": [feature(f) for f in run.features],
        "prediction": None
        if run.prediction is None
        else {"psi": run.prediction.psi, "status": run.prediction.status},
        "baseline": {"dataset": run.baseline_dataset, "rows": run.baseline_rows},
        "scored": {"dataset": run.scored_dataset, "rows": run.scored_rows},
        "warn_psi": run.warn_psi,
        "alert_psi": run.alert_psi,
        "metrics": dict(run.metrics),
    }


def _plain(details: dict[str, Any] | None) -> dict[str, Any]:
    """A deployment event's details as JSON values (times as ISO text), the long lists cut."""
    out: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if key == "fire_times":
            continue
        out[key] = iso(value) if isinstance(value, datetime) else value
    return out
