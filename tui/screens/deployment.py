"""A deployment: its fields and latest drift, then tabs: drift per feature over its runs, a
feature's histogram (baseline against the latest run), the prediction distribution, the
performance history, its batch prediction jobs and its timeline. Every plot has the table
of its numbers beside it (``tui.plots``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static, TabbedContent, TabPane, Tabs

from core.monitoring.views import DriftRun, FeatureDrift
from core.service import Deck
from core.views import DeploymentEventView, DeploymentView, headline_of
from tui.format import in_zone, literal, status_text, when_s, zone_text
from tui.plots import PlotPanel, Series, drift_history, number, short, short_when
from tui.screens.base import DeckScreen
from tui.tabs.jobs import JobsPane
from tui.widgets import DeckFooter, DeckTable, Polled, Row, TopBar

MAX_RUNS = 30  # runs plotted (the newest); the CLI's `drift --history` has them all
WIDE = 70  # columns from which the performance table has room for a second metric
MAX_SERIES = 4  # features (or metrics) plotted at once: more do not read in 80x24
TABS = ("drift", "feature", "prediction", "performance", "jobs", "timeline")
# Each tab's label, and a shorter one for a screen too narrow for the long ones (at 60
# columns the tab bar scrolled `1 Drift` off the screen).
TAB_LABELS = {
    "drift": ("1 Drift", "1 Drift"),
    "feature": ("2 Feature", "2 Feature"),
    "prediction": ("3 Prediction", "3 Pred"),
    "performance": ("4 Performance", "4 Perf"),
    "jobs": ("5 Jobs", "5 Jobs"),
    "timeline": ("6 Timeline", "6 Timeline"),
}
TAB_PADDING = 2  # a tab's padding around its label


def tab_labels(width: int) -> dict[str, str]:
    """The tabs' labels that fit ``width`` columns: the long ones if they all fit."""
    long = sum(len(labels[0]) + TAB_PADDING for labels in TAB_LABELS.values())
    pick = 0 if long <= width else 1
    return {tab: labels[pick] for tab, labels in TAB_LABELS.items()}


NO_RUNS = (
    "no drift yet: each batch prediction compares the data it scores with the version's "
    "baseline (r on the Deployments tab runs one now)"
)


@dataclass(frozen=True)
class DeploymentData:
    deployment: DeploymentView
    runs: list[DriftRun]  # newest first
    events: list[DeploymentEventView]


def drift_line(run: DriftRun | None, styles: dict[str, str]) -> Any:
    """``alert · 2/5 columns off · worst x2 0.81`` (its PSI): the latest run's drift."""
    if run is None:
        return Text("no run compared yet", style="dim")
    text = status_text(run.status, styles)
    drifting = [f for f in run.features if f.status != "ok"]
    text.append(f" · {len(drifting)}/{len(run.features)} columns off")
    worst = run.features[0] if run.features else None
    if worst is not None and worst.psi is not None:
        text.append(" · worst ")
        text.append_text(literal(short(worst.name, 12)))
        text.append(f" {worst.psi:.2f}")
    return text


def shown_status(d: DeploymentView) -> str:
    """Its status as shown: ``paused`` for an active deployment whose schedule is paused."""
    return "paused" if d.status == "active" and d.paused else d.status


SHORT_TIME = "%m-%d %H:%M"  # the header's runs: a cell is a third of 80 columns


def deployment_header(
    d: DeploymentView, styles: dict[str, str], run: DriftRun | None = None
) -> Group:
    """Every field of the deployment, those the Deployments tab leaves out when narrow too,
    and the drift of its latest run."""
    grid = Table.grid(padding=(0, 1), expand=True)
    for _ in range(2):
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")  # whole, however long its words
    status = shown_status(d)
    last: Any = "-"
    if d.last_run:
        last = status_text(str(d.last_run["status"]), styles)
        # On the deployment's clock, as its next run; short: the cell is a third of 80.
        last.append(f" {in_zone(d.last_run.get('at'), d.timezone, SHORT_TIME)}")
    pairs: list[tuple[str, Any]] = [
        ("version", literal(d.label)),
        ("status", status_text(status, styles)),
        ("schedule", literal(d.schedule or "on demand")),
        ("zone", zone_text(d.timezone)),
        ("next run", in_zone(d.next_run_at, d.timezone)),
        ("last run", last),
        ("dataset", literal(d.dataset)),
        ("id", literal(d.id)),
    ]
    for i in range(0, len(pairs), 2):
        (a, av), (b, bv) = pairs[i], pairs[i + 1]
        grid.add_row(a, av, b, bv)
    drift = Text("drift    ", style="dim")  # a line of its own: it is longer than a cell
    drift.append_text(drift_line(run, styles))
    if run is not None:  # its run's time as the last run's beside it
        drift.append(f" · {in_zone(run.at, d.timezone, SHORT_TIME)}")
    return Group(grid, drift)


def runs_label(n: int) -> str:
    return "1 run" if n == 1 else f"last {n} runs"


