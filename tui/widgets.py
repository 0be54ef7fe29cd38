"""Small widgets and helpers shared by the screens: keyed tables and background loading."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.styles import RenderStyles
from textual.dom import DOMNode
from textual.geometry import Region
from textual.message import Message
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Label
from textual.widgets._footer import FooterKey  # not exported: the footer's keys

from core.errors import ModelDeckError, database_refusal
from core.kinds import KINDS
from core.lifecycle import JobType
from core.text import printable
from tui.format import fit_crumb, fit_label, literal, printable_text

if TYPE_CHECKING:
    from core.service import Deck
    from tui.app import ModelDeckApp

log = logging.getLogger("modeldeck.tui")
T = TypeVar("T")


class Loaded(Message):
    """The result of a Deck call made on a thread, delivered to the node that asked."""

    bubble = False

    def __init__(self, ok: bool, result: Any, callback: Callable[[Any], None] | None) -> None:
        super().__init__()
        self.ok = ok
        self.result = result
        self.callback = callback


class Background:
    """Run Deck calls (which may wait on the database) on threads, never on the UI thread.

    Mixed into screens and widgets: ``load`` runs ``fn`` in a thread worker and hands its
    result to ``callback`` on the UI thread; a ModelDeckError becomes a notification.
    """

    _busy: set[str]

    def load(
        self,
        key: str,
        fn: Callable[[], Any],
        callback: Callable[[Any], None] | None = None,
        *,
        if_idle: bool = True,
        on_error: Callable[[Exception], None] | None = None,
    ) -> bool:
        """Start ``fn``; with ``if_idle`` do nothing while the last call of ``key`` runs."""
        node = cast(DOMNode, self)
        busy = self.__dict__.setdefault("_busy", set())
        if if_idle and key in busy:
            return False
        busy.add(key)

        def run() -> None:
            try:
                result: Any = fn()
                ok = True
            except ModelDeckError as exc:
                result, ok = exc, False
            except Exception as exc:  # a bug: keep its traceback in the log, not on screen
                log.exception("background call %s failed", key)
                result, ok = exc, False
            busy.discard(key)
            if ok:
                node.post_message(Loaded(True, result, callback))
            else:
                node.post_message(Loaded(False, result, on_error or self._notify_error))

        node.run_worker(run, thread=True, group=key, exit_on_error=False)
        return True

    def _notify_error(self, exc: Exception) -> None:
        node = cast(DOMNode, self)
        refusal = database_refusal(exc)  # refused by the database: a role, a lock, a full disk
        if refusal is not None:
            exc = refusal
        message = str(exc) if isinstance(exc, ModelDeckError) else f"unexpected error: {exc!r}"
        node.app.notify(message, severity="error", timeout=6)

    def on_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.callback is not None:
            message.callback(message.result)


class DeckFooter(Footer):
    """The screens' footer (compact; ctrl+p is in the keys help), recomposed once for any
    number of binding changes before its next refresh. Textual's recomposes once for each
    (5 ms each): while a project screen opens, focus, tab, rows and keys change its bindings
    7-8 times, and when those recomposes landed before the Jobs tab's rows, they held back
    its first paint by about 45 ms (``tests/bench/bench_tui.py``)."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
        self._recompose_due = False

    def bindings_changed(self, screen: Screen) -> None:
        # Footer.bindings_changed recomposes after the next refresh, on these conditions.
        scheduled = screen.app.app_focus and self.is_attached and screen is self.screen
        if scheduled and self._recompose_due:
            return  # the one already scheduled shows this change too
        self._recompose_due = scheduled
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        self._recompose_due = False  # a change from now on needs a recompose of its own
        await super().recompose()
        self.call_after_refresh(self._fit)

    # What a footer too narrow for all its keys keeps: how to see them all, and how to leave.
    KEPT: ClassVar[frozenset[str]] = frozenset({"help", "quit"})

    def on_mount(self) -> None:  # Footer's own on_mount is called too (each in the MRO)
        self.call_after_refresh(self._fit)  # its first keys come without a recompose

    def on_resize(self, _event: events.Resize) -> None:
        if self.query(".-hidden-key"):
            self.call_later(self.recompose)  # every key again, then as many as fit
        else:
            self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Leave out keys from the right, never ``?`` and ``q``, until the rest fit the
        footer's width (a narrow screen cut them off its end, ``?`` and ``q`` first)."""
        keys = [k for k in self.query(FooterKey) if k.display]
        if any(not k.outer_size.width for k in keys):
            self.call_after_refresh(self._fit)  # not laid out yet
            return
        # What is past the right edge; each key left out gives its width and the gap after it.
        over = self.virtual_size.width - self.size.width
        gap = keys[1].region.x - keys[0].region.right if len(keys) > 1 else 0
        for key in reversed(keys):
            if over <= 0:
                break
            if key.action not in self.KEPT:
                over -= key.outer_size.width + gap
                key.display = False
                key.add_class("-hidden-key")

    def screen_resumed(self) -> None:
        """Its screen is active again. A recompose scheduled while another screen was active
        went to that screen's after-refresh callbacks (Textual hands them to the active
        screen), and is lost if that screen was dismissed first: show this screen's keys now,
        and never wait for the lost one."""
        if self._recompose_due:
            self._recompose_due = False
            self.call_later(self.recompose)  # from this footer: it binds its keys' data


