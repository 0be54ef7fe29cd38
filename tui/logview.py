"""A job's log on screen: a bounded window of lines, tailing while the job runs.

The widget never holds more than WINDOW lines; the file on disk holds them all. Older
lines are read back through the Deck's LogIndex when the reader scrolls past the top of
the window, searches, or jumps to the next error.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.highlighter import Highlighter
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, Log

from core.logs import ERROR_PATTERN
from core.text import printable
from tui.format import literal
from tui.widgets import DeckNode, FilterBox, in_view

WINDOW = 500
TAIL_EVERY = 0.1
_ERROR_RX = re.compile(ERROR_PATTERN, re.IGNORECASE)
# One lock per job: a LogIndex grows itself while it reads and is not thread-safe.
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def shown(lines: list[str]) -> list[str]:
    """Log lines as the view holds them: what a job printed, its control characters made
    visible (an escape sequence in a log must not reach the terminal; the Log widget itself
    replaces only some of them). Lengths, wrapping and search highlights are of these."""
    return [printable(line) for line in lines]


def fit_parts(parts: list[tuple[int, str]], width: int) -> str:
    """The texts of ``parts`` (priority, text) joined with `` · `` in their order, the
    highest priority number left out first until the line fits ``width`` cells (a width of
    0, not laid out yet: all of them); the first part is kept (the label cuts it with …)."""
    kept = list(parts)
    while width > 0 and len(kept) > 1 and cell_len(" · ".join(t for _, t in kept)) > width:
        kept.remove(max(kept[1:], key=lambda part: part[0]))
    return " · ".join(text for _, text in kept)


def index_lock(job_id: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(job_id, threading.Lock())


class LogHighlighter(Highlighter):
    """Errors in the error colour; the current search in reverse video."""

    def __init__(self) -> None:
        self.error_style = "bold red"
        self.pattern: re.Pattern[str] | None = None

    def highlight(self, text: Text) -> None:
        plain = text.plain
        for m in _ERROR_RX.finditer(plain):
            text.stylize(self.error_style, m.start(), m.end())
        if self.pattern is not None:
            for m in self.pattern.finditer(plain):
                text.stylize("reverse", m.start(), m.end())


class LogView(Log):
    """The Log widget with keys to scroll; scrolling up tells its pane to stop following."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False, id="log.up"),
        Binding("down", "scroll_down", "Down", show=False, id="log.down"),
        Binding("left", "scroll_left", "Left", show=False, id="log.left"),
        Binding("right", "scroll_right", "Right", show=False, id="log.right"),
        Binding("pageup", "page_up", "Page up", show=False, id="log.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="log.page_down"),
        Binding("home", "scroll_home", "Top", show=False, id="log.top"),
        Binding("end", "resume", "Follow (end)", show=False, id="log.end"),
    ]

    class ScrolledUp(Message):
        def __init__(self, at_top: bool) -> None:
            super().__init__()
            self.at_top = at_top

    class ScrolledDown(Message):
        def __init__(self, at_bottom: bool) -> None:
            super().__init__()
            self.at_bottom = at_bottom

    class Resume(Message):
        pass

    class Top(Message):
        """The log's first line, not only the window's."""

    class Resized(Message):
        """Taller or shorter (the search box closed, the terminal resized): other lines in
        view, with no scroll."""

    def on_resize(self, _event: events.Resize) -> None:
        self.post_message(self.Resized())

    def _up(self) -> None:
        self.post_message(self.ScrolledUp(self.scroll_y <= 0))

    def action_scroll_up(self) -> None:
        self._up()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._up()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.post_message(self.Top())

    def action_scroll_down(self) -> None:
        self.post_message(self.ScrolledDown(self.is_vertical_scroll_end))
        super().action_scroll_down()

    def action_page_down(self) -> None:
        self.post_message(self.ScrolledDown(self.is_vertical_scroll_end))
        super().action_page_down()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._up()
        super()._on_mouse_scroll_up(event)

    def action_resume(self) -> None:
        self.post_message(self.Resume())


