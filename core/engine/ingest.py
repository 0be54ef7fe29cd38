"""A job's progress records: new lines of its events.jsonl into its timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.events import JobEventKind
from core.jobrow import JobRow
from core.records import (
    MAX_RECORD_BYTES,
    BadRecord,
    JobRecord,
    excerpt,
    parse_job_record,
)
from core.store import Store

from .common import SKIPS_LISTED, describe


def job_event(store: Store, job_id: str, kind: str, message: str, details: dict[str, Any]) -> None:
    """One event in a job's timeline, in a transaction of its own."""
    with store.writer(rows=True) as s:
        conn = s.connection()
        job = JobRow.load(conn, job_id)
        if job is None:
            return
        job.add_event(kind, message, store.now(), details)
        job.save(conn)
        s.commit()


def made_at(rec: JobRecord, after: datetime, now: datetime) -> datetime:
    """When the job made a record: the time it wrote with it (``at``), kept between the
    previous record's (or the job's start) and ``now``: a clock that stepped back, or
    another host's that runs ahead, orders no record out of its place. ``now`` when it
    wrote none."""
    if rec.at is None:
        return now
    try:
        made = datetime.fromtimestamp(rec.at, UTC)
    except (OverflowError, OSError, ValueError):
        return now
    return min(max(made, after), now)


# Reports of progress closer together than this keep the last of each quick run: a job that
# reports every step of a loop does not fill its timeline (metrics all stay).
PROGRESS_EVERY = timedelta(seconds=0.2)


class Ingest:
    """Moves checked records of running jobs' events.jsonl into their timelines."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.unreadable: set[str] = set()  # jobs told that their events.jsonl is unreadable

    def ingest(self, job_id: str, offset: int | None) -> None:
        """Move new progress and metrics lines of events.jsonl into the job's timeline, in a
        transaction of its own.

        Each line is checked (the job's code can write anything there): a bad one is
        skipped with a ``record_skipped`` event saying what was wrong, and the rest go on.
        """
        path = self.store.job_dir(job_id) / "events.jsonl"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            self._told_unreadable(job_id, exc)
            return
        if size == 0 or (offset is not None and size <= offset):
            return  # nothing new: no write lock (this runs for every running job every tick)
        told = job_id in self.unreadable
        try:
            with self.store.writer(rows=True) as s:
                conn = s.connection()
                job = JobRow.load(conn, job_id)
                if job is None or size <= job.events_offset:
                    return
                self._read(job, path, size)
                if job.save(conn):
                    s.commit()
        except BaseException:
            if not told:
                self.unreadable.discard(job_id)  # not said after all: again next time
            raise

    def _told_unreadable(self, job_id: str, exc: OSError) -> None:
        if job_id in self.unreadable:
            return
        try:
            with self.store.writer(rows=True) as s:
                conn = s.connection()
                job = JobRow.load(conn, job_id)
                self._unreadable_event(job, exc)
                if job is not None and job.save(conn):
                    s.commit()
        except BaseException:
            self.unreadable.discard(job_id)
            raise

    def ingest_into(self, job: JobRow) -> None:
        """The same into the caller's row (written by the transaction that ends the job)."""
        path = self.store.job_dir(job.id) / "events.jsonl"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            self._unreadable_event(job, exc)
            return
        if size > job.events_offset:
            self._read(job, path, size)

    def _read(self, job: JobRow, path: Path, size: int) -> bool:
        """Add the records between the job's offset and ``size``; whether anything changed."""
        now = self.store.now()
        when = job.started_at or job.created_at  # the last record's time, so far
        pos = job.events_offset
        bad = 0
        kept: datetime | None = None  # the time of the last report of progress added
        pending: tuple[JobRecord, datetime] | None = None  # one too close to it, held
        try:
            fh = open(path, "rb")  # noqa: SIM115  (closed below)
        except OSError as exc:
            return self._unreadable_event(job, exc)
        with fh:
            while pos < size:  # a chunk at a time: a backlog never sits in memory whole
                fh.seek(pos)
                data = fh.read(min(size - pos, MAX_RECORD_BYTES + 1))
                end = data.rfind(b"\n")
                if end >= 0:
                    lines, consumed = data[:end].split(b"\n"), end + 1
                elif len(data) > MAX_RECORD_BYTES:
                    # Longer than any record: skipped, and the rest of the line after it is
                    # one more bad line.
                    lines, consumed = [data], len(data)
                else:
                    break  # a line still being written
                at = pos
                # Every record, in the order written, at the time it was made; of reports
                # of progress closer together than PROGRESS_EVERY, the last of each run.
                for raw in lines:
                    try:
                        if raw.strip():
                            rec = parse_job_record(raw)
                            when = made_at(rec, when, now)
                            if rec.kind == JobEventKind.progress:
                                if kept is None or when - kept >= PROGRESS_EVERY:
                                    job.add_event(rec.kind, rec.message, when, rec.details)
                                    kept, pending = when, None
                                else:
                                    pending = (rec, when)
                                continue
                            kept = self._add_pending(job, pending, kept)
                            pending = None
                            job.add_event(rec.kind, rec.message, when, rec.details)
                    except BadRecord as exc:
                        kept = self._add_pending(job, pending, kept)
                        pending = None
                        bad += 1
                        if bad <= SKIPS_LISTED:
                            job.add_event(
                                JobEventKind.record_skipped,
                                f"skipped a bad line of events.jsonl: {exc}",
                                when,  # after the record before it
                                {"reason": str(exc), "line": excerpt(raw), "offset": at},
                            )
                    at += len(raw) + 1
                pos += consumed
        self._add_pending(job, pending, kept)
        if bad > SKIPS_LISTED:
            more = bad - SKIPS_LISTED
            job.add_event(
                JobEventKind.record_skipped,
                f"skipped {more} more bad line(s) of events.jsonl",
                now,
                {"count": more},
            )
        if pos == job.events_offset:
            return False
        job.events_offset = pos
        return True

    @staticmethod
    def _add_pending(
        job: JobRow, pending: tuple[JobRecord, datetime] | None, kept: datetime | None
    ) -> datetime | None:
        """The report of progress held back (the last of a quick run), added before the
        record that follows it; the time of the last report added."""
        if pending is None:
            return kept
        rec, when = pending
        job.add_event(rec.kind, rec.message, when, rec.details)
        return when

    def _unreadable_event(self, job: JobRow | None, exc: OSError) -> bool:
        """The job's events.jsonl cannot be read (its code made it a folder, say): said once
        in its timeline; the job goes on, and ends, without its records. Whether an event
        was added to ``job``."""
        if job is None or job.id in self.unreadable:
            return False
        reason = describe(exc)
        job.add_event(
            JobEventKind.record_skipped,
            f"could not read events.jsonl: {reason}",
            self.store.now(),
            {"reason": reason},
        )
        self.unreadable.add(job.id)
        return True
