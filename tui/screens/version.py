"""A version's details: metrics history, statistics, approvals, lineage."""

from __future__ import annotations

import json

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from core.views import VersionDetail
from tui.format import duration, literal, metric, status_text, when
from tui.screens.base import DeckScreen
from tui.widgets import DeckTable, Row, TopBar


def summary(d: VersionDetail, styles: dict[str, str]) -> Table:
    v = d.version
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("version", literal(f"{v.label}  ({v.id})"))
    grid.add_row("status", status_text(v.status, styles))
    grid.add_row(
        "made", f"{'imported' if v.model_kind == 'byom' else 'trained'} {when(v.created_at)}"
    )
    if v.dataset:
        grid.add_row("dataset", literal(v.dataset))
    if v.hyperparameters:
        grid.add_row("hyperparameters", literal(json.dumps(v.hyperparameters, sort_keys=True)))
    if v.code_fingerprint:
        grid.add_row("code", literal(v.code_fingerprint))
    if v.source:
        grid.add_row("source", literal(json.dumps(v.source, sort_keys=True)))
    for dep in d.deployments:
        grid.add_row("deployment", literal(f"{dep.id} {dep.status} {dep.schedule or 'on demand'}"))
    return grid


def metrics_table(d: VersionDetail) -> Table | Text:
    if not d.metrics_history:
        return Text("no metrics recorded yet", style="dim")
    keys: list[str] = []
    for m in d.metrics_history:
        keys.extend(k for k in m.metrics if k not in keys)
    table = Table(box=None, padding=(0, 1), header_style="bold")
    for name in ["when", "dataset", *keys]:
        table.add_column(literal(name))
    for m in d.metrics_history:
        table.add_row(
            when(m.at),
            literal(m.dataset or "-"),
            *(literal(metric(m.metrics.get(k, ""))) for k in keys),
        )
    return table


def approvals_text(d: VersionDetail) -> Text:
    if not d.approvals:
        return Text("no decision yet", style="dim")
    lines = [f"{when(a.at)}  {a.decision} by {a.by}: {a.reason}" for a in d.approvals]
    return Text("\n").join(literal(line) for line in lines)  # a reason's newline stays ^J


def statistics_text(d: VersionDetail) -> Text:
    stats = d.version.statistics
    if not stats:
        return Text("none computed (c on the Models tab)", style="dim")
    return literal(json.dumps(stats, indent=2, sort_keys=True, default=str), newlines=True)


class VersionScreen(DeckScreen):
    TITLE = "Version"

    def __init__(self, version_id: str) -> None:
        super().__init__()
        self.version_id = version_id
        self.detail: VersionDetail | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"modeldeck / version {self.version_id}")
        with VerticalScroll(id="version-body"):
            yield Static("loading…", id="version-summary")
            yield Static(Text("metrics history", style="bold"), classes="section")
            yield Static("", id="version-metrics")
            yield Static(Text("approval record", style="bold"), classes="section")
            yield Static("", id="version-approvals")
            yield Static(Text("lineage: jobs that touched it", style="bold"), classes="section")
            table = DeckTable(id="lineage")
            for name in ("id", "type", "status", "dataset", "created", "took"):
                table.add_column(name, key=name)
            yield table
            yield Static(Text("statistics", style="bold"), classes="section")
            yield Static("", id="version-stats")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p: in the keys help

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(1.0, self.reload)

    def reload(self) -> None:
        self.load("version.fetch", lambda: self.deck.version_detail(self.version_id), self._show)

    def _show(self, d: VersionDetail) -> None:
        first = self.detail is None
        self.detail = d
        styles = self.app.status_styles  # type: ignore[attr-defined]
        v = d.version
        self.query_one(TopBar).set_title(f"modeldeck / {v.project} / {v.label}")
        self.query_one("#version-summary", Static).update(summary(d, styles))
        self.query_one("#version-metrics", Static).update(metrics_table(d))
        self.query_one("#version-approvals", Static).update(approvals_text(d))
        self.query_one("#version-stats", Static).update(statistics_text(d))
        now = self.deck.now()
        table = self.query_one("#lineage", DeckTable)
        table.sync(
            [
                Row(
                    j.id,
                    [
                        j.short_id,
                        j.type,
                        status_text(j.status, styles),
                        j.dataset or "-",
                        when(j.created_at),
                        duration(j.duration(now)),
                    ],
                )
                for j in d.lineage
            ]
        )
        if first:
            table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.open_job(str(event.row_key.value))  # type: ignore[attr-defined]