class DeckNode(Background):
    """A screen or a pane of the modeldeck app: the app and its Deck, typed, and Deck calls
    off the UI thread (``load``). Mixed into screens and widgets, never into the app."""

    @property
    def deck_app(self) -> ModelDeckApp:
        """The app this node is mounted in."""
        return cast("ModelDeckApp", cast(DOMNode, self).app)

    @property
    def deck(self) -> Deck:
        return self.deck_app.deck

    @property
    def styles_of_status(self) -> dict[str, str]:
        """The theme's style of each job and version status (see ``format.status_text``)."""
        return self.deck_app.status_styles


def cell_text(cell: Any) -> Any:
    """A table cell as shown: a string literally (a DataTable parses strings as markup), a
    ``Text`` with its control characters made visible; other renderables as they are."""
    if isinstance(cell, str):
        return literal(cell)
    if isinstance(cell, Text):
        return printable_text(cell)
    return cell


class Ranked(Text):
    """A table's first cell, carrying its row's key so the table can sort rows by key."""

    row_key: str = ""


@dataclass(frozen=True)
class Row:
    key: str
    cells: Sequence[Any]


@dataclass(frozen=True)
class _Spec:
    key: str
    label: Any
    width: int | None
    drop: int
    shrink: int
    cut: str = "end"
    first: int = 0


def _cut(cell: Text, width: int, how: str) -> Text:
    """``cell`` in ``width`` cells, with ``…`` where it was cut: its end, its start, or (a
    version's label) its name, before its last word."""
    if how == "name":  # a version's label: unstyled but for the whole cell's style
        return Text(fit_label(cell.plain, width), style=cell.style)
    if how != "start":
        cut = cell.copy()
        cut.truncate(width, overflow="ellipsis")
        return cut
    start = len(cell.plain)
    while start > 0 and cell[start - 1 :].cell_len < width:
        start -= 1
    return Text("…").append_text(cell[start:])


def _cell_width(cell: Any) -> int:
    """How many terminal cells a table cell takes (its widest line)."""
    if isinstance(cell, Text):
        return max((cell_len(line) for line in cell.plain.split("\n")), default=0)
    return cell_len(str(cell))


class _Drawn:
    """A table's component styles while its lines are drawn: the same styles, their Rich
    style worked out once (see ``DeckTable.render_lines``)."""

    def __init__(self, styles: RenderStyles) -> None:
        self._styles = styles
        self._rich: Style | None = None

    @property
    def rich_style(self) -> Style:
        if self._rich is None:
            self._rich = self._styles.rich_style
        return self._rich

    def __getattr__(self, name: str) -> Any:
        return getattr(self._styles, name)


