"""A job again: one of the same type with the same inputs, through the verb that queues that
type (so it is checked as a new submission is)."""

from __future__ import annotations

from core.commands.build import Build
from core.commands.deployments import Deployments
from core.commands.version_jobs import VersionJobs
from core.lifecycle import JobType
from core.views import JobView


def rerun(j: JobView, build: Build, versions: VersionJobs, deployments: Deployments) -> JobView:
    """Queue a job like ``j``."""
    t = JobType(j.type)
    if t == JobType.train:
        return build.train(j.project, j.model or "", j.dataset or "", j.params.get("overrides"))
    if t in (JobType.evaluate, JobType.compute_stats):
        return versions.version_job(t, j.version or "", j.dataset)
    if t in (JobType.approve, JobType.reject):
        chosen = j.params.get("evaluations")
        return versions.decide(
            t, j.version or "", j.params.get("reason", ""), chosen if chosen else None
        )
    if t == JobType.retire:
        return deployments.retire(j.deployment or "", j.params.get("reason"))
    if t == JobType.deploy:
        return versions.deploy(
            j.version or "", j.dataset or "", j.params.get("schedule"), j.params.get("timezone")
        )
    if t == JobType.import_:
        return build.import_model(
            j.project,
            j.params["model"],
            j.params["source"],
            j.params["format"],
            again=bool(j.params.get("again")),
        )
    return deployments.deployment_job(t, j.deployment or "")
