"""Plots in the terminal (textual-plotext), each with the table of its numbers beside it.

A plot alone does not read everywhere: in 80x24 its ticks are few, over a slow SSH link or
with ``NO_COLOR`` its series lose their colours. So a ``PlotPanel`` always shows a table of
the plotted numbers next to the plot, and tells series apart by their marker (``█`` and ``░``
bars, ``•`` and ``+`` points), not by colour alone. Every name that reaches the plot (a
feature, a metric, a bin) goes through :func:`core.text.printable` first: plotext's output is
read back as ANSI text, and a name must never bring an escape sequence of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from core.clock import utc
from core.monitoring.views import BaselineView, DriftRun, Histogram
from core.service import Deck
from core.text import printable
from tui.format import literal, zone_label

BAR_MARKERS = ("█", "░", "▒", "▚")
POINT_MARKERS = ("•", "+", "x", "o", "*", "#")
LABEL_WIDTH = 14  # a series or tick label longer than this is cut with …


def short(name: object, width: int = LABEL_WIDTH) -> str:
    """A name fit for a plot's legend or ticks: printable, cut with ``…``, a character that
    is not one cell wide (CJK, an emoji, a combining mark) shown as ``?``: plotext lays out
    characters, not cells, and such a character would shift the plot's frame (the table
    beside the plot shows the name whole)."""
    text = "".join(c if cell_len(c) == 1 else "?" for c in printable(str(name)))
    return text if len(text) <= width else text[: width - 1] + "…"


def version_tags(labels: Sequence[tuple[str, int]], width: int = LABEL_WIDTH) -> list[str]:
    """Short names of versions (model, number) that stay apart: ``v3`` when they are all of
    one model, else the model's name cut before its number (``fraud-lo… v3``)."""
    if len({model for model, _ in labels}) == 1:
        return [f"v{n}" for _, n in labels]
    out = []
    for model, n in labels:
        tail = f" v{n}"
        name = printable(model)
        room = width - len(tail)
        out.append((name if len(name) <= room else name[: room - 1] + "…") + tail)
    return out


@dataclass(frozen=True)
class Series:
    """One series of a plot: its name (the legend) and its values (None: no point)."""

    name: str
    values: Sequence[float | None]


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def number(x: Any, digits: int = 3) -> str:
    """A number in a table cell beside a plot; ``-`` for none."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}f}"


def short_when(dt: datetime | None) -> tuple[str, str]:
    """A time on this machine's clock for a narrow cell (``01-05 09:30``) and the label of
    its zone for the column's title (``CET``)."""
    d = utc(dt)
    if d is None:
        return "-", ""
    shown = d.astimezone()
    return f"{shown:%m-%d %H:%M}", zone_label(shown)


def share(x: float | None) -> str:
    """A share of rows as a percentage (``12.5%``)."""
    return "-" if not _finite(x) else f"{100 * float(x or 0):.1f}%"  # type: ignore[arg-type]


