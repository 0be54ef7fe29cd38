"""The Deployments tab: what serves, on which schedule, and how its last run went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from core.lifecycle import DeploymentStatus, JobType
from core.service import Deck
from core.views import DeploymentView, JobView
from tui.format import in_zone, mark_only, status_text, zone_text
from tui.modals import RetirePrompt
from tui.widgets import DeckTable, Polled, Row, kind_binding


def last_run(d: DeploymentView, styles: dict[str, str]) -> Any:
    """The status of its latest batch run as a mark (``▶`` running, ``✓``, ``✗``: the
    cell's width does not change while a run goes on) and when it ran, on the deployment's
    clock as its next run is, labelled with that zone."""
    if not d.last_run:
        return "-"
    text = mark_only(str(d.last_run["status"]), styles)
    text.append(f" {in_zone(d.last_run.get('at'), d.timezone)}")
    return text


def drift_cell(d: DeploymentView, styles: dict[str, str]) -> Any:
    """The drift status of the deployment's latest batch run (``-`` before its first)."""
    return status_text(d.drift_status, styles) if d.drift_status else "-"


class DeploymentsPane(Polled[tuple[list[DeploymentView], bool]], Vertical):
    """Deployments of a project; run now, pause or resume the schedule, retire."""

    poll_scale = 2.0
    # Whether an engine serves (the "(no engine)" mark) is not in the change marker: an
    # engine that takes the lease after the first fetch changes nothing else.
    refetch_seconds = 2.0

    BINDINGS: ClassVar[list[BindingType]] = [
        kind_binding(JobType.batch_predict),
        Binding("p", "pause", "Pause/resume", id="deployments.pause"),
        kind_binding(JobType.retire),
    ]

    def __init__(self, project: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.project = project
        self.deployments: list[DeploymentView] = []

    def compose(self) -> ComposeResult:
        table = DeckTable(id="deployments-table")
        # Narrower than all of them (80 columns), the table leaves out the deployment's id,
        # then the dataset, then the zone (the next run is labelled with it), then the
        # schedule: the deployment's screen (enter) shows them. A long version label is cut
        # to 28 cells before any of that (its model's name, with …: never its number), and
        # further down to 14 when the rest still does not fit.
        for name, drop in (
            ("id", 4),
            ("version", 0),
            ("status", 0),
            ("schedule", 1),
            ("zone", 2),
            ("next run", 0),
            ("last run", 0),
            ("drift", 0),
            ("dataset", 3),
        ):
            if name == "version":
                table.add_column(name, key=name, first=28, shrink=14, cut="name")
            else:
                table.add_column(name, key=name, drop=drop)
        yield table
        yield Label("", id="deployments-hint", classes="window")

    def on_mount(self) -> None:
        self.start_polling()

    def fetch(self, deck: Deck, state: None) -> tuple[list[DeploymentView], bool]:
        return deck.deployments(self.project), deck.serving_engine() is not None

    def show(self, data: tuple[list[DeploymentView], bool]) -> None:
        self.deployments, serving = data
        styles = self.styles_of_status
        rows = []
        for d in self.deployments:
            status = "paused" if d.status == "active" and d.paused else d.status
            next_run = in_zone(d.next_run_at, d.timezone) + d.unserved_mark(serving)
            rows.append(
                Row(
                    d.id,
                    [
                        d.short_id,  # two deployments of a version on a dataset differ by it
                        d.label,
                        status_text(status, styles),
                        d.schedule or "on demand",
                        zone_text(d.timezone),
                        next_run,
                        last_run(d, styles),
                        drift_cell(d, styles),
                        d.dataset,
                    ],
                )
            )
        table = self.query_one(DeckTable)
        # Room for a last run before the first: the columns stay when it starts.
        now = datetime.now(UTC)
        table.reserve(
            "last run",
            max((2 + len(in_zone(now, d.timezone)) for d in self.deployments), default=0),
        )
        table.sync(rows)
        active = sum(1 for d in self.deployments if d.status == "active")
        self.query_one("#deployments-hint", Label).update(
            f"{active} active of {len(self.deployments)} · enter: drift, plots, jobs, timeline"
        )
        self.screen.refresh_bindings()

    @property
    def current(self) -> DeploymentView | None:
        key = self.query_one(DeckTable).current_key
        return next((d for d in self.deployments if d.id == key), None)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.screen.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        d = self.current
        if d is not None:
            self.deck_app.open_deployment(d)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        d = self.current
        active = d is not None and d.status == DeploymentStatus.active.value
        if action in ("run_now", "retire"):
            return True if active else None
        if action == "pause":
            return True if active and d is not None and d.schedule else None
        return True

    def refusal(self, action: str) -> str | None:
        """Why a dimmed key does nothing (said when it is pressed)."""
        d = self.current
        if action not in ("run_now", "retire", "pause"):
            return None
        if d is None:
            return "no deployment on this row (deploy an approved version from the Models tab)"
        if d.status != DeploymentStatus.active.value:
            return f"deployment {d.short_id} of {d.label} is {d.status}"
        if action == "pause" and not d.schedule:
            return f"deployment {d.short_id} of {d.label} runs on demand: no schedule to pause"
        return None

    def _queued(self, job: JobView) -> None:
        self.notify(f"queued {job.type} job {job.short_id} ({job.target})")
        self.poll(force=True)

    def action_run_now(self) -> None:
        d = self.current
        if d is None:
            return
        deck = self.deck
        self.load("deployments.run", lambda: deck.predict(d.id), self._queued, if_idle=False)

    def action_pause(self) -> None:
        d = self.current
        if d is None or not d.schedule:
            return
        deck = self.deck

        def done(view: DeploymentView) -> None:
            self.notify(f"{view.label}: schedule {'paused' if view.paused else 'resumed'}")
            self.poll(force=True)

        self.load(
            "deployments.pause",
            lambda: deck.set_schedule(d.id, paused=not d.paused),
            done,
            if_idle=False,
        )

    def action_retire(self) -> None:
        d = self.current
        if d is None:
            return
        deck = self.deck

        def submit(values: dict[str, Any]) -> JobView:
            return deck.retire(d.id, (values.get("reason") or "").strip() or None)

        def queued(job: JobView | None) -> None:
            if job is not None:
                self._queued(job)

        stops = (
            "Its schedule stops for good." if d.schedule else "It can no longer be run on demand."
        )
        # Which one, when a version has several: its id, what it scores and when.
        when = f"{d.schedule} ({d.timezone})" if d.schedule else "on demand"
        question = (
            f"Retire deployment {d.id}?\n  version   {d.label}\n  scores    {d.dataset}\n"
            f"  schedule  {when}\n{stops}"
        )
        self.app.push_screen(RetirePrompt(question, submit), queued)

    def palette_commands(self) -> list[tuple[str, str, object]]:
        deck = self.deck
        return [
            (
                f"Run now: {d.label}",
                f"batch prediction of deployment {d.id[:10]} on {d.dataset}",
                lambda d=d: self.load(
                    "deployments.run", lambda: deck.predict(d.id), self._queued, if_idle=False
                ),
            )
            for d in self.deployments
            if d.status == "active"
        ]
