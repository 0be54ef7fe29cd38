"""Changes to a deployment: the jobs on it (retire, a batch prediction run now) and its
schedule (change, pause, resume; the next run is recomputed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import convert, lookup
from core import schedule as cron
from core.commands.submit import Submitter
from core.errors import ModelDeckError
from core.events import DeploymentEventKind
from core.inputs import checked_reason
from core.lifecycle import DeploymentStatus, JobType
from core.models import ModelVersion
from core.records import add_deployment_event, identical_deployment, identical_deployment_message
from core.views import DeploymentView, JobView


class Deployments:
    """Queues the jobs on a deployment and changes its schedule."""

    def __init__(self, submit: Submitter) -> None:
        self.submit = submit
        self.store = submit.store

    def deployment_job(self, job_type: JobType, deployment: str, **kw: Any) -> JobView:
        with self.store.writer() as s:
            d = lookup.deployment(s, deployment)
            if d.status != DeploymentStatus.active.value:
                verb = "retire" if job_type == JobType.retire else "run a batch prediction of"
                raise ModelDeckError(f"cannot {verb} deployment {d.id}: it is {d.status}")
            v = s.get(ModelVersion, d.version_id)
            job = self.submit.queue_job(
                s,
                job_type,
                d.project_id,
                model_id=v.model_id,
                version_id=v.id,
                deployment_id=d.id,
                dataset_id=d.dataset_id if job_type == JobType.batch_predict else None,
                **kw,
            )
            return self.submit.submitted(s, job)

    def retire(self, deployment: str, reason: str | None = None) -> JobView:
        """Retire a deployment; the reason (optional) is kept on it and in its events."""
        reason = checked_reason(reason)
        params = {"reason": reason} if reason else None
        return self.deployment_job(JobType.retire, deployment, params=params)

    def predict(self, deployment: str) -> JobView:
        """Run now: queue a manual batch prediction of an active deployment."""
        return self.deployment_job(JobType.batch_predict, deployment)

    def set_schedule(
        self,
        deployment: str,
        cron_expr: str | None = None,
        timezone: str | None = None,
        paused: bool | None = None,
    ) -> DeploymentView:
        """Change, pause or resume a deployment's schedule; the next run is recomputed."""
        expr = cron.validate_cron(cron_expr) if cron_expr else None
        if timezone:
            cron.zone(timezone)
        with self.store.writer() as s:
            d = lookup.deployment(s, deployment)
            if d.status != DeploymentStatus.active.value:
                raise ModelDeckError(f"deployment {d.id} is {d.status}: its schedule cannot change")
            if not (expr or d.schedule) and (timezone or paused is not None):
                raise ModelDeckError(
                    f"deployment {d.id} has no schedule: give one with --cron EXPR"
                )
            unchanged = (
                (expr is None or expr == d.schedule)
                and (timezone is None or timezone == (d.timezone or "UTC"))
                and (paused is None or paused == bool(d.paused))
            )
            if unchanged:  # paused twice, say: nothing to record, the next run kept
                return convert.deployment_view(s, d)
            if expr or timezone:
                same = identical_deployment(
                    s,
                    d.version_id,
                    d.dataset_id,
                    expr or d.schedule,
                    timezone or d.timezone or "UTC",
                    exclude=d.id,
                )
                if same is not None:
                    raise ModelDeckError(identical_deployment_message(same))
            changes: dict[str, Any] = {}
            if expr:
                changes["schedule"] = d.schedule = expr
            if timezone:
                changes["timezone"] = d.timezone = timezone
            if paused is not None:
                changes["paused"] = d.paused = paused
            now = self.store.now()
            d.next_run_at = (
                cron.next_fire(d.schedule, d.timezone, now) if d.schedule and not d.paused else None
            )
            s.add(d)
            kind = (
                DeploymentEventKind.schedule_paused
                if paused is True
                else DeploymentEventKind.schedule_resumed
                if paused is False
                else DeploymentEventKind.schedule_changed
            )
            who = self.store.actor()
            add_deployment_event(
                s,
                d.id,
                kind,
                f"schedule {d.schedule} ({d.timezone})",
                now,
                {**changes, "by": who},
            )
            s.commit()
            return convert.deployment_view(s, d)

    def preview_schedule(
        self, expr: str, timezone: str | None, n: int = 5, after: datetime | None = None
    ) -> list[datetime]:
        expr = cron.validate_cron(expr)
        return cron.preview(expr, timezone or "UTC", after or self.store.now(), n)
