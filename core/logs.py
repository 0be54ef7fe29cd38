"""Job logs: files the job's process writes directly, read and tailed by anyone.

The child's stdout and stderr are the log file itself, so a job can never block on a reader,
and nothing is lost when the engine dies. Readers decode leniently (invalid UTF-8 becomes
U+FFFD) and very long lines are cut for display only; the file keeps every byte.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHUNK = 1 << 20
INDEX_EVERY = 1024
DISPLAY_LINE_LIMIT = 4096


def decode(raw: bytes, limit: int | None = DISPLAY_LINE_LIMIT) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if limit is not None and len(text) > limit:
        return text[:limit] + f" … [{len(text) - limit} more characters]"
    return text


def tail(
    path: Path, offset: int, final: bool = False, max_bytes: int = 4 * CHUNK
) -> tuple[list[str], int]:
    """Complete lines from byte ``offset`` on, and the offset after them.

    A partial last line is held back until its newline arrives, unless ``final``.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return [], offset
    if not data:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        if not final or len(data) == max_bytes:
            return [], offset
        return [decode(data)], offset + len(data)
    complete = data[: end + 1]
    lines = [decode(line) for line in complete.split(b"\n")[:-1]]
    new_offset = offset + end + 1
    if final and len(data) < max_bytes and end + 1 < len(data):
        lines.append(decode(data[end + 1 :]))
        new_offset = offset + len(data)
    return lines, new_offset


class LogIndex:
    """A sparse line index of one log file (every 1,024th line's byte offset), grown as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._marks: list[int] = [0]  # byte offset of line k * INDEX_EVERY
        self._scanned = 0  # bytes scanned
        self._lines = 0  # complete lines in the scanned bytes

    def refresh(self) -> int:
        """Scan what was appended since the last call; the number of complete lines."""
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return 0
        if size <= self._scanned:
            return self._lines
        with open(self.path, "rb") as fh:
            fh.seek(self._scanned)
            pos = self._scanned
            while pos < size:
                data = fh.read(min(CHUNK, size - pos))
                if not data:
                    break
                start = 0
                while True:
                    nl = data.find(b"\n", start)
                    if nl < 0:
                        break
                    self._lines += 1
                    if self._lines % INDEX_EVERY == 0:
                        self._marks.append(pos + nl + 1)
                    start = nl + 1
                # Only whole lines count as scanned; a partial tail is rescanned next time.
                last_nl = data.rfind(b"\n")
                if last_nl < 0:
                    break
                pos += last_nl + 1
                fh.seek(pos)
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
        out: list[str] = []
        with open(self.path, "rb") as fh:
            fh.seek(self._marks[mark])
            for i, raw in enumerate(fh):
                if i < skip:
                    continue
                out.append(decode(raw.rstrip(b"\n")))
                if len(out) >= stop - start:
                    break
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
