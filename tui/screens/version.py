"""A version's details: metrics history, statistics, approvals, lineage."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from core.monitoring.views import BaselineView, Histogram
from core.service import Deck
from core.stats_table import STATS_HEADERS, stats_rows
from core.text import compact
from core.views import MetricsView, VersionDetail
from tui.format import duration, in_zone, literal, metric, status_text, when, zone_text
from tui.plots import PlotPanel, Series, baseline_histograms, number, short
from tui.screens.base import DeckScreen
from tui.widgets import DeckFooter, DeckTable, Polled, Row, TopBar


def summary(d: VersionDetail, styles: dict[str, str]) -> Table:
    v = d.version
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")  # a word longer than the line goes on the next: whole
    grid.add_row("version", literal(f"{v.label}  ({v.id})"))
    grid.add_row("status", status_text(v.status, styles))
    grid.add_row(
        "made", f"{'imported' if v.model_kind == 'byom' else 'trained'} {when(v.created_at)}"
    )
    if v.dataset:
        grid.add_row("dataset", literal(v.dataset))
    grid.add_row("judged on", evaluation_line(judged_record(d)))
    if v.hyperparameters:
        grid.add_row("hyperparameters", literal(compact(v.hyperparameters)))  # as written
    if v.code_fingerprint:
        grid.add_row("code", literal(v.code_fingerprint))
    if v.code_diff:
        grid.add_row("code diff", literal(v.code_diff))
    if v.source:
        grid.add_row("source", literal(compact(v.source)))
    for dep in d.deployments:
        line = literal(f"{dep.id} {dep.status} {dep.schedule or 'on demand'}")
        if dep.schedule:
            line.append_text(Text.assemble(" (", zone_text(dep.timezone), ")"))
        if dep.status == "active" and not dep.paused and dep.next_run_at is not None:
            line.append(f", next run {in_zone(dep.next_run_at, dep.timezone)}")  # its own clock
        grid.add_row("deployment", line)
    return grid


def evaluation_line(m: MetricsView | None) -> Text:
    """``evaluation j-… on test, 2026-… (UTC+01:00)``: which evaluation a number comes from."""
    if m is None:
        return Text("no evaluation yet", style="dim")
    what = "evaluation" if m.job_type == "evaluate" else "training"
    line = Text(f"{what} {(m.job_id or '-')[:10]} on ")
    line.append_text(literal(m.dataset or m.dataset_id or "-"))
    if m.training:
        line.append(" (its training data)", style="dim")
    line.append(f", {when(m.at)}")
    return line


def judged_record(d: VersionDetail) -> MetricsView | None:
    """The evaluation the version is judged on; None without one (its ``metrics_from`` is
    then its training record, which judges nothing)."""
    m = d.version.metrics_from
    return m if m is not None and m.job_type == "evaluate" else None


def metrics_records(d: VersionDetail) -> list[MetricsView]:
    """The metrics records in the order of the columns: the one the version is judged on
    first (at 80 columns it is the one in view), then the others, the newest first."""
    judged = judged_record(d)
    newest = sorted(d.metrics_history, key=lambda m: m.at, reverse=True)
    return sorted(newest, key=lambda m: not (judged is not None and m.job_id == judged.job_id))


def metrics_grid(d: VersionDetail) -> tuple[list[tuple[str, Text]], list[Row]]:
    """Metrics as rows, evaluations as columns: the columns (key, title: the dataset, and
    whether the version is judged on it) and the rows (its job, when, then each metric)."""
    records = metrics_records(d)
    judged = judged_record(d)
    columns: list[tuple[str, Text]] = [("metric", Text("metric"))]
    for i, m in enumerate(records):
        title = literal(m.dataset or m.dataset_id or "-")
        if m.job_type == "train":
            title.append(" (training)")
        elif m.training:
            title.append(" (its training data)")
        if judged is not None and m.job_id == judged.job_id:
            title.append(" judged", style="bold")
        columns.append((f"{i}:{m.job_id}", title))
    keys: list[str] = []
    for m in records:
        keys.extend(k for k in m.metrics if k not in keys)
    rows = [
        Row(" job", ["job", *(f"{m.job_type or '-'} {(m.job_id or '-')[:10]}" for m in records)]),
        Row(" at", ["at", *(when(m.at) for m in records)]),
    ]
    for k in keys:
        cells = [metric(m.metrics[k]) if k in m.metrics else "-" for m in records]
        rows.append(Row(f"metric:{k}", [k, *cells]))
    return columns, rows


def approvals_text(d: VersionDetail) -> Text:
    if not d.approvals:
        return Text("no decision yet", style="dim")
    out = Text()
    for i, a in enumerate(d.approvals):
        if i:
            out.append("\n")
        out.append(f"{when(a.at)}  {a.decision} by ")
        out.append_text(literal(a.by))
        out.append(": ")
        out.append_text(literal(a.reason))
        for e in a.evaluations:
            out.append("\n    on ")
            out.append_text(evaluation_line(e))
            shown = ", ".join(
                f"{k} {metric(x)}" for k, x in e.metrics.items() if isinstance(x, int | float)
            )
            if shown:
                out.append(": ")
                out.append_text(literal(shown))
    return out


def statistics_view(d: VersionDetail) -> Group | Text:
    """A table per statistics run (dataset and job): type, count, missing, mean, std, and
    a sparkline of the histogram or the top values of each column."""
    if not d.statistics:
        return Text("none computed (c on the Models tab)", style="dim")
    parts: list[Text | Table] = []
    for run in reversed(d.statistics):  # the newest first
        head = Text("on ", style="bold")
        head.append_text(literal(run.dataset or run.dataset_id or "-"))
        head.append(
            f" · job {(run.job_id or '-')[:10]} · {when(run.at)} · {run.rows} rows, "
            f"{len(run.columns)} columns",
            style="dim",
        )
        parts.append(head)
        table = Table(box=None, padding=(0, 1), header_style="bold")
        for name in STATS_HEADERS:
            table.add_column(name, justify="right" if name in ("count", "missing") else "left")
        for row in stats_rows(run.columns):
            table.add_row(*(literal(cell) for cell in row))
        parts.append(table)
    return Group(*parts)


NO_BASELINE = (
    "no baseline yet: a training records the statistics of its training data (an imported "
    "version, those of its first statistics or evaluation)"
)


def metrics_over_time(panel: PlotPanel, d: VersionDetail) -> None:
    """The numeric metrics of each evaluation (and the training), the oldest first."""
    records = sorted(d.metrics_history, key=lambda m: m.at)
    head = d.version.headline_metric()
    names: list[str] = [head[0]] if head else []  # the headline first
    for m in records:
        names.extend(
            k
            for k, x in m.metrics.items()
            if k not in names and isinstance(x, int | float) and not isinstance(x, bool)
        )
    names = names[:2]  # what fits beside the plot in 80 columns
    panel.display = bool(records and names)
    if not panel.display:
        return
    panel.lines(
        [f"#{i + 1}" for i in range(len(records))],
        [Series(n, [m.metrics.get(n) for m in records]) for n in names],
        ["#", "on", *(short(n, 10) for n in names)],
        [
            [f"#{i + 1}", short(m.dataset or "-", 10), *(number(m.metrics.get(n)) for n in names)]
            for i, m in reversed(list(enumerate(records)))
        ],
        give=1,  # the dataset's name gives way
    )


class VersionScreen(Polled[tuple[VersionDetail, BaselineView | None]], DeckScreen):
    TITLE = "Version"
    poll_seconds = 1.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "column(1)", "Next column", id="version.next_column"),
        Binding("F", "column(-1)", "Previous column", show=False, id="version.prev_column"),
    ]

    def __init__(self, version_id: str) -> None:
        super().__init__()
        self.version_id = version_id
        self.detail: VersionDetail | None = None
        self.baseline: BaselineView | None = None
        self.columns: list[tuple[str, Histogram]] = []  # the baseline's, the prediction last
        self.column = 0  # which column's baseline histogram is shown

    def compose(self) -> ComposeResult:
        yield TopBar(f"modeldeck / version {self.version_id}")
        with VerticalScroll(id="version-body"):
            yield Static("loading…", id="version-summary")
            yield Static(
                Text("metrics per evaluation (←/→ more evaluations)", style="bold"),
                classes="section",
            )
            yield Static("", id="version-no-metrics")
            # Names stay in view; a row is a metric across the records: nothing to open.
            yield DeckTable(id="version-metrics", fixed_columns=1, opens=False)
            yield PlotPanel(
                "metrics over time (#1 the oldest; when: the grid above)",
                id="version-metrics-plot",
                height=10,
            )
            yield PlotPanel("baseline", id="version-baseline", height=10)
            yield Static(Text("approval record", style="bold"), classes="section")
            yield Static("", id="version-approvals")
            yield Static(Text("lineage: jobs that touched it", style="bold"), classes="section")
            table = DeckTable(id="lineage")
            # Narrow, the lineage leaves out how long a job took, then its dataset: the job's
            # screen (enter) shows them.
            for name, drop in (
                ("id", 0),
                ("type", 0),
                ("status", 0),
                ("dataset", 1),
                ("created", 0),
                ("took", 2),
            ):
                table.add_column(name, key=name, drop=drop)
            yield table
            yield Static(Text("statistics per dataset and job", style="bold"), classes="section")
            yield Static("", id="version-stats")
        yield DeckFooter()

    def on_mount(self) -> None:
        self.start_polling()

    def on_screen_resume(self) -> None:
        self.poll()  # what changed while a job's screen was on top

    def fetch(self, deck: Deck, state: None) -> tuple[VersionDetail, BaselineView | None]:
        return deck.version_detail(self.version_id), deck.monitoring.baseline(self.version_id)

    def show(self, data: tuple[VersionDetail, BaselineView | None]) -> None:
        d, self.baseline = data
        self.columns = baseline_histograms(self.baseline)
        first = self.detail is None
        self.detail = d
        metrics_over_time(self.query_one("#version-metrics-plot", PlotPanel), d)
        self._baseline()
        styles = self.styles_of_status
        v = d.version
        self.query_one(TopBar).set_title(f"modeldeck / {v.project} / {v.label}")
        self.query_one("#version-summary", Static).update(summary(d, styles))
        columns, rows = metrics_grid(d)
        grid = self.query_one("#version-metrics", DeckTable)
        grid.set_columns(columns)
        grid.sync(rows)
        grid.display = bool(d.metrics_history)
        none = self.query_one("#version-no-metrics", Static)
        none.display = not d.metrics_history
        none.update(Text("no metrics recorded yet", style="dim"))
        self.query_one("#version-approvals", Static).update(approvals_text(d))
        self.query_one("#version-stats", Static).update(statistics_view(d))
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
        if first:  # the metrics first: the arrows scroll them without a tab
            # Without scrolling to it: the version's summary above stays in view.
            (grid if d.metrics_history else table).focus(scroll_visible=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "lineage" and event.row_key.value:
            self.deck_app.open_job(str(event.row_key.value))

    def _baseline(self) -> None:
        panel = self.query_one("#version-baseline", PlotPanel)
        b = self.baseline
        if b is None or not self.columns:
            panel.set_title("baseline")
            panel.nothing(NO_BASELINE)
            return
        self.column %= len(self.columns)
        name, hist = self.columns[self.column]
        rows = f"{b.rows} rows" if b.rows is not None else "rows"
        panel.set_title(
            f"baseline of {short(name, 24)} ({self.column + 1}/{len(self.columns)}, "
            f"f: next column): shares of the {rows} of {short(b.dataset or 'its data', 24)}"
        )
        panel.histogram(hist)

    def action_column(self, step: int) -> None:
        if self.columns:
            self.column = (self.column + step) % len(self.columns)
            self._baseline()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.refusal(action) else True

    def refusal(self, action: str) -> str | None:
        if action == "column" and not self.columns:
            return "no baseline histograms yet: a training records them"
        return None