def with_histograms(run: DriftRun | None) -> list[FeatureDrift]:
    """The latest run's features that have a histogram, the worst first."""
    return [f for f in (run.features if run else ()) if f.histogram is not None]


class DeploymentScreen(Polled[DeploymentData], DeckScreen):
    TITLE = "Deployment"
    poll_seconds = 1.0
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(i + 1), f"tab('{tab}')", tab.capitalize(), show=False, id=f"dep.{tab}")
            for i, tab in enumerate(TABS)
        ),
        Binding("f", "feature(1)", "Next feature", id="dep.next_feature"),
        Binding("F", "feature(-1)", "Previous feature", show=False, id="dep.prev_feature"),
    ]

    def __init__(self, deployment: DeploymentView) -> None:
        super().__init__()
        self.deployment = deployment
        self.data: DeploymentData | None = None
        self.feature = 0  # which of the latest run's features the Feature tab shows
        self.preferred_metric: str | None = None  # model.json's headline metric ("": none)

    def compose(self) -> ComposeResult:
        d = self.deployment
        yield TopBar(f"modeldeck / {d.project} / deployment of {d.label} ({shown_status(d)})")
        yield Static(deployment_header(d, self.styles_of_status), id="deployment-header")
        with TabbedContent(initial="drift", id="deployment-tabs"):
            with TabPane(TAB_LABELS["drift"][0], id="drift"):
                yield PlotPanel("PSI per feature over runs, the worst first", id="drift-plot")
            with TabPane(TAB_LABELS["feature"][0], id="feature"):
                yield PlotPanel("a feature: baseline and latest run", id="feature-plot")
            with TabPane(TAB_LABELS["prediction"][0], id="prediction"):
                yield PlotPanel("prediction distribution", id="prediction-plot")
            with TabPane(TAB_LABELS["performance"][0], id="performance"):
                yield PlotPanel("metrics per run (scored data with the target)", id="perf-plot")
            with TabPane(TAB_LABELS["jobs"][0], id="jobs"):
                yield JobsPane(d.project, deployment=d.id, job_type="batch_predict")
            with TabPane(TAB_LABELS["timeline"][0], id="timeline"):
                table = DeckTable(id="timeline-table")
                for name, drop in (("at", 0), ("kind", 0), ("message", 0)):
                    table.add_column(name, key=name, drop=drop)
                yield table
        yield DeckFooter()

    def on_mount(self) -> None:
        self.start_polling()
        # The jobs pane takes the focus when it mounts (it did on this screen alone before
        # the tabs): back to the Drift tab, the tabs focused (left/right move between them).
        self.call_after_refresh(self._first_tab)

    def on_resize(self) -> None:
        tabs = self.query_one(TabbedContent)
        for tab, label in tab_labels(self.size.width).items():
            tabs.get_tab(tab).label = label
        if self.data is not None:
            self._performance(self.data.runs)  # as many metrics as fit

    def _first_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "drift"
        tabs.query_one(Tabs).focus()

    def on_screen_resume(self) -> None:
        self.poll(force=True)

    def fetch(self, deck: Deck, state: None) -> DeploymentData:
        d = deck.deployment(self.deployment.id)
        if self.preferred_metric is None:  # once: the headline metric model.json names
            self.preferred_metric = deck.version(d.version).metric or ""
        return DeploymentData(d, drift_history(deck, d.id), deck.deployment_events(d.id))

    def show(self, data: DeploymentData) -> None:
        self.data = data
        self.deployment = d = data.deployment
        styles = self.styles_of_status
        latest = data.runs[0] if data.runs else None
        self.query_one(TopBar).set_title(
            f"modeldeck / {d.project} / deployment of {d.label} ({shown_status(d)})"
        )
        header = deployment_header(d, styles, latest)
        self.query_one("#deployment-header", Static).update(header)
        self._drift(data.runs)
        self._feature(latest)
        self._prediction(latest)
        self._performance(data.runs)
        self._timeline(data.events)
        self.refresh_bindings()

    # -- the tabs -------------------------------------------------------------------------

    def _drift(self, runs: list[DriftRun]) -> None:
        panel = self.query_one("#drift-plot", PlotPanel)
        if not runs:
            panel.nothing(NO_RUNS)
            return
        latest = runs[0]
        shown = list(reversed(runs[:MAX_RUNS]))  # oldest to newest, left to right
        # The features with a PSI in any run shown, the latest run's first (worst first): a
        # latest run without one (an empty batch, columns gone) leaves the history plotted.
        plotted: list[str] = []
        for run in runs[:MAX_RUNS]:
            plotted += [f.name for f in run.features if f.psi is not None and f.name not in plotted]
        plotted = plotted[:MAX_SERIES]
        series = []
        for name in plotted:
            values = []
            for run in shown:
                found = next((f for f in run.features if f.name == name), None)
                values.append(found.psi if found is not None else None)
            series.append(Series(name, values))
        styles = self.styles_of_status
        rows: list[list[Any]] = [
            [short(f.name, 16), number(f.psi), number(f.ks), status_text(f.status, styles)]
            for f in latest.features
        ]
        if latest.prediction is not None:
            p = latest.prediction
            status = status_text(p.status, styles)
            rows.append(["(prediction)", number(p.psi), number(p.ks), status])
        panel.set_title(
            f"PSI per feature, {runs_label(len(shown))} (#1 the oldest), lines at warn "
            f"{latest.warn_psi:g} and alert {latest.alert_psi:g}"
        )
        panel.lines(
            [f"#{i + 1}" for i in range(len(shown))],
            series,
            ["feature", "psi", "ks", "status"],
            rows,
            hlines=(latest.warn_psi, latest.alert_psi),
        )

    def _feature(self, latest: DriftRun | None) -> None:
        panel = self.query_one("#feature-plot", PlotPanel)
        features = with_histograms(latest)
        if not features:
            panel.nothing(NO_RUNS if latest is None else "no histogram in the latest run")
            return
        self.feature %= len(features)
        f = features[self.feature]
        assert f.histogram is not None
        psi = f"psi {f.psi:.3f}" if f.psi is not None else "no psi"
        # The numbers first: a narrow screen cuts the end of the line, not them.
        panel.set_title(
            f"{short(f.name, 24)} {self.feature + 1}/{len(features)}: {psi}, {f.status} · "
            "baseline █, latest run ░ · f: next"
        )
        panel.histogram(f.histogram)

    def _prediction(self, latest: DriftRun | None) -> None:
        panel = self.query_one("#prediction-plot", PlotPanel)
        p = latest.prediction if latest is not None else None
        if p is None or p.histogram is None:
            panel.nothing(NO_RUNS if latest is None else "the latest run kept no prediction")
            return
        psi = f"psi {p.psi:.3f}" if p.psi is not None else ""
        panel.set_title(f"predictions: {psi}, {p.status} · baseline █, latest run ░")
        panel.histogram(p.histogram)

    def _performance(self, runs: list[DriftRun]) -> None:
        panel = self.query_one("#perf-plot", PlotPanel)
        scored = [r for r in reversed(runs[:MAX_RUNS]) if r.metrics]
        if not scored:
            panel.nothing(
                "no performance yet: a run whose scored data has the target column "
                "measures the model on it"
            )
            return
        names: list[str] = []
        for r in scored:
            names.extend(
                k
                for k, x in r.metrics.items()
                if k not in names and isinstance(x, int | float) and not isinstance(x, bool)
            )
        # The headline metric first (model.json's, else accuracy, f1, ...), as on the Models
        # tab; two fit beside the plot in 80 columns, one in 60.
        head = headline_of(scored[-1].metrics, self.preferred_metric or None)
        if head is not None and head[0] in names:
            names.remove(head[0])
            names.insert(0, head[0])
        names = names[: 2 if self.size.width >= WIDE else 1]
        series = [Series(n, [r.metrics.get(n) for r in scored]) for n in names]
        zone = short_when(scored[-1].at)[1]
        rows = [
            [f"#{i + 1}", short_when(r.at)[0], *(number(r.metrics.get(n)) for n in names)]
            for i, r in enumerate(scored)
        ]
        label = runs_label(len(scored))
        panel.set_title(f"metrics of runs with the target, {label} (#1 the oldest)")
        panel.lines(
            [f"#{i + 1}" for i in range(len(scored))],
            series,
            ["run", f"at ({zone})", *(short(n, 9) for n in names)],
            list(reversed(rows)),  # the newest first in the table
        )

    def _timeline(self, events: list[DeploymentEventView]) -> None:
        table = self.query_one("#timeline-table", DeckTable)
        table.sync(
            [
                Row(f"{e.at.isoformat()}:{i}", [when_s(e.at), e.kind, e.message])
                for i, e in reversed(list(enumerate(events)))
            ]
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A timeline row opens its event (the Jobs tab's rows open their jobs)."""
        if event.data_table.id != "timeline-table" or self.data is None:
            return
        event.stop()
        index = int(str(event.row_key.value).rsplit(":", 1)[1])
        self.deck_app.open_deployment_event(self.data.events[index], self.deployment)

    # -- keys -----------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "jobs":
            self.query_one(JobsPane).query_one(DataTable).focus()
        elif tab == "timeline":
            self.query_one("#timeline-table", DeckTable).focus()

    def action_feature(self, step: int) -> None:
        features = with_histograms(self.data.runs[0] if self.data and self.data.runs else None)
        if not features:
            return
        self.feature = (self.feature + step) % len(features)
        self.query_one(TabbedContent).active = "feature"
        self._feature(self.data.runs[0] if self.data else None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "feature":
            return None if self.refusal(action) else True
        return True

    def refusal(self, action: str) -> str | None:
        if action == "feature":
            run = self.data.runs[0] if self.data and self.data.runs else None
            if not with_histograms(run):
                return "no feature histograms yet: a batch prediction computes them"
        return None