class LogPane(DeckNode, Vertical):
    """The log of one job: follows its end while it runs; a window you can page through."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow", id="log.follow"),
        # In ``?`` only: with a search's "n Next match" the footer would not fit 80 columns.
        Binding("w", "toggle_wrap", "Wrap", show=False, id="log.wrap"),
        Binding("slash", "search", "Search", id="log.search"),
        Binding("n", "next_match", "Next match", id="log.next"),
        Binding("e", "next_error", "Next error", id="log.error"),
        Binding("end", "resume", "Follow end", show=False, id="log.resume"),
    ]

    def __init__(self, job_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.job_id = job_id
        self.follow = True
        self.wrap = False
        self.total = 0  # complete lines in the file, as last seen
        self.start = 0  # file line number of the first line in the window
        self.lines: deque[str] = deque(maxlen=WINDOW)
        self.pattern: str | None = None
        self.match: int | None = None
        self.finished = False  # the job is final: one last read, then stop tailing
        self.lost: str | None = None  # the host of a job failed as lost (see host_lost)
        self._final_read = False
        self._wrapped_at = 0  # the width the rows were last wrapped to
        self._highlighter = LogHighlighter()
        self._user_moved = False  # the user scrolled since the last match was found

    def compose(self) -> ComposeResult:
        yield Label("", id="log-status", classes="window")
        log = LogView(highlight=True, id="log", auto_scroll=True)
        log.highlighter = self._highlighter
        yield log
        yield FilterBox("search the whole log (enter: next match)", id="log-search")

    def on_mount(self) -> None:
        styles = self.styles_of_status
        self._highlighter.error_style = styles.get("failed") or "bold"
        self.log_widget.focus()
        self.watch(self.log_widget, "scroll_y", self._view_moved, init=False)
        self.tail()
        self.set_interval(TAIL_EVERY, self.tail)

    @property
    def log_widget(self) -> LogView:
        return self.query_one(LogView)

    @property
    def end(self) -> int:
        return self.start + len(self.lines)

    # -- tailing --------------------------------------------------------------------------

    def tail(self) -> None:
        """Read what was appended (at most a window of the newest lines) while following."""
        if self._final_read or not in_view(self):
            return
        deck = self.deck
        job_id, follow, end = self.job_id, self.follow, self.end
        finished = self.finished

        def read() -> tuple[int, int, list[str], bool]:
            with index_lock(job_id):
                index = deck.log_index(job_id)
                total = index.refresh()
                if not follow or total <= end:
                    return total, end, [], finished
                first = max(end, total - WINDOW)
                return total, first, shown(index.read(first, total - first)), finished

        self.load("log.tail", read, self._tailed)

    def _tailed(self, result: tuple[int, int, list[str], bool]) -> None:
        total, first, lines, was_finished = result
        self.total = total
        if was_finished:
            self._final_read = True
        if lines and self.follow and first >= self.end:
            self._append(first, lines)
        self._show_status()

    def _append(self, first: int, lines: list[str]) -> None:
        log = self.log_widget
        gap = first != self.end
        overflow = len(self.lines) + len(lines) > WINDOW
        if gap or overflow:
            keep = [] if gap else list(self.lines)
            merged = (keep + lines)[-WINDOW:]
            self.start = first + len(lines) - len(merged)
            self.lines = deque(merged, maxlen=WINDOW)
            log.clear()
            log.write_lines(self._rows(self.lines), scroll_end=False)
        else:
            self.lines.extend(lines)
            log.write_lines(self._rows(lines), scroll_end=False)
        self._to_end()

    def _to_end(self) -> None:
        """While following, the newest line in view. Asked of the Log widget it would scroll
        only when the view is at its very end already, which it is not after a first write
        taller than the pane, a scroll bar that appeared or a resize: then it never would
        again, while the status says "following"."""
        if not self.follow:
            return
        log = self.log_widget
        log.scroll_end(animate=False, immediate=True, x_axis=False)
        log.call_after_refresh(self._end_after_layout)

    def _end_after_layout(self) -> None:
        if self.follow:  # not paused meanwhile
            self.log_widget.scroll_end(animate=False, immediate=True, x_axis=False)

    def _wrap_width(self) -> int:
        """Columns a wrapped row may take: the view's, less its scroll bar."""
        return max(20, self.log_widget.scrollable_content_region.width)

    def _rows(self, lines: Any) -> list[str]:
        if not self.wrap:
            return list(lines)
        width = self._wrapped_at = self._wrap_width()
        rows: list[str] = []
        for line in lines:
            if len(line) <= width:
                rows.append(line)
            else:
                rows.extend(line[i : i + width] for i in range(0, len(line), width))
        return rows

    def job_finished(self) -> None:
        """The job is final: read to the end once more, then stop tailing."""
        self.finished = True
        if self.lost is not None:  # its host is back, and has copied the rest
            self.lost = None
            self._show_status()

    def host_lost(self, host: str) -> None:
        """The job failed as lost (its host fell silent): its log is what that host copied
        so far, and an engine starting there again copies the rest; so tailing goes on."""
        if self.lost != host:
            self.lost = host
            self._show_status()

    # -- windows --------------------------------------------------------------------------

    def load_window(
        self, first: int, focus_line: int | None = None, then: Callable[[], None] | None = None
    ) -> None:
        """Show lines ``first`` .. ``first + WINDOW``; put ``focus_line`` near the top; then
        call ``then``."""
        deck = self.deck
        job_id = self.job_id

        def read() -> tuple[int, int, list[str]]:
            with index_lock(job_id):
                index = deck.log_index(job_id)
                total = index.refresh()
                start = max(0, min(first, max(0, total - WINDOW)))
                return total, start, shown(index.read(start, WINDOW))

        def show(result: tuple[int, int, list[str]]) -> None:
            total, start, lines = result
            self.total, self.start = total, start
            self.lines = deque(lines, maxlen=WINDOW)
            self._rebuild()
            if focus_line is not None:
                self._scroll_to_line(focus_line)
            else:
                self._to_end()
            self._show_status()
            if then is not None:
                then()

        self.load("log.window", read, show, if_idle=False)

    def _rebuild(self) -> None:
        log = self.log_widget
        log.clear()
        log.write_lines(self._rows(self.lines), scroll_end=False)

    def _row_of(self, line: int) -> int:
        offset = max(0, line - self.start)
        if not self.wrap:
            return offset
        width = self._wrap_width()
        return sum(max(1, -(-len(x) // width)) for x in list(self.lines)[:offset])

    def _scroll_to_line(self, line: int) -> None:
        row = self._row_of(line)
        self.log_widget.scroll_to(y=max(0, row - 3), animate=False, immediate=True)

    def _top_line(self) -> int:
        """The file line number at the top of the view."""
        return self._line_at(int(self.log_widget.scroll_y))

    def _line_at(self, y: int) -> int:
        """The file line number shown on row ``y`` of the window (``end`` past its last)."""
        if not self.wrap:
            return min(self.start + y, self.end)
        width = self._wrap_width()
        rows = 0
        for i, x in enumerate(self.lines):
            rows += max(1, -(-len(x) // width))
            if rows > y:
                return self.start + i
        return self.end

    def _in_view(self) -> tuple[int, int]:
        """The file line numbers of the first and last lines in view (from 1)."""
        log = self.log_widget
        top = int(log.scroll_y)
        height = max(1, log.scrollable_content_region.height)
        first = self._line_at(top)
        last = min(self.end, self._line_at(top + height - 1) + 1)
        return first + 1, max(first + 1, last)

    # -- follow ---------------------------------------------------------------------------

    def pause(self) -> None:
        if self.follow:
            self.follow = False
            self._show_status()
            self.screen.refresh_bindings()

    def action_toggle_follow(self) -> None:
        if self.follow:
            self.pause()
        else:
            self.action_resume()

    def action_resume(self) -> None:
        self.follow = True
        self.match = None
        self.load_window(max(0, self.total - WINDOW))
        self.log_widget.scroll_end(animate=False)
        self._show_status()
        self.screen.refresh_bindings()

    def on_log_view_scrolled_up(self, event: LogView.ScrolledUp) -> None:
        self.pause()
        self._user_moved = True
        if event.at_top and self.start > 0:
            top = self.start
            self.load_window(top - WINDOW // 2, focus_line=top)

    def on_log_view_scrolled_down(self, event: LogView.ScrolledDown) -> None:
        self._user_moved = True
        if event.at_bottom and not self.follow and self.end < self.total:
            bottom = self.end
            self.load_window(bottom - WINDOW // 2, focus_line=bottom - 3)

    def on_log_view_resume(self, _event: LogView.Resume) -> None:
        self.action_resume()

    def on_log_view_resized(self, _event: LogView.Resized) -> None:
        self._show_status()  # the lines in view

    def on_log_view_top(self, _event: LogView.Top) -> None:
        self.match = None  # the view leaves the match: `n` goes on from the first line
        self.pause()
        self._show_status()
        if self.start > 0:
            self.load_window(0, focus_line=0)
        else:
            self.log_widget.scroll_home(animate=False)

    def action_toggle_wrap(self) -> None:
        top = self._top_line()  # as the rows are now, before they change
        self.wrap = not self.wrap
        self._rewrap(top)
        self._show_status()

    def _rewrap(self, top: int | None = None) -> None:
        """The rows again (wrapped to the view's width, or not), the line at the top of the
        view still at its top (a long one wrapped showed its tail there)."""
        top = self._top_line() if top is None else top
        self._rebuild()
        if self.follow:
            self._to_end()
        else:
            self.log_widget.scroll_to(y=self._row_of(top), animate=False, immediate=True)

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self._resized)  # once the view has its new size

    def _resized(self) -> None:
        self._show_status()  # what fits the new width
        if self.wrap and self._wrap_width() != self._wrapped_at:
            self._rewrap()
        else:
            self._to_end()

    # -- search ---------------------------------------------------------------------------

    def action_search(self) -> None:
        self.query_one(FilterBox).open()

    def on_filter_box_applied(self, event: FilterBox.Applied) -> None:
        event.stop()
        pattern = event.value.strip()
        event.box.close()
        self.log_widget.focus()
        if not pattern:
            self.pattern = None
            self._highlighter.pattern = None
            self.log_widget.refresh()
            return
        self.pattern = pattern
        self.screen.refresh_bindings()
        self._highlighter.pattern = re.compile(re.escape(pattern), re.IGNORECASE)
        self.match = None
        self._find(pattern, regex=False, what=f"{pattern!r}")

    def on_filter_box_dismissed(self, event: FilterBox.Dismissed) -> None:
        event.stop()
        event.box.close()  # what was typed stays for the next ``/``
        self.log_widget.focus()

    def action_next_match(self) -> None:
        if self.pattern:
            self._find(self.pattern, regex=False, what=f"{self.pattern!r}")
        else:
            self.action_search()

    def action_next_error(self) -> None:
        self._find(ERROR_PATTERN, regex=True, what="an error")

    def _find(self, pattern: str, *, regex: bool, what: str) -> None:
        deck = self.deck
        job_id = self.job_id
        start = (self.match + 1) if self.match is not None else self._top_line()

        def search() -> tuple[int | None, bool]:
            with index_lock(job_id):
                index = deck.log_index(job_id)
                line = index.search(pattern, start, forward=True, regex=regex)
                if line is None and start > 0:  # wrap around to the top, like less and vim
                    return index.search(pattern, 0, forward=True, regex=regex), True
                return line, False

        def found(result: tuple[int | None, bool]) -> None:
            line, wrapped = result
            if line is None:
                self.notify(f"no line with {what}")
                return
            if wrapped:
                self.notify("search wrapped to the top of the log")
            self.pause()
            self.match = line
            self._user_moved = False  # the view goes to the match: it is in view
            if self.start <= line < self.end:
                self._scroll_to_line(line)
                self._show_status()
                self.call_after_refresh(self._show_column, line, pattern, regex)
            else:
                self.load_window(
                    line - WINDOW // 4,
                    focus_line=line,
                    then=lambda: self.call_after_refresh(self._show_column, line, pattern, regex),
                )

        self.load("log.search", search, found, if_idle=False)

    def _show_column(self, line: int, pattern: str, regex: bool, tries: int = 20) -> None:
        """Scroll sideways so that the match on ``line`` is in view (unless wrapped)."""
        if self.wrap or not self.start <= line < self.end:
            return
        text = self.lines[line - self.start]
        found = re.search(pattern if regex else re.escape(pattern), text, re.IGNORECASE)
        if found is None:
            return
        log = self.log_widget
        width = log.scrollable_content_region.width
        # Measured as the Log draws the line: tabs expanded, by Rich's cell widths.
        start = cell_len(text[: found.start()].expandtabs())
        end = cell_len(text[: found.end()].expandtabs())
        if log.scroll_x <= start and end <= log.scroll_x + width:
            return
        x = max(0, start - width // 4)
        if x > log.max_scroll_x and tries:
            # A window just loaded: the Log measures its lines' width on a thread of its own.
            self.set_timer(0.05, lambda: self._show_column(line, pattern, regex, tries - 1))
            return
        log.scroll_to(x=x, animate=False, immediate=True)

    # -- status ---------------------------------------------------------------------------

    def _show_status(self) -> None:
        # (priority, text) in the order shown; a pane too narrow for them all drops the
        # least wanted (the highest number) first, so the line is never cut mid-part.
        parts: list[tuple[int, str]] = []
        if self.lost is not None:
            parts.append((0, f"host {self.lost} lost: the rest when it is back"))
        if self.follow:
            parts.append((1, "following" if not self.finished else "end of log"))
        elif self.finished:  # nothing comes any more: what is below the view is not newer
            below = self.total - (self._in_view()[1] if self.lines else self.end)
            parts.append((1, f"{below:,} more below" if below > 0 else "end of log"))
        else:
            new = self.total - self.end
            parts.append((1, "paused" + (f" (+{new:,} newer)" if new > 0 else "")))
        if self.match is not None:
            parts.append((2, f"match at line {self.match + 1:,}"))
        if self.lines:  # those in view, not all of the window read (it said 1-N at the end)
            first, last = self._in_view()
            parts.append((3, f"lines {first:,}-{last:,} of {self.total:,}"))
        else:
            parts.append((3, f"{self.total:,} lines"))
        if self.wrap:
            parts.append((5, "wrap"))
        if not self.follow:
            parts.append((4, "end follows"))
        label = self.query_one("#log-status", Label)
        line = fit_parts(parts, label.content_size.width)
        label.update(literal(line))  # a host name

    def _view_moved(self, _y: float = 0.0) -> None:
        self._forget_match_out_of_view()
        self._show_status()  # the lines in view

    def _forget_match_out_of_view(self) -> None:
        """As the view moves (scrolled by the user, animated): a match no longer in view
        is no longer where the search is (the status said "match at line N" after home);
        ``n`` goes on from the view."""
        if self.match is None or not self._user_moved:
            return
        log = self.log_widget
        row = self._row_of(self.match)
        top = int(log.scroll_y)
        in_window = self.start <= self.match < self.end
        if not in_window or not top <= row < top + log.scrollable_content_region.height:
            self.match = None
            self._show_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_match":
            return bool(self.pattern)  # hidden until there is a search
        return True