class _Drawing:
    """What a table works out once while its lines are drawn (``DeckTable.render_lines``):
    its own style, its component styles by names, and the console's ambient settings."""

    __slots__ = ("ambient", "components", "style")

    def __init__(self) -> None:
        self.style: Style | None = None
        self.components: dict[tuple[str, ...], _Drawn] = {}
        self.ambient: tuple[Any, Style, Any, Any] | None = None


class DeckTable(DataTable[Any]):
    """A row-cursor table updated by diff: keyed rows, never cleared on refresh.

    A column added with ``drop=N`` (N > 0) is left out while the table is too narrow for
    all its columns: the highest ``drop`` first, until the rest fit whole; it comes back when
    there is room. What a table may leave out is shown on the screen its rows open. When the
    rest is still too wide, a column added with ``shrink=W`` gives up room down to W cells,
    its cells cut with ``…`` (a text whose end matters least, such as a job's overrides)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="table.open"),
        # DataTable's home/end scroll sideways in a row-cursor table: go to the first/last row.
        Binding("home", "scroll_top", "First row", show=False, id="table.first"),
        Binding("end", "scroll_bottom", "Last row", show=False, id="table.last"),
    ]

    _drawing: _Drawing | None = None  # while drawing: see ``render_lines``

    def __init__(self, *, opens: bool = True, **kw: Any) -> None:
        """``opens``: enter opens the row (else its key is not offered: rows with nothing
        more to show, such as a dataset's)."""
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.opens = opens
        self._ranks: dict[str, int] = {}
        self._specs: list[_Spec] = []
        self._shown: list[int] = []  # indexes into _specs of the columns on screen
        self._cells: dict[str, list[Any]] = {}  # every row's cells, for every column
        self._widths: dict[str, list[int]] = {}
        self._order: list[str] = []
        self._narrowed: dict[int, int] = {}  # spec index -> width given to a shrunk column
        self._reserved: dict[str, int] = {}  # column key -> cells kept for a value to come

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor" and not self.opens:
            return False  # nothing to open: not in the footer or ``?``
        return super().check_action(action, parameters)

    def add_column(
        self,
        label: Any,
        *,
        width: int | None = None,
        key: str | None = None,
        default: Any = None,
        drop: int = 0,
        shrink: int = 0,
        cut: str = "end",
        first: int = 0,
    ) -> Any:
        """A column; ``drop`` > 0 lets it go while the table is too narrow (higher first),
        ``shrink`` > 0 lets it narrow down to that many cells, cut at its end (``cut``
        "start": at its start, for a path, whose file name matters most; "name": before its
        last word, for a version's label, whose number matters); ``first`` > 0: a table too
        narrow narrows it down to that many cells before it leaves any column out (a long
        name must not push out the rest)."""
        spec = _Spec(key or str(label), label, width, drop, shrink, cut, first)
        self._specs.append(spec)
        self._shown.append(len(self._specs) - 1)
        for key_, cells in self._cells.items():
            cells.append(default)
            self._widths[key_].append(0 if default is None else _cell_width(default))
        return super().add_column(label, width=width, key=key, default=default)

    def set_columns(self, columns: Sequence[tuple[str, Any]]) -> None:
        """Make the columns (key, title) these, in order; when they change, the rows go too
        (``sync`` brings them back with cells for the new columns)."""
        if [(spec.key, spec.label) for spec in self._specs] == list(columns):
            return
        super().clear(columns=True)
        self._specs, self._shown, self._narrowed = [], [], {}
        self._cells.clear()
        self._widths.clear()
        self._ranks.clear()
        self._order = []
        for key, label in columns:
            self.add_column(label, key=key)

    def reserve(self, key: str, width: int) -> None:
        """Keep room for ``width`` cells in column ``key`` while its values are narrower (a
        time still to come, where ``-`` is now): which columns fit does not change when it
        comes (a deployment's first run)."""
        if self._reserved.get(key) != width:
            self._reserved[key] = width
            self.fit()

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns on screen, in order."""
        return [self._specs[i].key for i in self._shown]

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if self.row_count == 0:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def _on_screen(self, key: str) -> list[Any]:
        """The cells of a row for the columns on screen, the first one carrying its key."""
        full = self._cells[key]
        cells = [full[i] if i < len(full) else None for i in self._shown]
        for position, i in enumerate(self._shown):
            width = self._narrowed.get(i)
            cell = cells[position]
            if width is not None and isinstance(cell, Text) and cell.cell_len > width:
                cells[position] = _cut(cell, width, self._specs[i].cut)
        first = Ranked.assemble(cells[0] if cells[0] is not None else "")
        first.row_key = key
        cells[0] = first
        return cells

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show ``rows`` in that order, touching only what changed."""
        # A cursor on the top row stays on top (new rows come in under it, like a feed);
        # anywhere else it stays on its row, wherever that row moves.
        keep = self.current_key if self.cursor_row > 0 else None
        wanted = {r.key for r in rows}
        columns = list(self.columns)
        added = False
        self._order = [r.key for r in rows]
        with self.app.batch_update():
            for key in [str(k.value) for k in self.rows if str(k.value) not in wanted]:
                self.remove_row(key)
                self._ranks.pop(key, None)
            for key in [k for k in self._cells if k not in wanted]:
                del self._cells[key], self._widths[key]
            for position, row in enumerate(rows):
                full = [cell_text(cell) for cell in row.cells]
                self._cells[row.key] = full
                self._widths[row.key] = [_cell_width(cell) for cell in full]
                cells = self._on_screen(row.key)
                self._ranks[row.key] = position
                if row.key in self.rows:
                    old = self.get_row(row.key)
                    for column, before, after in zip(columns, old, cells, strict=False):
                        if before != after:
                            self.update_cell(row.key, column, after, update_width=True)
                else:
                    self.add_row(*cells, key=row.key)
                    added = True
            if added and self._out_of_order(rows):
                self.sort(key=lambda values: self._ranks.get(values[0].row_key, 0))
            if keep is not None and keep in self.rows:
                self.move_cursor(row=self.get_row_index(keep), animate=False)
            self.fit()

    # -- columns that fit -----------------------------------------------------------------

    def fit(self) -> None:
        """Leave out the columns that may go (highest ``drop`` first) until the rest fit the
        table's width; bring back those there is room for."""
        if not any(spec.drop or spec.shrink or spec.first for spec in self._specs):
            return
        width = self.size.width
        if width <= 0:
            return  # not laid out (a hidden tab): fitted when it is
        header = self.header_height if self.show_header else 0
        if self.row_count + header > self.size.height:
            width -= self.styles.scrollbar_size_vertical
        pad = 2 * self.cell_padding
        need = []
        for i, spec in enumerate(self._specs):
            if spec.width is not None:
                need.append(spec.width + pad)
                continue
            label = spec.label if isinstance(spec.label, Text) else Text(str(spec.label))
            cells = [w[i] for w in self._widths.values() if i < len(w)]
            cells.append(self._reserved.get(spec.key, 0))
            need.append(max([_cell_width(label), *cells]) + pad)
        shown = set(range(len(self._specs)))
        total = sum(need)
        narrowed: dict[int, int] = {}
        for i, spec in enumerate(self._specs):
            cut = min(total - width, need[i] - pad - spec.first) if spec.first else 0
            if cut > 0:
                narrowed[i] = need[i] - pad - cut
                need[i] -= cut
                total -= cut
        for i in sorted(
            (i for i, spec in enumerate(self._specs) if spec.drop),
            key=lambda i: -self._specs[i].drop,
        ):
            if total <= width:
                break
            shown.discard(i)
            total -= need[i]
            narrowed.pop(i, None)
        for i in sorted(shown):
            spec = self._specs[i]
            if total <= width:
                break
            cut = min(total - width, need[i] - pad - spec.shrink) if spec.shrink else 0
            if cut > 0:
                narrowed[i] = need[i] - pad - cut
                total -= cut
        wanted = sorted(shown)
        if wanted != self._shown or narrowed != self._narrowed:
            self._shown = wanted
            self._narrowed = narrowed
            self._rebuild()

    def _rebuild(self) -> None:
        """Show the columns of ``_shown``: the table again, its cursor on the same row."""
        keep = self.current_key
        scroll_y = self.scroll_y
        with self.app.batch_update():
            super().clear(columns=True)
            for i in self._shown:
                spec = self._specs[i]
                width = self._narrowed.get(i, spec.width)
                super().add_column(spec.label, width=width, key=spec.key)
            for key in self._order:
                if key in self._cells:
                    self.add_row(*self._on_screen(key), key=key)
            if keep is not None and keep in self.rows:
                self.move_cursor(row=self.get_row_index(keep), animate=False)
            self.scroll_y = scroll_y

    def on_resize(self, _event: events.Resize) -> None:
        self.fit()

    async def _on_idle(self, event: events.Idle) -> None:
        """Measure new and changed cells (what DataTable does when idle), then drop the rows
        drawn before: DataTable keys its rendered rows by update count, not by column widths,
        so rows first drawn at the header's width kept it (a name cut to the width of its
        column's title) until the next change to the table."""
        measured = self._require_update_dimensions or bool(self._updated_cells)
        await super()._on_idle(event)  # DataTable's own handler then finds nothing to do
        if measured:
            self._clear_caches()
            self.refresh()

    # -- drawing cells ---------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        """The table's lines for ``crop``, its styles worked out once for all of them: for
        each line DataTable asks for the table's style and for each row the header's and the
        row's component styles, and each is a walk up the DOM merging styles (a fifth of the
        time to draw a screenful of rows, profiled). Nothing can restyle the table while its
        lines are drawn, so they are kept for the duration of the call."""
        self._drawing = _Drawing()
        try:
            return super().render_lines(crop)
        finally:
            self._drawing = None

    @property
    def rich_style(self) -> Style:
        drawing = self._drawing
        if drawing is None:
            return super().rich_style
        if drawing.style is None:
            drawing.style = super().rich_style
        return drawing.style

    def get_component_styles(self, *names: str) -> RenderStyles:
        drawing = self._drawing
        if drawing is None:
            return super().get_component_styles(*names)
        styles = drawing.components.get(names)
        if styles is None:
            styles = drawing.components[names] = _Drawn(super().get_component_styles(*names))
        return cast(RenderStyles, styles)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """A cell's lines, as DataTable draws them, drawn faster for the cells of a table's
        body that are one line of text (all of modeldeck's): DataTable renders each through
        Rich's general machinery (``Styled(Padding(cell))``, lines split and cropped twice),
        the largest part of what 100,000 jobs added to the Jobs tab's first paint (drawing
        its visible rows: about 40% less time, profiled). The result is the same segments
        (``test_table_cells`` compares the two); any other cell goes DataTable's way."""
        if row_index < 0 or column_index < 0:  # the header and row labels
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._cell_render_cache.get(key)
        if cached is not None:
            return cached
        row = self.rows[row_key]
        cell = self._get_row_renderables(row_index).cells[column_index]
        lines = None
        if row.height == 1 and isinstance(cell, Text):
            fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
            component, post = self._get_styles_to_render_cell(
                False,
                False,
                fixed,
                hover,
                cursor,
                self.show_cursor,
                self._show_hover_cursor,
                self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css",
            )
            pre = base_style + Style.from_meta({"row": row_index, "column": column_index})
            lines = self._one_line(cell, width, pre + component, post)
        if lines is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._cell_render_cache[key] = lines
        return lines

    def _one_line(
        self, cell: Text, width: int, pre: Style, post: Style
    ) -> list[list[Segment]] | None:
        """What ``Styled(Padding(cell, (0, pad)), pre, post)`` renders in one line of
        ``width`` cells, without Rich's general path; None for a cell it does not cover."""
        drawing = self._drawing
        ambient = drawing.ambient if drawing is not None else None
        if ambient is None:
            console = self.app.console
            options = self.app.console_options
            # Padding's style; the console's justify and overflow.
            ambient = (console, console.get_style("none"), options.justify, options.overflow)
            if drawing is not None:
                drawing.ambient = ambient
        console, blank, justify_default, overflow_default = ambient
        pad = self.cell_padding
        inner = width - 2 * pad
        plain = cell.plain
        justify = cell.justify or justify_default or "default"
        overflow = cell.overflow or overflow_default or "fold"
        if (
            inner <= 0
            or justify != "default"
            or overflow == "ignore"
            or cell.no_wrap is False
            or cell.end not in ("", "\n")
            or "\n" in plain
            or "\t" in plain
        ):
            return None
        # What Text.wrap does with one line that is not wrapped: cut to the width (a copy).
        line = cell
        if cell_len(plain) > inner:
            line = cell.copy()
            line.truncate(inner, overflow=overflow)
        if line.style:
            # Joined into the rendered lines, a text's own style becomes a span of it.
            line = Text("\n").join([line])
        # Then the line cut or padded to the width (what splitting the lines does).
        segments = list(line.render(console))
        if not segments and not cell.end:
            return None  # no line at all (Rich's way draws it)
        content = Segment.adjust_line_length(segments, inner, style=blank, pad=True)
        side = [Segment(" " * pad, blank)] if pad else []
        return [list(Segment.apply_style([*side, *content, *side], pre, post))]

    def _out_of_order(self, rows: Sequence[Row]) -> bool:
        return any(self.get_row_index(r.key) != i for i, r in enumerate(rows) if r.key in self.rows)


