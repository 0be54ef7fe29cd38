"""What the screens and the CLI read about jobs: lists (a window at a time, filtered), one
job, its timeline, its log and a batch prediction's output. Read-only."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select

from core import convert, lookup
from core.errors import ModelDeckError
from core.events import JobEventKind
from core.inputs import require_utf8
from core.lifecycle import JobStatus, JobType
from core.logchunks import JobLog
from core.logs import LogIndex, tail
from core.models import Dataset, Job, JobEvent, Model
from core.store import Store
from core.views import EventView, JobView, PredictionsView


class JobQueries:
    """Read-only views of a store's jobs (the caller settles ended jobs first)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._indexes: dict[str, LogIndex] = {}
        self._index_lock = threading.Lock()

    def _job_filter(
        self,
        stmt: Any,
        project_id: str | None,
        status: str | Iterable[str] | None,
        job_type: str | None,
        text: str | None,
        deployment: str | None,
    ) -> Any:
        if project_id:
            stmt = stmt.where(Job.project_id == project_id)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            for st in statuses:
                JobStatus(st)
            stmt = stmt.where(col(Job.status).in_(statuses))
        if job_type:
            stmt = stmt.where(Job.type == JobType(job_type).value)
        if deployment:
            stmt = stmt.where(Job.deployment_id == deployment)
        if text:
            require_utf8(text, "the filter")
            # What a job's row shows: its id, type, status, who, error, model, dataset and
            # the hyperparameters it was given (their JSON text). Each word must be in one
            # of them; a word ``key=value``, as a row shows one, is its key and its value.
            dataset = (
                select(Dataset.name)
                .where(Dataset.id == Job.dataset_id)
                .correlate_except(Dataset)  # the listing's own query may join datasets too
                .scalar_subquery()
            )
            shown = (
                col(Job.id),
                col(Job.type),
                col(Job.actor),
                col(Job.status),
                col(Job.error),
                col(Model.name),
                dataset,
                col(Job.params)["overrides"].as_string(),
            )
            for word in text.replace("=", " ").split():
                # Text, not a pattern: `%` and `_` in it match themselves.
                stmt = stmt.where(or_(*(c.contains(word, autoescape=True) for c in shown)))
        return stmt

    def jobs(
        self,
        project: str | None = None,
        status: str | Iterable[str] | None = None,
        job_type: str | None = None,
        limit: int = 50,
        offset: int = 0,
        text: str | None = None,
        deployment: str | None = None,
    ) -> list[JobView]:
        """Jobs, newest first, a window at a time."""
        self._check_filters(status, job_type)
        with self.store.reader() as s:
            pid = lookup.project(s, project).id if project else None
            stmt = self._job_filter(convert.job_select(), pid, status, job_type, text, deployment)
            stmt = stmt.order_by(col(Job.created_at).desc(), col(Job.id).desc())
            stmt = stmt.offset(max(0, offset)).limit(max(0, limit))
            return [convert.job_view(r) for r in s.exec(stmt)]

    def count_jobs(
        self,
        project: str | None = None,
        status: str | Iterable[str] | None = None,
        job_type: str | None = None,
        text: str | None = None,
        deployment: str | None = None,
    ) -> int:
        self._check_filters(status, job_type)
        with self.store.reader() as s:
            pid = lookup.project(s, project).id if project else None
            stmt = select(func.count()).select_from(Job)
            if text:  # the text filter also matches model names; else the index alone counts
                stmt = stmt.outerjoin(Model, col(Model.id) == Job.model_id)
            stmt = self._job_filter(stmt, pid, status, job_type, text, deployment)
            return int(s.exec(stmt).one())

    @staticmethod
    def _check_filters(status: str | Iterable[str] | None, job_type: str | None) -> None:
        statuses = [status] if isinstance(status, str) else list(status or [])
        for st in statuses:
            if st not in JobStatus.__members__.values():
                raise ModelDeckError(
                    f"unknown job status {st!r} (use {', '.join(s.value for s in JobStatus)})"
                )
        if job_type and job_type not in JobType.__members__.values():
            raise ModelDeckError(
                f"unknown job type {job_type!r} (use {', '.join(t.value for t in JobType)})"
            )

    def job(self, ref: str) -> JobView:
        with self.store.reader() as s:
            return convert.job_view_by_id(s, lookup.job(s, ref).id)

    def predictions(self, job: str, rows: int = 10) -> PredictionsView:
        """The head of a batch prediction's ``predictions.csv`` and the summary its scorer
        recorded (in its ``predictions_written`` event)."""
        from core.predictions import PREDICTIONS_FILE, clean_summary, read_head, summary_text

        with self.store.reader() as s:
            j = lookup.job(s, job)
            if j.type != JobType.batch_predict.value:
                raise ModelDeckError(f"job {j.id} is a {j.type} job, not a batch prediction")
            written = s.exec(
                select(JobEvent.details).where(
                    JobEvent.job_id == j.id, JobEvent.kind == JobEventKind.predictions_written
                )
            ).first()
            outputs = list(j.outputs or [])
        summary = clean_summary((written or {}).get("summary"))
        path = next((p for p in outputs if Path(p).name == PREDICTIONS_FILE), None)
        columns, head = read_head(Path(path), rows) if path else ([], [])
        return PredictionsView(
            job_id=j.id,
            path=path,
            columns=columns,
            rows=head,
            summary=summary,
            summary_text=summary_text(summary),
        )

    def events(self, job: str, after_seq: int = 0) -> list[EventView]:
        with self.store.reader() as s:
            j = lookup.job(s, job)
            rows = s.exec(
                select(JobEvent)
                .where(JobEvent.job_id == j.id, JobEvent.seq > after_seq)
                .order_by(col(JobEvent.seq))
            )
            return [convert.event_view(e) for e in rows]

    def tail_log(self, job_id: str, offset: int = 0, final: bool = False) -> tuple[list[str], int]:
        """Complete log lines from byte ``offset`` on, and the offset after them."""
        return tail(JobLog(self.store, job_id), offset, final=final)

    def log_index(self, job_id: str) -> LogIndex:
        """A line index of a job's log for reading any window of it (kept per job)."""
        with self._index_lock:
            idx = self._indexes.get(job_id)
            if idx is None:
                idx = self._indexes[job_id] = LogIndex(JobLog(self.store, job_id))
            return idx

    def read_log(self, job_id: str, start: int = 0, count: int = 1000) -> list[str]:
        return self.log_index(job_id).read(start, count)
