"""What ran when: a project's timeline (approvals, rejections, deployments, retirements,
changes of who may approve), and the deployments active at a moment with where they came
from. The moment is now, the time of the timeline entry chosen with `enter`, or a time
typed (`t`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from core.history import ActiveDeployment, TimelineEntry, parse_time
from core.service import Deck
from core.text import metrics_text
from tui.format import literal, when, when_s
from tui.modals import Form, _field, _input
from tui.screens.base import DeckScreen
from tui.widgets import DeckFooter, DeckTable, Polled, Row, TopBar

# The timeline, newest first, and the deployments active at the moment asked about.
HistoryData = tuple[list[TimelineEntry], list[ActiveDeployment], datetime]


class AtForm(Form):
    """Ask for the moment to look at: an ISO 8601 time, UTC when it has no zone."""

    TITLE_TEXT = "Deployments active at a time"
    OK_LABEL = "Show"

    def fields(self) -> Iterable[Any]:
        yield from _field(
            "Time (ISO 8601; without a zone, UTC)",
            _input(id="at", placeholder="2026-11-28T09:30Z"),
        )


def active_block(x: ActiveDeployment) -> Table:
    """One active deployment and its provenance, a field a line."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")  # a reason is shown whole, however long its words
    t, ap = x.trained, x.approval
    grid.add_row("deployment", literal(f"{x.label} · {x.id} · scores {x.scores or '-'}"))
    sha = (t.dataset_sha256 or "")[:12] or "-"
    grid.add_row(
        t.how,
        literal(f"{when(t.at)} by {t.by or '-'} on {t.dataset or '-'} (sha256 {sha})"),
    )
    grid.add_row("code", literal(t.code_fingerprint or "-"))
    if ap is None:
        grid.add_row("approved", Text("no approval recorded before it was deployed"))
    else:
        grid.add_row("approved", literal(f"{when(ap.at)} by {ap.by}: {ap.reason}"))
        for e in ap.evaluations:
            seen = f"{(e.job_id or '-')[:10]} on {e.dataset}: {metrics_text(e.metrics)}"
            grid.add_row("  seen", literal(seen))
    grid.add_row("deployed", literal(f"{when(x.deployed_at)} by {x.deployed_by or '-'}"))
    if x.retired_at is not None:
        why = f": {x.retire_reason}" if x.retire_reason else ""
        grid.add_row(
            "retired", literal(f"{when(x.retired_at)} by {x.retired_by or '-'}{why} (later)")
        )
    return grid


def moment_view(active: list[ActiveDeployment], at: datetime, chosen: str) -> Group:
    head = Text(f"Active at {when_s(at)} ({chosen}): {len(active)} deployment(s)", style="bold")
    parts: list[Any] = [head]
    for x in active:
        parts.append(Text(""))
        parts.append(active_block(x))
    return Group(*parts)


class HistoryScreen(Polled[HistoryData], DeckScreen):
    TITLE = "History"
    DEFAULT_CSS = """
    HistoryScreen #history-moment { height: auto; max-height: 60%; padding: 0 1; }
    HistoryScreen #history-table { height: 1fr; }
    """
    poll_seconds = 2.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "at_time", "At a time", id="history.at"),
        Binding("n", "now", "Now", id="history.now"),
    ]

    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project
        self.at: datetime | None = None  # None: now
        self.chosen = "now"
        self.entries: list[TimelineEntry] = []

    def compose(self) -> ComposeResult:
        yield TopBar(f"modeldeck / {self.project} / history")
        with VerticalScroll(id="history-moment"):
            yield Static("", id="history-active")
        table = DeckTable(id="history-table")
        # Narrower than all of them (80 columns): why gives up room, and at 60 a long version
        # and a long user name do too (each cut with …); who did it never goes.
        shrink = {"version": 8, "why": 4}
        for name in ("time", "what", "version", "by", "why"):
            table.add_column(
                name, key=name, shrink=shrink.get(name, 0), first=12 if name == "by" else 0
            )
        yield table
        yield DeckFooter()

    def on_mount(self) -> None:
        self.start_polling()
        self.query_one(DeckTable).focus()

    def poll_state(self) -> Any:
        return self.at

    def fetch(self, deck: Deck, state: Any) -> HistoryData:
        at = state or deck.now()
        timeline = deck.history.timeline(self.project)
        return list(reversed(timeline)), deck.history.at(self.project, at), at

    def show(self, data: HistoryData) -> None:
        self.entries, active, at = data
        rows = [
            Row(
                f"{i}",
                [when(e.at), e.kind, e.target, e.by or "-", e.text or "-"],
            )
            for i, e in zip(range(len(self.entries), 0, -1), self.entries, strict=True)
        ]
        self.query_one(DeckTable).sync(rows)
        self.query_one("#history-active", Static).update(moment_view(active, at, self.chosen))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """``enter`` on an entry: the deployments active right after it."""
        event.stop()
        key = event.row_key.value if event.row_key is not None else None
        entry = self._entry(str(key)) if key is not None else None
        if entry is None:
            return
        self.at, self.chosen = entry.at, f"after {entry.kind} {entry.target}"
        self.poll(force=True)

    def _entry(self, key: str) -> TimelineEntry | None:
        n = len(self.entries)
        try:
            index = n - int(key)
        except ValueError:
            return None
        return self.entries[index] if 0 <= index < n else None

    def action_now(self) -> None:
        self.at, self.chosen = None, "now"
        self.poll(force=True)

    def action_at_time(self) -> None:
        def chosen(when_: datetime | None) -> None:
            if when_ is not None:
                self.at, self.chosen = when_, "typed"
                self.poll(force=True)

        self.app.push_screen(AtForm(lambda values: parse_time(values.get("at") or "")), chosen)