class Fitted(Label):
    """One line of text a user controls (shown literally), cut to its width by ``fit``
    (``fit_crumb``: a breadcrumb keeps its end; ``fit_label``: a version's number stays)."""

    DEFAULT_CSS = "Fitted { width: 1fr; }"

    def __init__(self, text: str, fit: Callable[[str, int], str], **kw: Any) -> None:
        super().__init__(**kw)
        self.text = text
        self._fit = fit

    def render(self) -> Text:
        return Text(self._fit(printable(self.text), self.content_size.width), end="")

    def show(self, text: str) -> None:
        self.text = text
        self.refresh()


class TopBar(Horizontal):
    """One line: where you are on the left, which engine serves on the right."""

    def __init__(self, title: str) -> None:
        super().__init__(id="topbar")
        self._crumb = Fitted(title, fit_crumb, id="crumb")
        self._engine = Label("", id="engine")

    def compose(self) -> ComposeResult:
        yield self._crumb
        yield self._engine

    def on_mount(self) -> None:
        self.watch(self.app, "engine_status", self._show_engine)

    def _show_engine(self, text: str) -> None:
        self._engine.update(literal(text))  # names a host from the database

    def set_title(self, title: str) -> None:
        """Show ``title`` (it holds user names: shown literally)."""
        self._crumb.show(title)


