"""The alert tables. ``alert_notice`` and ``alert_delivery`` are append-only: a notice is
something an alert must tell its webhook (found once per alert and occurrence); each try to
deliver it is a delivery row, the last one ``final``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models import DEFERRED


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Alert(SQLModel, table=True):
    """A webhook told about events of a project (or of one of its deployments)."""

    model_config = DEFERRED

    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    deployment_id: str | None = Field(default=None, foreign_key="deployment.id")
    webhook: str  # the whole URL: it is shown masked (tokens live in its path and query)
    format: str  # "json" or "slack" (``{"text": ...}``, which Teams reads too)
    events: str  # the EVENTS as given, normalised: "failed,drift:warn,metric:f1<0.8"
    created_at: datetime
    removed_at: datetime | None = None  # removed alerts are kept for their deliveries


class AlertNotice(SQLModel, table=True):
    """One thing an alert must tell its webhook: once per alert and ``source`` (the job or
    the deployment event it was found in, and the rule), whatever engine found it."""

    model_config = DEFERRED

    __tablename__ = "alert_notice"
    __table_args__ = (UniqueConstraint("alert_id", "source"),)
    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(foreign_key="alert.id", index=True)
    source: str
    event: str  # failed | missed | drift | metric | test
    project_id: str
    deployment_id: str | None = None
    job_id: str | None = None
    body: dict = _json()  # the JSON body (the ``json`` format), at the time it was found
    created_at: datetime


class AlertDelivery(SQLModel, table=True):
    """One try to deliver a notice and its outcome; ``final`` on the last one (delivered,
    given up, or dropped because the alert was removed)."""

    model_config = DEFERRED

    __tablename__ = "alert_delivery"
    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="alert_notice.id", index=True)
    alert_id: str = Field(index=True)
    attempt: int
    at: datetime
    outcome: str  # delivered | error | gave_up | dropped
    status_code: int | None = None
    error: str | None = None
    final: bool = False


class AlertCursor(SQLModel, table=True):
    """How far the engine has looked for alerts: the last id seen of a timeline table."""

    model_config = DEFERRED

    __tablename__ = "alert_cursor"
    name: str = Field(primary_key=True)
    position: int = 0
