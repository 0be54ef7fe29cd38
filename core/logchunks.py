"""Job logs in the database: the engine that follows a job copies its log file in chunks as it
grows (append-only rows, byte for byte), so any host reads it live and it survives its host.

Readers see a job's log as one source of bytes (``LogSource``): the local file when it is on
this host, else the chunks. Both hold the same bytes at the same offsets, so a reader may
switch between them at any offset.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from sqlalchemy import func, insert
from sqlmodel import col, select

from core.logs import FileSource
from core.models import LogChunk
from core.store import Store

CHUNK_MAX = 1 << 20  # bytes in one row at most
ROUND_MAX = 16 << 20  # bytes one job's copy moves per round at most (a backlog waits)


class LogCopy:
    """Copies what followed jobs' log files gained since the last copy into ``log_chunk``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._copied: dict[str, tuple[int, int]] = {}  # job id: (bytes copied, next seq)

    def copy(self, job_id: str, final: bool = False) -> int:
        """Copy new bytes of the job's log (``final``: all of them); the bytes copied."""
        path = self.store.log_path(job_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        if size == 0:
            return 0  # nothing to copy: no need to ask where an earlier copy stopped
        got = self._copied.get(job_id)
        if got is None:  # asked once a job, not every round
            got = self._copied[job_id] = self._resume(job_id)
        done, seq = got
        if size <= done:
            return 0
        moved = 0
        with open(path, "rb") as fh:
            while done < size and (final or moved < ROUND_MAX):
                rows = []
                fh.seek(done)
                budget = min(size - done, ROUND_MAX)
                while budget > 0:
                    data = fh.read(min(CHUNK_MAX, budget))
                    if not data:
                        break
                    rows.append({"job_id": job_id, "seq": seq, "start": done, "data": data})
                    seq, done, moved = seq + 1, done + len(data), moved + len(data)
                    budget -= len(data)
                if not rows:
                    break
                with self.store.writer() as s:
                    s.execute(insert(LogChunk), rows)
                    s.commit()
                self._copied[job_id] = (done, seq)
        return moved

    def forget(self, job_id: str) -> None:
        self._copied.pop(job_id, None)

    def _resume(self, job_id: str) -> tuple[int, int]:
        """Where an earlier engine (or this one, before a restart) left the job's copy."""
        with self.store.reader() as s:
            row = s.exec(
                select(LogChunk.seq, LogChunk.start, func.length(LogChunk.data))
                .where(LogChunk.job_id == job_id)
                .order_by(col(LogChunk.seq).desc())
                .limit(1)
            ).first()
        return (0, 0) if row is None else (row[1] + row[2], row[0] + 1)


class ChunkReader(io.RawIOBase):
    """The chunks of one job's log read like a file: ``seek`` and ``read`` (one query per
    read, of the chunks that hold the bytes asked for)."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise io.UnsupportedOperation("only absolute seeks")
        self.pos = offset
        return offset

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        want = CHUNK_MAX * 4 if size is None or size < 0 else size
        end = self.pos + want
        with self.store.reader() as s:
            rows = s.exec(
                select(LogChunk.start, LogChunk.data)
                .where(
                    LogChunk.job_id == self.job_id,
                    col(LogChunk.start) < end,
                    col(LogChunk.start) + func.length(LogChunk.data) > self.pos,
                )
                .order_by(col(LogChunk.seq))
            ).all()
        out = bytearray()
        for start, data in rows:
            if start > self.pos + len(out):
                break  # a gap cannot be: chunks follow each other
            lo = self.pos + len(out) - start
            out += data[lo : end - start]
        self.pos += len(out)
        return bytes(out)


class ChunkLog:
    """A job's log as copied into the database."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id

    def size(self) -> int:
        with self.store.reader() as s:
            got = s.exec(
                select(func.max(LogChunk.start + func.length(LogChunk.data))).where(
                    LogChunk.job_id == self.job_id
                )
            ).first()
        return int(got or 0)

    def open(self) -> BinaryIO:
        return ChunkReader(self.store, self.job_id)  # type: ignore[return-value]


class JobLog:
    """A job's log wherever it is: the file when it is on this host, else the chunks (looked
    at again at each read: a job queued here may start on another host, and the other way)."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.path = store.log_path(job_id)
        self._file = FileSource(self.path)
        self._chunks = ChunkLog(store, job_id)

    def _here(self) -> FileSource | ChunkLog:
        return self._file if self.path.exists() else self._chunks

    def size(self) -> int:
        return self._here().size()

    def open(self) -> BinaryIO:
        return self._here().open()
