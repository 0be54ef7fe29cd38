"""Versions side by side (the versions marked on the Models tab): a table of the comparison,
and the metrics plotted per version beside their numbers."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from core.compare import Comparison, compare, delta_text, hyperparameter_text
from core.service import Deck
from core.text import printable
from tui.format import fit_label, literal, metric, status_text
from tui.plots import PlotPanel, Series, number, version_tags
from tui.screens.base import DeckScreen
from tui.widgets import DeckFooter, DeckTable, Polled, Row, TopBar


def cut(cell: Any, width: int) -> Any:
    """A cell of at most ``width`` cells, cut with ``…`` (the CLI's --json has it whole)."""
    text = cell if isinstance(cell, Text) else literal(cell)
    if text.cell_len > width:
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
    return text


def compare_rows(c: Comparison, styles: dict[str, str], width: int = 40) -> list[Row]:
    """One row per field, metric and (differing) hyperparameter; a column per version, each
    cell at most ``width`` cells wide."""
    rows = _rows(c, styles)
    return [Row(r.key, [r.cells[0], *(cut(x, width) for x in r.cells[1:])]) for r in rows]


def _rows(c: Comparison, styles: dict[str, str]) -> list[Row]:
    vs = c.versions
    rows = [
        Row("status", ["status", *(status_text(v.status, styles) for v in vs)]),
        Row("dataset", ["trained on", *(v.dataset or "-" for v in vs)]),
        Row("code", ["code", *(v.code_fingerprint or "-" for v in vs)]),
        Row("trainer", ["trainer", *(v.trainer or "-" for v in vs)]),
        Row("approval", ["approval", *(v.approval or "-" for v in vs)]),
        Row(
            "metrics_of",
            [
                "metrics of",
                *(
                    f"{v.metrics_job[:10]} on {v.metrics_dataset or '-'}" if v.metrics_job else "-"
                    for v in vs
                ),
            ],
        ),
    ]
    for m in c.metrics:
        cells: list[Any] = []
        for x, d in zip(m.values, m.deltas, strict=True):
            cell = Text("-" if x is None else metric(x))
            if d is not None:
                cell.append(f" {delta_text(d)}", style="dim")
            cells.append(cell)
        rows.append(Row(f"metric:{m.name}", [Text.assemble("metric ", literal(m.name)), *cells]))
    for h in c.hyperparameters:
        rows.append(
            Row(
                f"param:{h.name}",
                [
                    Text.assemble("param ", literal(h.name)),
                    *(hyperparameter_text(x) for x in h.values),
                ],
            )
        )
    rows.append(Row("id", ["id", *(v.id for v in vs)]))
    return rows


class CompareScreen(Polled[Comparison], DeckScreen):
    TITLE = "Compare"
    poll_seconds = 2.0

    def __init__(self, version_ids: list[str]) -> None:
        super().__init__()
        self.version_ids = list(version_ids)
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"modeldeck / compare {len(self.version_ids)} versions")
        with VerticalScroll(id="compare-body"):
            yield DeckTable(id="compare-table", fixed_columns=1, opens=False)  # nothing to open
            yield Static("", id="compare-note", classes="window")
            yield PlotPanel("metrics per version", id="compare-plot", height=10)
        yield DeckFooter()

    def on_mount(self) -> None:
        self.start_polling()

    def fetch(self, deck: Deck, state: None) -> Comparison:
        return compare(deck, self.version_ids)

    def show(self, c: Comparison) -> None:
        first = self.comparison is None
        self.comparison = c
        labels = [v.label for v in c.versions]
        project = c.versions[0].project if c.versions else ""
        self.query_one(TopBar).set_title(f"modeldeck / {project} / compare {' · '.join(labels)}")
        table = self.query_one("#compare-table", DeckTable)
        # Every version in view at 80 columns: the names' column and an equal share each (a
        # long label cut before its number).
        width = max(10, (max(self.size.width, 80) - 22) // max(1, len(c.versions)) - 2)
        heads = [Text(fit_label(printable(v.label), width)) for v in c.versions]
        table.set_columns(
            [
                ("field", Text("")),
                *((f"v:{v.id}", h) for v, h in zip(c.versions, heads, strict=True)),
            ]
        )
        rows = compare_rows(c, self.styles_of_status, width)
        table.sync(rows)
        table.styles.height = len(rows) + 1
        note = ""
        if c.same_hyperparameters:
            note = f"{c.same_hyperparameters} hyperparameter(s) the same in all (not shown)"
        self.query_one("#compare-note", Static).update(note)
        plot = self.query_one("#compare-plot", PlotPanel)
        if not c.metrics:
            plot.nothing("no metrics recorded on these versions")
        else:
            names = [m.name for m in c.metrics]
            tags = version_tags([(v.model, v.number) for v in c.versions])
            series = [
                Series(tags[i], [m.values[i] for m in c.metrics]) for i in range(len(c.versions))
            ]
            headers = ["metric", *tags]
            rows_ = [[m.name, *(number(x, 4) for x in m.values)] for m in c.metrics]
            plot.bars(names, series, headers, rows_)
        if first:
            table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # a click on a row: a metric, nothing to open
