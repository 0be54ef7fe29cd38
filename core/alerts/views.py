"""What the alert verbs hand the CLI and the TUI: frozen views, the webhook always masked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.views import _View


@dataclass(frozen=True)
class AlertView(_View):
    id: str
    project: str
    deployment: str | None
    webhook: str  # masked: scheme and host only (``https://hooks.slack.com/***``)
    format: str
    events: tuple[str, ...]
    created_at: datetime
    removed_at: datetime | None = None
    last_outcome: str | None = None  # delivered | not delivered | dropped | pending
    last_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryView(_View):
    """One try to deliver a notice."""

    id: int
    alert: str
    event: str
    project: str
    deployment: str | None
    job: str | None
    summary: str
    attempt: int
    at: datetime
    outcome: str  # delivered | error | dropped
    status_code: int | None
    error: str | None
    final: bool
