"""Job: what a job is and was, its log as it is written, and its events."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Static

from core.lifecycle import FINAL_STATUSES, can_stop
from core.service import Deck
from core.views import EventView, JobView, PredictionsView
from tui.format import Clamped, clock_time, duration, literal, status_text, when_s
from tui.logview import LogPane
from tui.screens.base import DeckScreen
from tui.tabs.jobs import job_target, stop_job
from tui.widgets import DeckFooter, DeckTable, Polled, Row, TopBar

LABEL_WIDTH = 9  # "exit code", "finished": the header's labels line up under each other
ERROR_LINES = 3  # of a long error (the whole one is in the log and on the failed event)


def job_header(
    job: JobView, now: datetime, styles: dict[str, str], silent: float | None = None
) -> RenderableType:
    """The job's fields as a two-column grid of label/value pairs; ``silent``: seconds its
    host's engines have not been heard from (a running job's log then stops short), said
    under the grid."""
    grid = Table.grid(padding=(0, 1), expand=True)
    for _ in range(2):
        grid.add_column(style="dim", no_wrap=True, min_width=LABEL_WIDTH)
        grid.add_column(ratio=1)
    where = f"{job.host} pid {job.pid}" if job.host and job.pid else job.host or "-"
    pairs: list[tuple[str, Text | str]] = [
        ("type", job.type),
        ("status", status_text(job.status, styles)),
        ("target", job_target(job)),  # a training's --set overrides too
        ("trigger", literal(f"{job.trigger} by {job.actor}")),
        ("created", when_s(job.created_at)),
        ("dataset", literal(job.dataset or "-")),
        ("started", when_s(job.started_at)),
        ("duration", duration(job.duration(now))),
        ("finished", when_s(job.finished_at)),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
        ("host", literal(where, no_wrap=True)),  # a long host name is cut, not wrapped
        ("executor", literal(job.executor)),
    ]
    for i in range(0, len(pairs), 2):
        (a, av), (b, bv) = pairs[i], pairs[i + 1]
        grid.add_row(a, av, b, bv)
    if job.executor != "local":
        asked = " ".join(f"{k}={v}" for k, v in job.resources.items()) or "-"
        grid.add_row("submission", literal(job.submission_id or "-"), "resources", literal(asked))
    # The error and the outputs take the whole width, under the pairs.
    wide = Table.grid(padding=(0, 1), expand=True)
    wide.add_column(style="dim", no_wrap=True, min_width=grid.columns[0].min_width)
    wide.add_column(ratio=1)
    if job.error:
        error = Clamped(literal(job.error, styles.get("failed", "")), ERROR_LINES)
        wide.add_row("error", error)
    if job.outputs:
        # File names (their folder once): full paths were cut off with nothing to open.
        names = [Path(p).name for p in job.outputs[:6]]
        shown = ", ".join(names) + (" …" if len(job.outputs) > 6 else "")
        folder = str(Path(job.outputs[0]).parent)
        wide.add_row("outputs", literal(f"{shown} (in {folder})"))
    outer = Table.grid(expand=True)
    outer.add_row(grid)
    if wide.row_count:
        outer.add_row(wide)
    if silent is not None:
        warning = literal(
            f"host {job.host} not heard from for {duration(silent)}: its engine may be gone, "
            "and the job is failed as lost if the host stays silent",
            styles.get("failed", ""),
        )
        outer.add_row(warning)
    return outer


# A probability column of predictions.csv (the scorer's ``proba_<class>``, as
# core.monitoring.jobside names them): shown rounded, the file keeps every digit.
PROBA_PREFIX = "proba_"
PROBA_DIGITS = 3
# Rows the log and the events keep under a batch prediction's preview: the log's label, its
# border and 3 lines; the preview takes what is left (its first rows up to 10).
BODY_MIN = 6
PREVIEW_FRAME = 3  # the preview's summary, its columns' names and its border


def preview_cell(column: str, cell: str) -> Text:
    """A cell of the preview as shown: a probability rounded to ``PROBA_DIGITS`` decimals
    (``0.8312345678`` as ``0.831``), anything else literal."""
    if column.startswith(PROBA_PREFIX):
        try:
            value = float(cell)
        except ValueError:
            return literal(cell)
        if math.isfinite(value):
            return Text(f"{value:.{PROBA_DIGITS}f}", end="")
    return literal(cell)


def predictions_preview(preview: PredictionsView, most: int | None = None) -> RenderableType:
    """The head of predictions.csv as a table under its summary, every cell literal (a
    probability rounded): the summary, the columns' names, the first rows (at most ``most``,
    as many as the screen leaves room for)."""
    summary = literal(preview.summary_text, style="bold")
    if not preview.columns:
        return Text.assemble(summary, "\n", Text("no predictions.csv to preview", style="dim"))
    rows = preview.rows if most is None else preview.rows[: max(1, most)]
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold dim")
    for name in preview.columns:
        # A column's name whole (up to 16 cells): long values give up their ends first.
        wide = min(len(name), 16)
        table.add_column(literal(name), no_wrap=True, overflow="ellipsis", min_width=wide)
    names = preview.columns
    for row in rows:
        table.add_row(
            *(preview_cell(names[i] if i < len(names) else "", c) for i, c in enumerate(row))
        )
    head = Text.assemble(summary, (f"  ·  its first {len(rows)} rows", "dim"))
    head.no_wrap = True
    head.overflow = "ellipsis"
    return Group(head, table)


# The job, its new events, its host's silence while it runs, its lost host once it failed.
Fetched = tuple[JobView, list[EventView], float | None, str | None]


class JobScreen(Polled[Fetched], DeckScreen):
    """One job: header, live log, events timeline."""

    TITLE = "Job"
    # Also without news: a Deck read records the end of a job whose engine has gone.
    refetch_seconds = 1.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop", id="job.stop"),
        Binding("r", "rerun", "Run again", id="job.rerun"),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.job: JobView | None = None
        self.events: list[EventView] = []
        self.silent: float | None = None
        self._header_shown: object = None
        self._fitted_to = -1  # the header height the predictions preview was last fitted to
        self.predictions: PredictionsView | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"modeldeck / job {self.job_id[:10]}")
        yield Static("loading…", id="job-header")
        yield Static("", id="job-predictions")
        with Horizontal(id="job-body"):
            yield LogPane(self.job_id, id="log-pane")
            with Vertical(id="events-pane"):
                yield Label("events", classes="window")
                table = DeckTable(id="events")
                # At 80 columns the pane is 30 wide: the time goes (enter shows it), then the
                # message and the event's name give up room, cut with …, enough for numbers
                # of four digits (a job of many progress reports) to fit too.
                table.add_column("#", key="seq")
                table.add_column("at", key="at", drop=1)
                table.add_column("event", key="kind", shrink=9)
                table.add_column("message", key="message", shrink=7)
                yield table
        yield DeckFooter()

    def on_mount(self) -> None:
        self.start_polling()

    def fetch(self, deck: Deck, state: None) -> Fetched:
        after = self.events[-1].seq if self.events else 0
        job = deck.job(self.job_id)
        final = job.status in FINAL_STATUSES
        silent = None if final else deck.hosts.silent_for(job.host)
        lost = deck.hosts.lost_host(job) if final else None
        return job, deck.events(self.job_id, after_seq=after), silent, lost

    def show(self, result: Fetched) -> None:
        job, new_events, self.silent, lost = result
        status_changed = self.job is None or self.job.status != job.status
        if self.job is None:
            self.query_one(TopBar).set_title(
                f"modeldeck / {job.project} / job {job.short_id} ({job.type} {job.target})"
            )
        self.job = job
        self._show_header()
        known = {e.seq for e in self.events}
        # Two fetches can overlap and bring the same events: only unseen ones are new (and
        # only they may move the cursor to follow the end).
        new_events = [e for e in new_events if e.seq not in known]
        if new_events:
            self.events.extend(new_events)
            table = self.query_one("#events", DeckTable)
            table.sync(
                [
                    Row(str(e.seq), [str(e.seq), clock_time(e.at), e.kind, e.message])
                    for e in self.events
                ]
            )
            if table.cursor_row >= table.row_count - len(new_events) - 1:
                table.move_cursor(row=table.row_count - 1, animate=False)
        if job.status in FINAL_STATUSES:
            pane = self.query_one(LogPane)
            if lost is not None:
                pane.host_lost(lost)
            else:
                pane.job_finished()
            if job.type == "batch_predict" and self.predictions is None:
                self._load_predictions(job.id)
        if status_changed:
            self.refresh_bindings()

    def unchanged(self) -> None:
        self._show_header()  # a running job's duration ticks

    def _show_header(self) -> None:
        job = self.job
        if job is None:
            return
        now = self.deck.now()
        silent = None if self.silent is None else round(self.silent)
        shown = (job, duration(job.duration(now)), silent)
        if shown != self._header_shown:
            self._header_shown = shown
            header = job_header(job, now, self.styles_of_status, silent)
            self.query_one("#job-header", Static).update(header)
            self.call_after_refresh(self._fit_predictions)  # the header's height may change

    def _load_predictions(self, job_id: str) -> None:
        """Once a batch prediction has ended: the head of its predictions and their summary."""
        deck = self.deck

        def show(preview: PredictionsView) -> None:
            self.predictions = preview
            self.query_one("#job-predictions", Static).display = True
            self._fit_predictions()

        self.load("job.predictions", lambda: deck.predictions(job_id), show)

    def _fit_predictions(self) -> None:
        """Show as many of the preview's rows as the screen has room for once the header,
        the top bar and the footer have theirs and the log and the events keep
        ``BODY_MIN`` rows (more rows of a short preview were cut at its old 30%)."""
        if self.predictions is None:
            return
        widget = self.query_one("#job-predictions", Static)
        header = self.query_one("#job-header", Static).outer_size.height
        room = max(PREVIEW_FRAME + 1, self.size.height - header - 2 - BODY_MIN)
        widget.styles.max_height = room
        widget.update(predictions_preview(self.predictions, room - PREVIEW_FRAME))
        if header != self._fitted_to:
            # Measured before the header was laid out anew (the preview came first, or its
            # text changed): again once it is, until its height holds (the preview took the
            # log's room when it fitted a header of the old height).
            self._fitted_to = header
            self.call_after_refresh(self._fit_predictions)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_predictions)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return True if self.job is not None and can_stop(self.job.status) else None
        if action == "rerun":
            return True if self.job is not None else None
        return True

    def refusal(self, action: str) -> str | None:
        """Why a dimmed key does nothing (said when it is pressed)."""
        if self.job is None:
            return "the job is still loading" if action in ("stop", "rerun") else None
        if action == "stop":
            return f"job {self.job.short_id} is {self.job.status}: nothing to stop"
        return None

    def action_stop(self) -> None:
        if self.job is not None and can_stop(self.job.status):
            stop_job(self, self.job)

    def action_rerun(self) -> None:
        if self.job is None:
            return
        deck = self.deck
        job_id = self.job.id

        def started(job: JobView) -> None:
            self.notify(f"queued {job.type} job {job.short_id}")
            self.deck_app.open_job(job.id, replace=True)

        self.load("job.rerun", lambda: deck.rerun(job_id), started, if_idle=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        seq = int(str(event.row_key.value))
        found = next((e for e in self.events if e.seq == seq), None)
        if found is not None and self.job is not None:
            self.deck_app.open_event(found, self.job)

    def palette_commands(self) -> list[tuple[str, str, object]]:
        out: list[tuple[str, str, object]] = [
            ("Run this job again", "same inputs, a new job", self.action_rerun)
        ]
        if self.job is not None and can_stop(self.job.status):
            out.append((f"Stop job {self.job.short_id}", "ask it to stop", self.action_stop))
        return out