class PlotPanel(Vertical):
    """A titled plot and, beside it, the table of what it plots. ``bars`` and ``lines`` draw;
    ``nothing`` says why there is nothing to draw (the plot and table go)."""

    DEFAULT_CSS = """
    PlotPanel {
        height: auto;
        padding: 0 1;
    }
    PlotPanel > .plot-title {
        height: 1;
        text-style: bold;
    }
    PlotPanel > .plot-none {
        height: auto;
        color: $text-muted;
    }
    PlotPanel > Horizontal {
        height: 12;
    }
    PlotPanel PlotextPlot {
        width: 1fr;
        min-width: 24;
        height: 100%;
    }
    PlotPanel .plot-table {
        width: auto;
        max-width: 60%;  /* 34 at 60 columns: the numbers whole, the plot its 24 */
        height: 100%;
        padding: 0 0 0 1;
    }
    """

    def __init__(self, title: str, *, id: str | None = None, height: int = 12) -> None:
        super().__init__(id=id)
        self._title = title
        self._height = height
        self.series: list[Series] = []  # what the plot shows now (for tests and readers)
        self.labels: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(literal(self._title, no_wrap=True), classes="plot-title")
        yield Static("", classes="plot-none")
        with Horizontal():
            yield PlotextPlot()
            yield Static("", classes="plot-table")

    def on_mount(self) -> None:
        self.query_one(Horizontal).styles.height = self._height
        self.query_one(".plot-none").display = False

    def set_title(self, title: str) -> None:
        self._title = title
        self.query_one(".plot-title", Static).update(literal(title, no_wrap=True))

    @property
    def plot(self) -> PlotextPlot:
        return self.query_one(PlotextPlot)

    def nothing(self, why: str) -> None:
        """No plot: one dim line saying why (and what to do)."""
        self.series, self.labels = [], []
        none = self.query_one(".plot-none", Static)
        none.update(literal(why))
        none.display = True
        self.query_one(Horizontal).display = False

    def _table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], give: int | None
    ) -> None:
        """The table of the plotted numbers: every column keeps its widest cell but column
        ``give`` (a name, a range), which gives way when the panel is narrow, cut with ….
        A number is never cut."""
        cells = [[c if isinstance(c, Text) else literal(c) for c in row] for row in rows]
        if give is not None:
            # Its cells are cut on their one line, never wrapped onto more rows. They say so
            # themselves: a column marked ``no_wrap`` no longer gives way first, and Rich
            # then narrows every column alike, cutting the numbers too.
            for row in cells:
                if give < len(row):
                    row[give] = row[give].copy()
                    row[give].no_wrap, row[give].overflow = True, "ellipsis"
        table = Table(box=None, padding=(0, 1), header_style="bold", show_edge=False)
        for i, h in enumerate(headers):
            justify = "left" if i == 0 else "right"
            if i == give:
                table.add_column(
                    literal(h), justify=justify, min_width=cell_len(h), overflow="ellipsis"
                )
                continue
            widest = max((c.cell_len for row in cells for c in row[i : i + 1]), default=0)
            table.add_column(
                literal(h), justify=justify, no_wrap=True, width=max(widest, cell_len(h))
            )
        for row in cells:
            table.add_row(*row)
        self.query_one(".plot-table", Static).update(table)
        self.query_one(".plot-none").display = False
        self.query_one(Horizontal).display = True

    def bars(
        self,
        labels: Sequence[str],
        series: Sequence[Series],
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        horizontal: bool = False,
        give: int | None = 0,
    ) -> None:
        """Bars per label, one bar per series side by side (``█`` the first, ``░`` the
        second), and the table (``headers``, ``rows``; its column ``give`` gives way when
        narrow) beside them."""
        self.labels = [short(x) for x in labels]
        self.series = list(series)
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        values = [[float(x) if _finite(x) else 0.0 for x in s.values] for s in series]
        orientation = "horizontal" if horizontal else "vertical"
        if len(series) == 1:
            plt.bar(self.labels, values[0], marker=BAR_MARKERS[0], orientation=orientation)
        elif series:
            plt.multiple_bar(
                self.labels,
                values,
                marker=[BAR_MARKERS[i % len(BAR_MARKERS)] for i in range(len(series))],
                labels=[short(s.name) for s in series],
                orientation=orientation,
            )
        self._table(headers, rows, give)
        self.plot.refresh()

    def lines(
        self,
        ticks: Sequence[str],
        series: Sequence[Series],
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        hlines: Sequence[float] = (),
        give: int | None = 0,
    ) -> None:
        """A line per series over the points 1..n (``ticks`` name them), each its own marker;
        ``hlines`` draws thresholds across; the table beside (its column ``give`` gives way
        when narrow)."""
        self.labels = [short(x, 10) for x in ticks]
        self.series = list(series)
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        for i, s in enumerate(series):
            points = [(n + 1, float(x)) for n, x in enumerate(s.values) if _finite(x)]  # type: ignore[arg-type]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            plt.plot(
                list(xs),
                list(ys),
                marker=POINT_MARKERS[i % len(POINT_MARKERS)],
                label=short(s.name),
            )
        for y in hlines:
            plt.hline(y)
        if self.labels:
            positions = list(range(1, len(self.labels) + 1))
            step = max(1, len(positions) // 4)  # a few ticks: they must not run together
            plt.xticks(positions[::step], self.labels[::step])
        self._table(headers, rows, give)
        self.plot.refresh()

    def histogram(
        self, hist: Histogram, *, scored_name: str = "latest run", scored_header: str = "latest"
    ) -> None:
        """A baseline histogram, the scored one overlaid when it has one: bins numbered on
        the plot, the table gives each bin's range (or value) and shares (the scored ones
        headed ``scored_header``, short: 80 columns hold the plot and four columns)."""
        numbers = [str(i + 1) for i in range(len(hist.labels))]
        series = [Series("baseline", list(hist.baseline))]
        headers = ["bin", "range", "baseline"]
        if hist.scored:
            series.append(Series(scored_name, list(hist.scored)))
            headers.append(scored_header)
        rows = []
        for i, label in enumerate(hist.labels):
            row: list[Any] = [numbers[i], short(label, 18), share(_at(hist.baseline, i))]
            if hist.scored:
                row.append(share(_at(hist.scored, i)))
            rows.append(row)
        self.bars(numbers, series, headers, rows, give=1)  # the range gives way


def _at(values: Sequence[float], i: int) -> float | None:
    return values[i] if i < len(values) else None


# -- what monitoring gives (``deck.monitoring``), read on a worker thread -------------------


def drift_history(deck: Deck, deployment_id: str) -> list[DriftRun]:
    """The deployment's drift runs, newest first ([] before its first batch run)."""
    return deck.monitoring.history(deployment_id)


def baseline_histograms(baseline: BaselineView | None) -> list[tuple[str, Histogram]]:
    """A version's baseline as (column, histogram) pairs in the baseline's feature order,
    the distribution of its predictions last as ``(prediction)``; [] without a baseline."""
    if baseline is None:
        return []
    out = [(n, baseline.histograms[n]) for n in baseline.features if n in baseline.histograms]
    if baseline.prediction is not None:
        out.append(("(prediction)", baseline.prediction))
    return out