def in_view(widget: Widget) -> bool:
    """Whether the widget is on the current screen and not in a hidden tab (worth polling for)."""
    try:
        if not widget.screen.is_current:
            return False
    except Exception:
        return False
    node: Any = widget
    while node is not None and not isinstance(node, Screen):
        if not node.display:
            return False
        node = node.parent
    return True


class Polled(DeckNode, Generic[T]):
    """What every screen and pane that refreshes does: every few seconds, while it is in
    view, ask the Deck for its change marker (on a thread); when the marker moved since the
    last fetch (or the poll is forced, or what the node asks for changed), ``fetch`` the data
    on that thread and ``show`` it on the UI thread.

    A node starts polling with ``start_polling()`` (in its ``on_mount``). It says what to
    ``fetch`` for a ``state`` (a filter, a page: what it asks for besides the marker;
    ``poll_state``) and how to ``show`` it; ``unchanged`` runs when a poll found nothing new
    (durations of running jobs still tick). A result fetched for a state that is no longer
    the node's is dropped: the next poll fetches the right one.
    """

    poll_seconds: ClassVar[float | None] = None
    """Seconds between polls; None: the app's poll interval times ``poll_scale``."""
    poll_scale: ClassVar[float] = 1.0
    refetch_seconds: ClassVar[float | None] = None
    """Fetch again after this long even though the marker stayed: for what the marker does
    not see (a model folder added on disk; a job whose process ended while no engine serves,
    which a Deck read records)."""

    _marker: tuple[int, ...] | None = None
    _shown_state: Any = None
    _fetched_at: float = 0.0
    _ever_shown: bool = False

    def start_polling(self) -> None:
        """Fetch now, then poll every ``poll_interval`` seconds."""
        node = cast(DOMNode, self)
        self.poll(force=True)
        node.set_interval(self.poll_interval, self.poll)

    @property
    def poll_interval(self) -> float:
        if self.poll_seconds is not None:
            return self.poll_seconds
        return self.deck_app.poll * self.poll_scale

    @property
    def shown_once(self) -> bool:
        """Whether a fetch has been shown yet."""
        return self._ever_shown

    def worth_polling(self) -> bool:
        """Whether a poll now is worth its query: by default, while the node is in view."""
        return in_view(cast(Widget, self))

    def poll_state(self) -> Any:
        """What the node asks for besides the marker (compared with ``==``); None: nothing."""
        return None

    def poll(self, force: bool = False) -> bool:
        """Fetch and show what changed; ``force`` fetches whatever the marker says. False
        when no fetch was started (out of view, or the last one still runs)."""
        if not force and not self.worth_polling():
            return False
        deck = self.deck
        state = self.poll_state()
        stale = (
            self.refetch_seconds is not None
            and time.monotonic() - self._fetched_at >= self.refetch_seconds
        )
        last = None if force or stale or state != self._shown_state else self._marker

        def fetch() -> tuple[tuple[int, ...], Any] | None:
            marker = deck.change_marker()
            if last is not None and marker == last:
                return None
            return marker, self.fetch(deck, state)

        return self.load(
            f"{type(self).__name__}.poll", fetch, lambda result: self._polled(result, state)
        )

    def _polled(self, result: tuple[tuple[int, ...], Any] | None, state: Any) -> None:
        if result is None:
            self.unchanged()
            return
        if state != self.poll_state():
            return  # asked for something else meanwhile: the next poll fetches that
        self._marker, self._shown_state = result[0], state
        self._fetched_at = time.monotonic()
        self._ever_shown = True
        self.show(result[1])

    def fetch(self, deck: Deck, state: Any) -> T:
        """Read what the node shows for ``state`` (runs on a worker thread)."""
        raise NotImplementedError

    def show(self, data: T) -> None:
        """Put what ``fetch`` read on screen (runs on the UI thread)."""
        raise NotImplementedError

    def unchanged(self) -> None:
        """A poll found the marker where it was (runs on the UI thread)."""


