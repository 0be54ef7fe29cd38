"""``deck.monitoring``: a deployment's drift runs and performance history, a version's
baseline, and a deployment's drift thresholds."""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlmodel import col, select

from core import lookup
from core.errors import ModelDeckError
from core.events import DeploymentEventKind
from core.lifecycle import DeploymentStatus, JobType
from core.models import Job
from core.monitoring import store as reads
from core.monitoring.record import thresholds
from core.monitoring.views import BaselineView, DriftRun
from core.records import add_deployment_event
from core.store import Store

MAX_PSI_THRESHOLD = 100.0


class Monitoring:
    """Monitoring's verbs, reached as ``deck.monitoring`` (reads settle ended jobs first)."""

    def __init__(self, store: Store, settle: Callable[[], None]) -> None:
        self.store = store
        self._settle = settle

    def drift(self, deployment: str, job: str | None = None) -> DriftRun | None:
        """The deployment's latest drift run, or the one of batch prediction ``job`` (a job
        of another deployment, or not a batch prediction, is refused); None when there is
        none (no run yet, or the version has no baseline)."""
        self._settle()
        with self.store.reader() as s:
            d = lookup.deployment(s, deployment)
            if job is None:
                runs = reads.drift_runs(s, d.id, limit=1)
                return runs[0] if runs else None
            j = lookup.job(s, job)
            if j.deployment_id != d.id or j.type != JobType.batch_predict.value:
                raise ModelDeckError(f"job {j.id} is not a batch prediction of deployment {d.id}")
            return reads.drift_run_for_job(s, j.id)

    def history(self, deployment: str) -> list[DriftRun]:
        """Every drift run of the deployment, newest first."""
        self._settle()
        with self.store.reader() as s:
            d = lookup.deployment(s, deployment)
            return reads.drift_runs(s, d.id)

    def last_batch_job(self, deployment: str) -> str | None:
        """The deployment's latest batch prediction job (to say why it has no drift run)."""
        with self.store.reader() as s:
            d = lookup.deployment(s, deployment)
            return s.exec(
                select(Job.id)
                .where(Job.deployment_id == d.id, Job.type == JobType.batch_predict.value)
                .order_by(col(Job.created_at).desc())
                .limit(1)
            ).first()

    def baseline(self, version: str) -> BaselineView | None:
        """The version's baseline, or None when it has none yet."""
        with self.store.reader() as s:
            v = lookup.version(s, version)
            return reads.baseline_view(s, v.id)

    def thresholds(self, deployment: str) -> tuple[float, float]:
        """The deployment's PSI thresholds: (warn from, alert from)."""
        with self.store.reader() as s:
            return thresholds(lookup.deployment(s, deployment))

    def set_thresholds(
        self, deployment: str, warn_psi: float | None = None, alert_psi: float | None = None
    ) -> tuple[float, float]:
        """Set an active deployment's PSI thresholds (either or both): its next runs' statuses
        use them; runs already kept keep theirs. ``0 < warn < alert``."""
        for name, value in (("--warn-psi", warn_psi), ("--alert-psi", alert_psi)):
            if value is not None and not (math.isfinite(value) and 0 < value <= MAX_PSI_THRESHOLD):
                raise ModelDeckError(
                    f"{name} takes a number above 0 and at most {MAX_PSI_THRESHOLD:g}, "
                    f"not {value!r}"
                )
        if warn_psi is None and alert_psi is None:
            raise ModelDeckError("give --warn-psi X and/or --alert-psi Y")
        with self.store.writer() as s:
            d = lookup.deployment(s, deployment)
            if d.status != DeploymentStatus.active.value:
                raise ModelDeckError(
                    f"deployment {d.id} is {d.status}: its thresholds cannot change"
                )
            warn, alert = thresholds(d)
            warn = warn_psi if warn_psi is not None else warn
            alert = alert_psi if alert_psi is not None else alert
            if not warn < alert:
                raise ModelDeckError(
                    f"the warn threshold ({warn:g}) must be below the alert threshold ({alert:g})"
                )
            d.warn_psi, d.alert_psi = warn, alert
            s.add(d)
            add_deployment_event(
                s,
                d.id,
                DeploymentEventKind.thresholds_changed,
                f"drift thresholds: warn from PSI {warn:g}, alert from {alert:g}",
                self.store.now(),
                {"warn_psi": warn, "alert_psi": alert},
            )
            s.commit()
            return warn, alert
