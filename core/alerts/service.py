"""The alert verbs: ``deck.alerts.add/list/remove/test/log``. Refusals are ModelDeckErrors
and change nothing; a webhook URL is only ever shown masked."""

from __future__ import annotations

import time
from typing import Any

from sqlmodel import Session, col, select

from core import lookup
from core.alerts import delivery
from core.alerts.rules import FORMATS, check_url, mask_url, parse_events
from core.alerts.scan import active_alerts, start_cursors_at_top
from core.alerts.tables import Alert, AlertDelivery, AlertNotice
from core.alerts.views import AlertView, DeliveryView
from core.clock import iso
from core.errors import ModelDeckError
from core.home import new_id
from core.lifecycle import DeploymentStatus
from core.models import Project
from core.store import Store
from core.text import quoted


class Alerts:
    """Adds, lists, removes and tests a project's alerts; lists their deliveries."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        project: str,
        webhook: str,
        events: str,
        deployment: str | None = None,
        fmt: str = "json",
    ) -> AlertView:
        """A new alert; the engine tells ``webhook`` about ``events`` from now on."""
        url = check_url(webhook)
        rules = parse_events(events)
        if fmt not in FORMATS:
            raise ModelDeckError(f"--format {quoted(fmt)}: use one of {', '.join(FORMATS)}")
        with self.store.writer() as s:
            p = lookup.project(s, project)
            dep_id = None
            if deployment is not None:
                d = lookup.deployment(s, deployment)
                if d.project_id != p.id:
                    raise ModelDeckError(f"deployment {d.id} is not in project {p.name}")
                if d.status != DeploymentStatus.active.value:
                    raise ModelDeckError(f"deployment {d.id} is {d.status}: it runs no more")
                dep_id = d.id
            if not active_alerts(s):
                start_cursors_at_top(s)  # the first alert: what happened before is not told
            row = Alert(
                id=new_id("al"),
                project_id=p.id,
                deployment_id=dep_id,
                webhook=url,
                format=fmt,
                events=",".join(r.text for r in rules),
                created_at=self.store.now(),
            )
            s.add(row)
            s.commit()
            return self._view(s, row, p.name)

    def list(self, project: str, include_removed: bool = False) -> list[AlertView]:
        with self.store.reader() as s:
            p = lookup.project(s, project)
            stmt = select(Alert).where(Alert.project_id == p.id)
            if not include_removed:
                stmt = stmt.where(col(Alert.removed_at).is_(None))
            rows = s.exec(stmt.order_by(col(Alert.created_at), col(Alert.id))).all()
            return [self._view(s, a, p.name) for a in rows]

    def get(self, ref: str) -> AlertView:
        with self.store.reader() as s:
            a = lookup.by_id_or_prefix(s, Alert, ref, "alert")
            return self._view(s, a, _project_name(s, a.project_id))

    def remove(self, ref: str) -> AlertView:
        """Remove an alert: nothing more is told to its webhook (its record stays)."""
        with self.store.writer() as s:
            a = lookup.by_id_or_prefix(s, Alert, ref, "alert")
            if a.removed_at is not None:
                raise ModelDeckError(f"alert {a.id} was already removed")
            a.removed_at = self.store.now()
            s.add(a)
            s.commit()
            return self._view(s, a, _project_name(s, a.project_id))

    def test(self, ref: str, backoff: float = delivery.BACKOFF) -> list[DeliveryView]:
        """Send a sample notice now, from this process, with the engine's tries and
        back-off; every try recorded. The tries, the last one final."""
        with self.store.writer() as s:
            a = lookup.by_id_or_prefix(s, Alert, ref, "alert")
            if a.removed_at is not None:
                raise ModelDeckError(f"alert {a.id} was removed: it is not tested")
            now = self.store.now()
            name = _project_name(s, a.project_id)
            body = {
                "event": "test",
                "project": name,
                "deployment": a.deployment_id,
                "version": None,
                "job": None,
                "summary": f"a test of alert {a.id} of {name}: it listens for {a.events}",
                "details": {"alert": a.id, "events": a.events.split(",")},
                "at": iso(now),
            }
            notice = AlertNotice(
                alert_id=a.id,
                source=f"test:{new_id('t')}",
                event="test",
                project_id=a.project_id,
                deployment_id=a.deployment_id,
                body=body,
                created_at=now,
            )
            s.add(notice)
            s.commit()
            notice_id = notice.id
        assert notice_id is not None
        while (wait := delivery.try_once(self.store, notice_id, backoff)) is not None:
            time.sleep(wait)
        return self.log(name, notice=notice_id)

    def log(
        self, project: str, alert: str | None = None, limit: int = 50, notice: int | None = None
    ) -> list[DeliveryView]:
        """The tries to deliver the project's notices (of one alert), newest last."""
        with self.store.reader() as s:
            p = lookup.project(s, project)
            stmt = (
                select(AlertDelivery, AlertNotice)
                .join(AlertNotice, col(AlertNotice.id) == AlertDelivery.notice_id)
                .where(AlertNotice.project_id == p.id)
            )
            if alert is not None:
                a = lookup.by_id_or_prefix(s, Alert, alert, "alert")
                if a.project_id != p.id:
                    raise ModelDeckError(f"alert {a.id} is not in project {p.name}")
                stmt = stmt.where(AlertDelivery.alert_id == a.id)
            if notice is not None:
                stmt = stmt.where(AlertDelivery.notice_id == notice)
            rows = s.exec(stmt.order_by(col(AlertDelivery.id).desc()).limit(limit)).all()
            return [_delivery(d, n, p.name) for d, n in reversed(rows)]

    def _view(self, s: Session, a: Alert, project: str) -> AlertView:
        last = s.exec(
            select(AlertDelivery)
            .where(AlertDelivery.alert_id == a.id)
            .order_by(col(AlertDelivery.id).desc())
            .limit(1)
        ).first()
        outcome = None
        if last is not None:
            if last.outcome == "delivered":
                outcome = "delivered"
            elif last.outcome == "dropped":
                outcome = "dropped"
            else:
                outcome = "not delivered" if last.final else "retrying"
        return AlertView(
            id=a.id,
            project=project,
            deployment=a.deployment_id,
            webhook=mask_url(a.webhook),
            format=a.format,
            events=tuple(a.events.split(",")),
            created_at=a.created_at,
            removed_at=a.removed_at,
            last_outcome=outcome,
            last_at=last.at if last is not None else None,
        )


def _project_name(s: Session, project_id: str) -> str:
    p = s.get(Project, project_id)
    return p.name if p is not None else project_id


def _delivery(d: AlertDelivery, n: AlertNotice, project: str) -> DeliveryView:
    body: dict[str, Any] = n.body or {}
    return DeliveryView(
        id=d.id or 0,
        alert=d.alert_id,
        event=n.event,
        project=project,
        deployment=n.deployment_id,
        job=n.job_id,
        summary=str(body.get("summary", "")),
        attempt=d.attempt,
        at=d.at,
        outcome=d.outcome,
        status_code=d.status_code,
        error=d.error,
        final=d.final,
    )