class FilterBox(Input):
    """A one-line box docked at the top of its pane, hidden until asked for (``/``): the Jobs
    tab's filter and the log's search. ``enter`` posts ``Applied`` with what it holds,
    ``escape`` posts ``Dismissed``; its owner says what they do and where focus goes."""

    class Applied(Message):
        def __init__(self, box: FilterBox, value: str) -> None:
            super().__init__()
            self.box = box
            self.value = value

    class Dismissed(Message):
        def __init__(self, box: FilterBox) -> None:
            super().__init__()
            self.box = box

    def __init__(self, placeholder: str, *, id: str, value: str = "") -> None:
        super().__init__(value=value, placeholder=placeholder, id=id)
        self.display = False

    def open(self) -> None:
        """Show the box and type into it."""
        self.display = True
        self.focus()

    def close(self) -> None:
        """Hide the box (what it holds stays, for the next ``/``)."""
        self.display = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(self, event.value))

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape":
            event.stop()  # not the screen's "back"
            event.prevent_default()
            self.post_message(self.Dismissed(self))


def kind_binding(job_type: JobType, show: bool = True) -> Binding:
    """The key that submits a job of ``job_type``, as the job-kind registry names it."""
    verb = KINDS[job_type].verb
    return Binding(verb.key, verb.action, verb.label, show=show, id=verb.binding)
