"""How user text becomes screen text: literally, its control characters made visible."""

from __future__ import annotations

from rich.text import Text

from tui.format import literal, printable_text
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
