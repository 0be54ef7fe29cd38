"""Event detail: every field of one job event, its details pretty-printed."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.views import EventView, JobView
from tui.format import literal, when_s
from tui.screens.base import DeckScreen
from tui.widgets import DeckFooter, TopBar


def event_table(event: EventView, job: JobView) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("event", literal(event.kind, "bold"))
    grid.add_row("sequence", str(event.seq))
    grid.add_row("at", when_s(event.at))
    grid.add_row("message", literal(event.message, newlines=True))
    grid.add_row("job", literal(f"{job.id}  {job.type} {job.target}  ({job.status})"))
    grid.add_row("project", literal(job.project))
    return grid


class EventScreen(DeckScreen):
    """One event of a job; ``j`` goes to its job when it was opened from elsewhere."""

    TITLE = "Event"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "open_job", "Its job", id="event.job"),
    ]

    def __init__(self, event: EventView, job: JobView) -> None:
        super().__init__()
        self.event = event
        self.job = job

    def compose(self) -> ComposeResult:
        yield TopBar(
            f"modeldeck / {self.job.project} / job {self.job.short_id} / event {self.event.seq}"
        )
        with VerticalScroll(id="event-body"):
            yield Static(event_table(self.event, self.job), id="event-fields")
            yield Static(Text("details", style="bold"), classes="section")
            details = json.dumps(self.event.details, indent=2, sort_keys=True, default=str)
            yield Static(literal(details, newlines=True), id="event-details")
        yield DeckFooter()

    def action_open_job(self) -> None:
        self.deck_app.open_job(self.job.id, replace=True)  # back to it when it is below
