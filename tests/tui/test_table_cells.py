"""DeckTable draws one-line text cells its own faster way (the Jobs tab's first paint spent
half its time in Rich's general path): every cell must come out as the very segments
DataTable itself draws, whatever the text, its styles, the column's width, the cursor."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.format import literal, status_text
from tui.widgets import DeckTable, Row

STYLES = {"failed": "bold red", "completed": "green"}


def cells() -> list[Any]:
    """Cells as the screens make them, and the awkward ones a user's names can give."""
    target = literal("churn v3")
    target.append("  ")
    target.append_text(literal("C=0.1 lr=0.0003 " * 4, "dim"))
    spans = Text("a bold word and an italic one")
    spans.stylize("bold", 2, 6)
    spans.stylize("italic", 19, 25)
    return [
        "plain words",
        "",
        "   padded   ",
        "[bold]not markup[/]",
        "名前は長いモデルの名前です",  # two cells a character
        "emoji 🙂 in a name",
        "bell\x07 and escape\x1b[31m made visible",
        status_text("failed", STYLES),
        status_text("completed", STYLES),
        target,
        spans,
        Text("x" * 60, overflow="ellipsis"),
        Text("cropped " * 10, overflow="crop"),
        Text("right", justify="right"),  # not covered: drawn DataTable's way
        Text("two\nlines"),  # not covered either
        Text("a\ttab"),
        Text("styled whole", style="underline"),
    ]


class Tables(App[None]):
    CSS = "DeckTable { height: 1fr; }"
    COLUMNS: ClassVar[list[tuple[str, int | None]]] = [
        ("wide", None),
        ("narrow", 6),
        ("one", 1),
        ("three", 3),
    ]

    def compose(self) -> ComposeResult:
        table = DeckTable(id="t")
        for name, width in self.COLUMNS:
            table.add_column(name, key=name, width=width)
        yield table


def both_ways(table: DeckTable, row: int, column: int, width: int, **kw: Any) -> tuple[Any, Any]:
    style = table.rich_style
    table._cell_render_cache.clear()
    ours = table._render_cell(row, column, style, width, **kw)
    table._cell_render_cache.clear()
    theirs = DataTable._render_cell(table, row, column, style, width, **kw)
    return ours, theirs


async def test_cells_are_drawn_as_datatable_draws_them() -> None:
    app = Tables()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(DeckTable)
        values = cells()
        table.sync([Row(f"r{i}", [v, v, v, v]) for i, v in enumerate(values)])
        await pilot.pause()
        compared = 0
        for row in range(len(values)):
            for column, spec in enumerate(table.ordered_columns):
                for width in {spec.get_render_width(table), 2, 3, 5, 40}:
                    for cursor, hover in ((False, False), (True, False), (False, True)):
                        ours, theirs = both_ways(
                            table, row, column, width, cursor=cursor, hover=hover
                        )
                        assert ours == theirs, (values[row], width, cursor, hover)
                        compared += 1
        assert compared > 500
        # The fast way was taken (a cell it covers is not drawn by DataTable's way).
        table._cell_render_cache.clear()
        assert table._one_line(literal("plain"), 10, table.rich_style, table.rich_style)
        assert table._one_line(Text("right", justify="right"), 10, table.rich_style, None) is None
