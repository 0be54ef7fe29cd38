"""Job logs: files the job's process writes directly, read and tailed by anyone.

The child's stdout and stderr are the log file itself, so a job can never block on a reader,
and nothing is lost when the engine dies. Readers show each line as a terminal would leave it:
invalid UTF-8 becomes U+FFFD, a carriage return goes back to the start of the line and what
follows overwrites it (a ``tqdm`` bar shows its last state), and a very long line is cut for
display only (the file keeps every byte). Lines are read in bounded chunks, so a line of any
length costs bounded memory and never hides the lines after it.
"""

from __future__ import annotations

import codecs
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1 << 20
INDEX_EVERY = 1024
DISPLAY_LINE_LIMIT = 4096
READ = 1 << 16  # bytes per read when reading a window of lines


class LogSource(Protocol):
    """Where a log's bytes are read from: its file, or its copy in the database
    (``core.logchunks``); the same bytes at the same offsets."""

    def size(self) -> int:
        """Bytes so far (FileNotFoundError when there is no log yet)."""
        ...

    def open(self) -> BinaryIO: ...


class FileSource:
    """A log file on this host."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        return os.path.getsize(self.path)

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


def _source(log: Path | LogSource) -> LogSource:
    return FileSource(log) if isinstance(log, Path) else log


class _Line:
    """One log line fed in pieces, kept as a terminal would show it.

    ``\\r`` moves the cursor back to column 0 and later characters overwrite earlier ones; only
    the first ``limit`` columns are kept, the columns beyond are counted. Memory is bounded by
    ``limit`` however long the line is and however many carriage returns it holds.
    """

    __slots__ = ("_cap", "_cursor", "_decoder", "_fed", "_limit", "_shown", "_width")

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._cap = sys.maxsize if limit is None else limit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        self._shown = ""  # the first ``_cap`` columns
        self._cursor = 0
        self._width = 0  # columns the line reached
        self._fed = False

    @property
    def pending(self) -> bool:
        """Whether any byte of an unfinished line was fed."""
        return self._fed

    def feed(self, raw: bytes) -> None:
        if raw:
            self._fed = True
            self._write(self._decoder.decode(raw))

    def finish(self) -> str:
        """The line as shown, and a fresh start for the next one."""
        self._write(self._decoder.decode(b"", final=True))
        text = self._shown
        if self._limit is not None and self._width > self._limit:
            text += f" … [{self._width - self._limit} more characters]"
        self._decoder.reset()
        self._shown, self._cursor, self._width, self._fed = "", 0, 0, False
        return text

    def _write(self, text: str) -> None:
        if not text:
            return
        first, *rest = text.split("\r")
        self._put(first, self._cursor)
        if not rest:
            return
        # Every piece after a carriage return starts at column 0: at each column the last
        # piece long enough to reach it wins. Built from the last piece back, in linear time.
        overlay = ""
        for piece in reversed(rest):
            if len(overlay) >= self._cap:
                break
            if len(piece) > len(overlay):
                overlay += piece[len(overlay) : self._cap]
        self._put(overlay, 0)
        self._width = max(self._width, max(len(p) for p in rest))
        self._cursor = len(rest[-1])

    def _put(self, text: str, at: int) -> None:
        end = at + len(text)
        if at < self._cap and text:
            kept = text[: self._cap - at]
            self._shown = self._shown[:at] + kept + self._shown[at + len(kept) :]
        self._cursor = end
        self._width = max(self._width, end)


def decode(raw: bytes, limit: int | None = DISPLAY_LINE_LIMIT) -> str:
    """One line's bytes (without its newline) as shown: see :class:`_Line`."""
    if b"\r" not in raw and (limit is None or len(raw) <= limit):
        return raw.decode("utf-8", errors="backslashreplace")  # the common case, fast
    line = _Line(limit)
    line.feed(raw)
    return line.finish()


class LogReader:
    """Reads a log file's lines as they are completed, from a byte offset on.

    It keeps the state of a line still being written between calls, so a long line (a
    progress bar without a newline) is scanned once, not again at every poll.
    """

    def __init__(
        self, path: Path | LogSource, offset: int = 0, limit: int | None = DISPLAY_LINE_LIMIT
    ):
        self.source = _source(path)
        self.offset = offset  # byte offset just after the last line returned
        self._scanned = offset  # bytes fed to ``_line`` or returned
        self._line = _Line(limit)
        self._limit = limit
        self.at_end = False  # the last read reached the end of the file

    @property
    def pending(self) -> bool:
        """Whether bytes of a line without its newline yet were read."""
        return self._line.pending

    def read(self, final: bool = False, max_bytes: int = 4 * CHUNK) -> list[str]:
        """The lines completed since the last call (reading at most ``max_bytes``).

        A partial last line is held back until its newline arrives, unless ``final`` and the
        end of the file was reached.
        """
        self.at_end = False
        try:
            with self.source.open() as fh:
                lines = self._read(fh, max_bytes)
        except FileNotFoundError:
            self.at_end = True
            return []
        if final and self.at_end and self._line.pending:
            lines.append(self._line.finish())
            self.offset = self._scanned
        return lines

    def _read(self, fh: BinaryIO, max_bytes: int) -> list[str]:
        lines: list[str] = []
        fh.seek(self._scanned)
        budget = max_bytes
        while budget > 0:
            data = fh.read(min(CHUNK, budget))
            if not data:
                self.at_end = True
                break
            budget -= len(data)
            parts = data.split(b"\n")
            rest = parts.pop()  # the start of a line whose newline is further on
            if parts:
                if self._line.pending:
                    self._line.feed(parts[0])
                    lines.append(self._line.finish())
                    parts = parts[1:]
                lines.extend(decode(p, self._limit) for p in parts)
                self.offset = self._scanned + len(data) - len(rest)
            self._line.feed(rest)
            self._scanned += len(data)
        return lines


