"""Small helpers on the tables shared by the service and the engine."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.models import DeploymentEvent, Job, JobEvent


def actor() -> str:
    """The OS login name of whoever asked for a job."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or f"uid{os.getuid()}"


def add_event(
    s: Session,
    job: Job,
    kind: str,
    message: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> JobEvent:
    """Append an event to a job's timeline; sequence numbers come from the job row.

    Callers hold a write transaction (``BEGIN IMMEDIATE``), so two writers never take the
    same number.
    """
    event = JobEvent(
        job_id=job.id, seq=job.next_seq, at=at, kind=kind, message=message, details=details or {}
    )
    job.next_seq += 1
    s.add(job)
    s.add(event)
    return event


def add_deployment_event(
    s: Session,
    deployment_id: str,
    kind: str,
    message: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    s.add(
        DeploymentEvent(
            deployment_id=deployment_id, at=at, kind=kind, message=message, details=details or {}
        )
    )
