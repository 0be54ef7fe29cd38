"""How user text becomes screen text: literally, its control characters made visible."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

from tui.format import fit_crumb, literal, printable_text
from tui.widgets import cell_text


def test_literal_is_never_markup_and_shows_controls() -> None:
    shown = literal("[/oops] [bold red]x[/] \x1b]0;t\x07 \x9b6n\tend")
    assert shown.plain == "[/oops] [bold red]x[/] ^[]0;t^G \\x9b6n\tend"
    assert shown.spans == []
    assert literal("a\nb").plain == "a^Jb"
    assert literal("a\nb", newlines=True).plain == "a\nb"


def test_a_styled_text_keeps_its_styles_around_stand_ins() -> None:
    text = Text("ok\x1b[2Jdone", style="bold")
    text.stylize("red", 0, 2)
    shown = printable_text(text)
    assert shown.plain == "ok^[[2Jdone"
    assert shown.style == "bold"
    assert any(span.style == "red" and (span.start, span.end) == (0, 2) for span in shown.spans)
    same = Text("no controls")
    assert printable_text(same) is same


def test_table_cells_are_literal() -> None:
    cell = cell_text("[/oops]\x1b[6n")
    assert isinstance(cell, Text) and cell.plain == "[/oops]^[[6n"
    assert cell_text(Text("x\x1b", style="bold")).plain == "x^["
    assert cell_text(3) == 3


def test_a_crumb_keeps_where_you_are_when_cut() -> None:
    crumb = "modeldeck / a-very-long-project-name-indeed / job j-7e20d0d7 / event 8"
    assert fit_crumb(crumb, 80) == crumb
    assert fit_crumb(crumb, 40) == "a-very-long-… / job j-7e20d0d7 / event 8"
    assert fit_crumb(crumb, 20) == "a… / job … / event 8"
    wide = fit_crumb("modeldeck / 数据项目名称很长很长 / job j-7e20d0d7 / event 8", 30)
    assert wide.endswith(" / event 8") and cell_len(wide) <= 30
    # A long end (a job's title) is cut at its end before the project goes
    job = "modeldeck / demo / job j-7e20d0d7 (batch_predict iris-logreg v1)"
    assert fit_crumb(job, 40) == "demo / job j-7e20d0d7 (batch_predict ir…"
    for width in range(1, 75):
        assert cell_len(fit_crumb(crumb, width)) <= width


async def test_a_wide_name_keeps_a_plots_frame() -> None:
    """A feature or version named in CJK or with an emoji: the plot's lines stay as wide as
    the plot (plotext lays out characters, not cells: such a name shifted its frame)."""
    from textual.app import App, ComposeResult

    from tui.plots import PlotPanel, Series

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield PlotPanel("drift", id="p")

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(PlotPanel)
        series = [Series("漢字🚀列名", [0.1, 0.2, 0.15]), Series("plain", [0.3, 0.1, 0.2])]
        panel.lines(["1", "2", "3"], series, ["feature", "psi"], [["漢字🚀列名", "0.1"]])
        await pilot.pause(0.3)
        built = panel.plot.plt.build()
        widths = {cell_len(Text.from_ansi(line).plain) for line in built.splitlines()}
        assert len(widths) == 1, widths
