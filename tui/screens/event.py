"""Event detail: every field of one event of a job or of a deployment, its details
pretty-printed."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.views import DeploymentEventView, DeploymentView, EventView, JobView
from tui.format import literal, when_s
from tui.screens.base import DeckScreen
from tui.widgets import DeckFooter, TopBar


def _fields(*rows: tuple[str, RenderableType]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")  # a word longer than the line goes on the next: whole
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def event_table(event: EventView, job: JobView) -> Table:
    return _fields(
        ("event", literal(event.kind, "bold")),
        ("sequence", str(event.seq)),
        ("at", when_s(event.at)),
        ("message", literal(event.message, newlines=True)),
        ("job", literal(f"{job.id}  {job.type} {job.target}  ({job.status})")),
        ("project", literal(job.project)),
    )


def deployment_event_table(event: DeploymentEventView, d: DeploymentView) -> Table:
    return _fields(
        ("event", literal(event.kind, "bold")),
        ("at", when_s(event.at)),
        ("message", literal(event.message, newlines=True)),
        ("deployment", literal(f"{d.id}  {d.label}  ({d.status})")),
        ("project", literal(d.project)),
    )


class _EventDetail(DeckScreen):
    """An event's fields, then its details; ``j`` goes to its job (``action_open_job``)."""

    TITLE = "Event"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "open_job", "Its job", id="event.job"),
    ]

    def __init__(self, crumb: str, fields: Table, details: dict[str, object]) -> None:
        super().__init__()
        self._crumb = crumb
        self._fields = fields
        self._details = details

    def compose(self) -> ComposeResult:
        yield TopBar(self._crumb)
        with VerticalScroll(id="event-body"):
            yield Static(self._fields, id="event-fields")
            yield Static(Text("details", style="bold"), classes="section")
            details = json.dumps(self._details, indent=2, sort_keys=True, default=str)
            yield Static(literal(details, newlines=True), id="event-details")
        yield DeckFooter()


class EventScreen(_EventDetail):
    """One event of a job; ``j`` goes to its job when it was opened from elsewhere."""

    def __init__(self, event: EventView, job: JobView) -> None:
        crumb = f"modeldeck / {job.project} / job {job.short_id} / event {event.seq}"
        super().__init__(crumb, event_table(event, job), event.details)
        self.event = event
        self.job = job

    def action_open_job(self) -> None:
        self.deck_app.open_job(self.job.id, replace=True)  # back to it when it is below


class DeploymentEventScreen(_EventDetail):
    """One event of a deployment's timeline; ``j`` goes to the job it names (a run, a
    drift computed by one)."""

    def __init__(self, event: DeploymentEventView, deployment: DeploymentView) -> None:
        d = deployment
        crumb = f"modeldeck / {d.project} / deployment {d.short_id} / {event.kind}"
        super().__init__(crumb, deployment_event_table(event, d), event.details)
        self.event = event

    @property
    def job_id(self) -> str | None:
        job = self.event.details.get("job")
        return job if isinstance(job, str) and job else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_job":
            return True if self.job_id else None
        return True

    def refusal(self, action: str) -> str | None:
        if action == "open_job" and not self.job_id:
            return f"this {self.event.kind} event names no job"
        return None

    def action_open_job(self) -> None:
        if self.job_id:
            self.deck_app.open_job(self.job_id)
