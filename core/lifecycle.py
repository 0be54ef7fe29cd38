"""The lifecycle as data: job types, statuses and which transitions each job type may make.

The engine, the service, the CLI and the TUI all read this one table, so a key is dimmed
exactly when the command behind it would be refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobType(StrEnum):
    train = "train"
    evaluate = "evaluate"
    approve = "approve"
    reject = "reject"
    deploy = "deploy"
    retire = "retire"
    import_ = "import"
    compute_stats = "compute_stats"
    batch_predict = "batch_predict"


# The formats a model file can be imported from (BYOM).
IMPORT_FORMATS = ("joblib", "pickle", "onnx")


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    stopping = "stopping"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled})
ACTIVE_STATUSES = frozenset({JobStatus.running, JobStatus.stopping})

_J = JobStatus
# Every move a job's status may make, and when. ``core.jobs`` is the only writer of
# ``Job.status`` and refuses a move that is not here.
JOB_MOVES: dict[tuple[JobStatus, JobStatus], str] = {
    (_J.queued, _J.running): "an engine claimed it",
    (_J.queued, _J.cancelled): "stopped before an engine claimed it",
    (_J.running, _J.stopping): "stop requested while it runs",
    (_J.running, _J.queued): "claimed, but its process never started: queued again",
    (_J.running, _J.completed): "it ended well",
    (_J.running, _J.failed): "it failed, could not start, or its process was lost",
    (_J.running, _J.cancelled): "claimed, stop requested before its process started",
    (_J.stopping, _J.completed): "it ended well before the stop reached it",
    (_J.stopping, _J.failed): "it failed while stopping",
    (_J.stopping, _J.cancelled): "the stop took effect (or came before its process started)",
}


class VersionStatus(StrEnum):
    trained = "trained"
    imported = "imported"
    evaluated = "evaluated"
    approved = "approved"
    rejected = "rejected"
    deployed = "deployed"
    retired = "retired"


class DeploymentStatus(StrEnum):
    active = "active"
    retired = "retired"


class Trigger(StrEnum):
    manual = "manual"
    schedule = "schedule"


V = VersionStatus
_NOT_RETIRED = frozenset(set(V) - {V.retired})


@dataclass(frozen=True)
class Rule:
    """What a job type acts on and what it may do to it.

    ``target`` is the kind of thing the job names (``model``, ``version``, ``deployment`` or
    ``project``); ``version_from`` the version statuses it accepts (None: no version check);
    ``version_to`` maps an accepted status to the one the job leaves behind on success.
    ``runs_code`` says whether the job needs its own OS process.
    """

    target: str
    runs_code: bool
    version_from: frozenset[VersionStatus] | None = None
    version_to: dict[VersionStatus, VersionStatus] | None = None
    needs_active_deployment: bool = False


# A job type's rule; the rest of what a type is (params, runner, effect, summary, key) is its
# entry in ``core.kinds.KINDS``, which refers to this table.
RULES: dict[JobType, Rule] = {
    JobType.train: Rule("model", runs_code=True),
    JobType.import_: Rule("project", runs_code=True),
    JobType.evaluate: Rule(
        "version",
        runs_code=True,
        version_from=_NOT_RETIRED,
        version_to={V.trained: V.evaluated, V.imported: V.evaluated},
    ),
    JobType.compute_stats: Rule("version", runs_code=True, version_from=_NOT_RETIRED),
    JobType.approve: Rule(
        "version",
        runs_code=False,
        version_from=frozenset({V.evaluated}),
        version_to={V.evaluated: V.approved},
    ),
    JobType.reject: Rule(
        "version",
        runs_code=False,
        version_from=frozenset({V.evaluated}),
        version_to={V.evaluated: V.rejected},
    ),
    JobType.deploy: Rule(
        "version",
        runs_code=False,
        version_from=frozenset({V.approved, V.deployed}),
        version_to={V.approved: V.deployed},
    ),
    JobType.retire: Rule("deployment", runs_code=False, needs_active_deployment=True),
    JobType.batch_predict: Rule("deployment", runs_code=True, needs_active_deployment=True),
}


def version_refusal(job_type: JobType, status: VersionStatus | str) -> str | None:
    """Why ``job_type`` may not act on a version in ``status``, or None when it may."""
    rule = RULES[job_type]
    if rule.version_from is None or VersionStatus(status) in rule.version_from:
        return None
    allowed = " or ".join(sorted(s.value for s in rule.version_from))
    verb = job_type.value.replace("_", " ")
    return f"cannot {verb} a version that is {status} (it must be {allowed})"


def version_after(job_type: JobType, status: VersionStatus | str) -> VersionStatus:
    """The status a version has after ``job_type`` completed on it."""
    status = VersionStatus(status)
    table = RULES[job_type].version_to or {}
    return table.get(status, status)


def can_stop(status: JobStatus | str) -> bool:
    return JobStatus(status) in (JobStatus.queued, JobStatus.running)
