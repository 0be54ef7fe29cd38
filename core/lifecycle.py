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
    verb = {JobType.compute_stats: "compute statistics of"}.get(job_type, job_type.value)
    refused = f"cannot {verb} a version that is {status}"
    barred = sorted(s.value for s in VersionStatus if s not in rule.version_from)
    if len(barred) >= len(rule.version_from):  # the shorter of the two ways to say it
        return f"{refused} (it must be {' or '.join(sorted(s.value for s in rule.version_from))})"
    if barred == [VersionStatus(status).value]:
        return refused  # the status is all there is to say
    return f"{refused} (it must not be {' or '.join(barred)})"


# The jobs that decide on a version: who may run them is the project's to say (``Team``).
DECISIONS = frozenset({JobType.approve, JobType.reject})


@dataclass(frozen=True)
class Team:
    """Who may decide (approve or reject) on a project's versions: with ``approvers``, only
    they; with ``four_eyes``, never the user who trained or imported the version. The
    defaults let anyone decide on any version."""

    project: str
    approvers: tuple[str, ...] = ()
    four_eyes: bool = False


def decider_refusal(
    job_type: JobType,
    who: str,
    team: Team,
    version: str,
    made_by: str | None,
    imported: bool = False,
) -> str | None:
    """Why ``who`` may not run ``job_type`` on ``version`` (made by ``made_by``) under the
    project's ``team`` rules, or None when they may (and for jobs that decide nothing)."""
    if job_type not in DECISIONS:
        return None
    verb = job_type.value
    if team.approvers and who not in team.approvers:
        named = ", ".join(team.approvers)
        return (
            f"{who} may not {verb} {version} (only {named} may approve or reject "
            f"in project {team.project})"
        )
    if team.four_eyes and made_by is not None and who == made_by:
        made = "imported" if imported else "trained"
        return (
            f"{who} {made} {version} and may not {verb} it "
            f"(four eyes are required in project {team.project})"
        )
    return None


def refusal(
    job_type: JobType,
    status: VersionStatus | str,
    *,
    version: str,
    who: str | None = None,
    team: Team | None = None,
    made_by: str | None = None,
    imported: bool = False,
) -> str | None:
    """Why ``who`` may not run ``job_type`` on a version now, or None when they may: its
    lifecycle status first, then who they are (``decider_refusal``). The one question the
    service, the engine and the TUI's keys ask."""
    why = version_refusal(job_type, status)
    if why is not None or who is None or team is None:
        return why
    return decider_refusal(job_type, who, team, version, made_by, imported)


def version_after(job_type: JobType, status: VersionStatus | str) -> VersionStatus:
    """The status a version has after ``job_type`` completed on it."""
    status = VersionStatus(status)
    table = RULES[job_type].version_to or {}
    return table.get(status, status)


def can_stop(status: JobStatus | str) -> bool:
    return JobStatus(status) in (JobStatus.queued, JobStatus.running)