def tail(
    path: Path | LogSource, offset: int, final: bool = False, max_bytes: int = 4 * CHUNK
) -> tuple[list[str], int]:
    """Complete lines from byte ``offset`` on, and the offset after them.

    A partial last line is held back until its newline arrives, unless ``final``. About
    ``max_bytes`` are read, more when one line is longer: the offset always moves past a
    complete line, however long.
    """
    reader = LogReader(path, offset)
    lines = reader.read(final, max_bytes)
    while not lines and reader.pending and not reader.at_end:
        lines = reader.read(final, max_bytes)
    return lines, reader.offset


class LogIndex:
    """A sparse line index of one log file (every 1,024th line's byte offset), grown as it grows."""

    def __init__(self, path: Path | LogSource) -> None:
        self.source = _source(path)
        self._marks: list[int] = [0]  # byte offset of line k * INDEX_EVERY
        self._scanned = 0  # bytes scanned
        self._lines = 0  # complete lines in the scanned bytes

    def refresh(self) -> int:
        """Scan what was appended since the last call; the number of complete lines."""
        try:
            size = self.source.size()
        except FileNotFoundError:
            return 0
        if size <= self._scanned:
            return self._lines
        with self.source.open() as fh:
            fh.seek(self._scanned)
            pos = self._scanned
            while pos < size:
                data = fh.read(min(CHUNK, size - pos))
                if not data:
                    break
                newlines = data.count(b"\n")
                if self._lines % INDEX_EVERY + newlines < INDEX_EVERY:
                    self._lines += newlines  # no mark falls in this chunk
                else:
                    nl = data.find(b"\n")
                    while nl >= 0:
                        self._lines += 1
                        if self._lines % INDEX_EVERY == 0:
                            self._marks.append(pos + nl + 1)
                        nl = data.find(b"\n", nl + 1)
                # A line without its newline yet is scanned too: only newlines count, so a
                # line of any length is passed once and the lines after it are found.
                pos += len(data)
            self._scanned = pos
        return self._lines

    @property
    def lines(self) -> int:
        return self._lines

    def read(self, start: int, count: int) -> list[str]:
        """Lines ``start`` .. ``start + count - 1`` (0-based) of the indexed part."""
        self.refresh()
        start = max(0, start)
        stop = min(self._lines, start + count)
        if stop <= start:
            return []
        mark = start // INDEX_EVERY
        skip = start - mark * INDEX_EVERY
        want = stop - start
        out: list[str] = []
        line = _Line(DISPLAY_LINE_LIMIT)
        with self.source.open() as fh:
            fh.seek(self._marks[mark])
            while len(out) < want:
                data = fh.read(READ)
                if not data:
                    break
                parts = data.split(b"\n")
                rest = parts.pop()  # the start of a line whose newline is further on
                for raw in parts:
                    if skip:
                        skip -= 1
                    elif line.pending:
                        line.feed(raw)
                        out.append(line.finish())
                    else:
                        out.append(decode(raw))
                    if len(out) >= want:
                        break
                if not skip and len(out) < want:
                    line.feed(rest)
        return out

    def search(
        self, pattern: str, start: int, forward: bool = True, regex: bool = False
    ) -> int | None:
        """The number of the next line from ``start`` matching ``pattern`` (case-insensitive)."""
        self.refresh()
        rx = re.compile(pattern if regex else re.escape(pattern), re.IGNORECASE)
        step = 4096
        if forward:
            pos = max(0, start)
            while pos < self._lines:
                for i, line in enumerate(self.read(pos, step)):
                    if rx.search(line):
                        return pos + i
                pos += step
        else:
            pos = min(start, self._lines - 1)
            while pos >= 0:
                lo = max(0, pos - step + 1)
                chunk = self.read(lo, pos - lo + 1)
                for i in range(len(chunk) - 1, -1, -1):
                    if rx.search(chunk[i]):
                        return lo + i
                pos = lo - 1
        return None


ERROR_PATTERN = r"\b(error|exception|traceback|fatal|failed|critical)\b"
