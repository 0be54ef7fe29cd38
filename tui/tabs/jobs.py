"""The Jobs tab: a live window of a project's jobs, newest first, never all of them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from core.errors import ModelDeckError
from core.lifecycle import JobStatus, JobType, can_stop
from core.service import Deck
from core.text import compact
from core.views import JobView
from tui.format import duration, literal, status_text, when
from tui.modals import ConfirmDialog
from tui.widgets import DeckNode, DeckTable, FilterBox, Polled, Row

PAGE = 200
JOB_COLUMNS = (
    ("id", 2),
    ("type", 0),
    ("target", 0),
    ("status", 0),
    ("trigger", 4),
    ("actor", 5),
    ("started", 0),
    ("took", 3),
)
FIRST_PAINT = 40
LOOKAHEAD = 5  # rows before the last one read at which the rest of the page is read


@dataclass(frozen=True)
class JobQuery:
    """What the table shows: a filter and a window of it."""

    text: str | None = None
    status: str | None = None
    job_type: str | None = None
    offset: int = 0


def parse_filter(raw: str) -> JobQuery:
    """``status:failed type:train words`` -> a query; refuses unknown statuses and types."""
    status = job_type = None
    words = []
    for token in raw.split():
        key, sep, value = token.partition(":")
        if sep and key.lower() == "status":
            if value not in {s.value for s in JobStatus}:
                raise ModelDeckError(
                    f"unknown status {value!r} (use {', '.join(s.value for s in JobStatus)})"
                )
            status = value
        elif sep and key.lower() == "type":
            if value not in {t.value for t in JobType}:
                raise ModelDeckError(
                    f"unknown type {value!r} (use {', '.join(t.value for t in JobType)})"
                )
            job_type = value
        else:
            words.append(token)
    return JobQuery(text=" ".join(words) or None, status=status, job_type=job_type)


def job_target(job: JobView) -> Text:
    """What a job acts on, and for a training the hyperparameters given with ``--set`` (the
    jobs of a sweep differ by them): ``churn v3  C=0.1 lr=0.0003``."""
    text = literal(job.target)
    given = compact(job.params.get("overrides")) if job.type == "train" else ""
    if given:
        text.append("  ")
        text.append_text(literal(given, "dim"))
    return text


def job_cells(job: JobView, now: datetime, styles: dict[str, str]) -> list[object]:
    return [
        job.short_id,
        job.type,
        job_target(job),
        status_text(job.status, styles),
        job.trigger,
        job.actor,
        when(job.started_at),  # "-" while queued (or cancelled before it started)
        duration(job.duration(now)),
    ]


@dataclass(frozen=True)
class Window:
    """One fetch of the Jobs tab: its jobs, and how many match (None: not counted yet)."""

    jobs: list[JobView]
    total: int | None


class JobsPane(Polled[Window], Vertical):
    """Jobs of one project (or of one deployment), updating live from the database."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop", id="jobs.stop"),
        Binding("S", "stop_all", "Stop all", id="jobs.stop_all"),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        # Only while a filter is applied (else escape goes back, as everywhere).
        Binding("escape", "clear_filter", "Clear filter", show=False, id="jobs.clear_filter"),
        Binding("right_square_bracket", "page(1)", "Older", id="jobs.older"),
        Binding("left_square_bracket", "page(-1)", "Newer", id="jobs.newer"),
    ]

    def __init__(
        self,
        project: str,
        deployment: str | None = None,
        job_type: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.project = project
        self.deployment = deployment
        # What the pane shows unfiltered (a deployment's: its batch predictions).
        self.preset = JobQuery(job_type=job_type)
        self.query_state = self.preset
        self.jobs: list[JobView] = []
        self.total = 0
        self._paged = False  # whether the count is read too (after the first screenful)
        # How many rows of the page to read: the first screenful when the tab opens, the
        # whole page once the view or the cursor nears its end (``_fill``), or is moved.
        self._limit = FIRST_PAINT
        self._keys_state: object = None

    def compose(self) -> ComposeResult:
        yield FilterBox(
            "filter: words, status:failed, type:train", id="jobs-filter", value=self._preset_text
        )
        table = DeckTable(id="jobs-table")
        # Narrower than all of them (80 columns), the table leaves out the actor, then the
        # trigger, the duration and the id: the job's screen shows them.
        # A target too long even then (a training's many overrides) is cut with "…".
        for name, drop in JOB_COLUMNS:
            table.add_column(name, key=name, drop=drop, shrink=20 if name == "target" else 0)
        yield table
        yield Label("", id="jobs-window", classes="window")

    def on_mount(self) -> None:
        table = self.query_one(DeckTable)
        if self.deployment:
            table.focus()
        self.watch(table, "scroll_y", lambda _y: self._fill(), init=False)
        self.start_polling()

    # -- live data ------------------------------------------------------------------------

    def poll_state(self) -> tuple[JobQuery, int]:
        return self.query_state, self._limit

    def fetch(self, deck: Deck, state: tuple[JobQuery, int]) -> Window:
        # The first paint shows a screenful at once; the count follows with the next poll,
        # the rest of the page when it comes into view (``_fill``).
        query, limit = state
        paged = self._paged
        common: dict[str, Any] = dict(
            project=self.project,
            status=query.status,
            job_type=query.job_type,
            text=query.text,
            deployment=self.deployment,
        )
        jobs = deck.jobs(limit=limit, offset=query.offset, **common)
        if not paged and len(jobs) < limit:
            return Window(jobs, len(jobs) + query.offset)
        return Window(jobs, deck.count_jobs(**common) if paged else None)

    def poll(self, force: bool = False) -> bool:
        # Until the count has come (after the first screenful), ask for the page and count.
        started = super().poll(force or (self._paged and self.total < 0))
        if started and any(j.status in ("running", "stopping") for j in self.jobs):
            self._render_rows()  # durations of running jobs tick without a query
        return started

    def show(self, window: Window) -> None:
        self.jobs = window.jobs
        self.total = window.total if window.total is not None else -1
        self._render_rows()
        # A screenful is on screen; the count comes with the next poll (``poll`` asks while
        # it is unknown), not at once: at once, it competed with the first paint for the UI
        # thread and the GIL. So does the rest of the page: read once the frame is drawn, if
        # the view reaches the end of what was read (a tall terminal), else when it does.
        self._paged = True
        self.call_after_refresh(self._fill)

    def _fill(self) -> None:
        """Read the whole page once the view or the cursor nears the last row read."""
        if self._limit >= PAGE or not self._paged or not self.is_mounted:
            return
        read = len(self.jobs)
        if read < self._limit:
            return  # all the jobs there are
        table = self.query_one(DeckTable)
        header = table.header_height if table.show_header else 0
        bottom = int(table.scroll_y) + max(0, table.size.height - header)
        if max(bottom, table.cursor_row + 1) >= read - LOOKAHEAD:
            self._limit = PAGE
            self.poll(force=True)

    def on_resize(self, _event: events.Resize) -> None:
        self._fill()  # a taller terminal, or the tab shown after it was hidden

    def _render_rows(self) -> None:
        now = self.deck.now()
        styles = self.styles_of_status
        table = self.query_one(DeckTable)
        table.sync([Row(j.id, job_cells(j, now, styles)) for j in self.jobs])
        q = self.query_state
        first = q.offset + 1 if self.jobs else 0
        last = q.offset + len(self.jobs)
        of = f"{self.total:,}" if self.total >= 0 else "…"
        parts = [f"jobs {first:,}-{last:,} of {of}"]
        if replace(q, offset=0) not in (self.preset, JobQuery()):  # nothing, or the preset
            parts.append("filtered")
        if self.total > PAGE:
            parts.append("] older  [ newer")
        self.query_one("#jobs-window", Label).update(Text("  ·  ".join(parts)))
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        """Re-check the footer's keys, only when what they depend on changed."""
        current = self.current
        state = (
            current.status if current else None,
            any(can_stop(j.status) for j in self.jobs),
            self.total,
            self.query_state.offset,
        )
        if state != self._keys_state:
            self._keys_state = state
            self.screen.refresh_bindings()

    # -- the highlighted job --------------------------------------------------------------

    @property
    def current(self) -> JobView | None:
        key = self.query_one(DeckTable).current_key
        return next((j for j in self.jobs if j.id == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._refresh_keys()
        self._fill()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.deck_app.open_job(str(event.row_key.value))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return replace(self.query_state, offset=0) != self.preset
        if action == "stop":
            job = self.current
            return True if job is not None and can_stop(job.status) else None
        if action == "stop_all":
            return True if any(can_stop(j.status) for j in self.jobs) else None
        if action == "page":
            if self.total <= PAGE and self.query_state.offset == 0:
                return False  # one page: no paging keys at all
            step = int(str(parameters[0]))
            offset = self.query_state.offset + step * PAGE
            return True if 0 <= offset < max(self.total, 1) else None
        return True

    def refusal(self, action: str) -> str | None:
        """Why a dimmed key does nothing (said when it is pressed)."""
        job = self.current
        if action == "stop":
            if job is None:
                return "stop: no job on this row"
            return f"job {job.short_id} is {job.status}: nothing to stop"
        if action == "stop_all":
            return "stop all: no job here is queued or running"
        if action == "page":
            return "no more jobs that way"
        return None

    # -- actions --------------------------------------------------------------------------

    def action_stop(self) -> None:
        job = self.current
        if job is None or not can_stop(job.status):
            return
        stop_job(self, job)

    def action_stop_all(self) -> None:
        deck = self.deck
        running = sum(1 for j in self.jobs if can_stop(j.status))

        def answered(yes: bool | None) -> None:
            if yes:
                self.load(
                    "jobs.stop_all",
                    lambda: deck.stop_all(self.project),
                    lambda stopped: self.notify(f"stop requested for {len(stopped)} job(s)"),
                    if_idle=False,
                )

        self.app.push_screen(
            ConfirmDialog(
                f"Stop all queued and running jobs of {self.project}? ({running} in this window)",
                yes="Stop all",
            ),
            answered,
        )

    def action_filter(self) -> None:
        self.query_one(FilterBox).open()

    def on_filter_box_applied(self, event: FilterBox.Applied) -> None:
        event.stop()
        try:
            query = parse_filter(event.value)
        except ModelDeckError as exc:
            self.notify(str(exc), severity="error")
            return  # the box stays open, with what was typed
        self.query_state = query
        self._limit = PAGE
        if not event.value.strip():
            event.box.close()
        self.query_one(DeckTable).focus()
        self.poll(force=True)

    def on_filter_box_dismissed(self, event: FilterBox.Dismissed) -> None:
        event.stop()
        self.action_clear_filter()

    def action_clear_filter(self) -> None:
        box = self.query_one(FilterBox)
        box.close()
        box.value = self._preset_text
        self.query_state = self.preset
        self._limit = PAGE
        self.query_one(DeckTable).focus()
        self.poll(force=True)

    @property
    def _preset_text(self) -> str:
        return f"type:{self.preset.job_type}" if self.preset.job_type else ""

    def action_page(self, step: int) -> None:
        offset = self.query_state.offset + step * PAGE
        if 0 <= offset < max(self.total, 1):
            self.query_state = replace(self.query_state, offset=offset)
            self._limit = PAGE
            self.poll(force=True)


def stop_job(node: DeckNode, job: JobView) -> None:
    """Ask, then stop one job (used by the Jobs tab and the Job screen)."""
    deck, app = node.deck, node.deck_app

    def stop() -> tuple[JobView, str | None]:
        stopped = deck.stop(job.id)
        return stopped, deck.hosts.stop_note(stopped)

    def stopped(result: tuple[JobView, str | None]) -> None:
        j, note = result
        if note is None:
            app.notify(f"job {j.short_id}: {j.status}")
        else:  # its host has no engine: nothing will signal its process for now
            app.notify(note, severity="warning", timeout=15)

    def answered(yes: bool | None) -> None:
        if yes:
            node.load(f"stop.{job.id}", stop, stopped, if_idle=False)

    app.push_screen(
        ConfirmDialog(f"Stop job {job.short_id} ({job.type} {job.target})?", yes="Stop"),
        answered,
    )
