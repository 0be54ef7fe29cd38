"""Monitoring's tables: a version's baseline, and each batch prediction's drift run."""

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from core.models import DEFERRED, _json


class Baseline(SQLModel, table=True):
    """What a version's batch predictions are compared with: the statistics of the data it
    was trained on (or, for an imported version, of its first statistics or evaluation),
    samples of its numeric columns and the distribution of its predictions there. One per
    version, never changed."""

    model_config = DEFERRED

    __tablename__ = "baseline"
    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_version.id", unique=True)
    job_id: str | None = None
    dataset_id: str | None = None
    at: datetime
    rows: int | None = None
    features: list = _json([])
    ignored: list = _json([])  # columns that are no features (target, id)
    statistics: dict = _json({})
    samples: dict = _json({})
    prediction: dict | None = _json()
    # The sha256 of the dataset file the statistics were computed on (None: unknown, or the
    # file changed while they were): a later baseline on the same content copies them.
    sha256: str | None = None


class DriftRecord(SQLModel, table=True):
    """One batch prediction of a deployment compared with its version's baseline."""

    model_config = DEFERRED

    __tablename__ = "drift_run"
    __table_args__ = (Index("ix_drift_run_deployment_id_id", "deployment_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    deployment_id: str = Field(foreign_key="deployment.id")
    job_id: str = Field(unique=True)
    version_id: str
    baseline_id: int | None = None
    dataset_id: str | None = None
    at: datetime
    rows: int = 0
    status: str
    warn_psi: float
    alert_psi: float
    features: list = _json([])
    prediction: dict | None = _json()
    metrics: dict = _json({})
