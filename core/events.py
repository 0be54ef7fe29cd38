"""The kinds of event on a job's and on a deployment's timeline.

Values are what the database and the JSON hold; they never change. Standard library only: the
job's own process (``core.runner``) writes some of them (``JOB_PROCESS_KINDS``).
"""

from __future__ import annotations

from enum import StrEnum


class JobEventKind(StrEnum):
    # The job's life, written by the service and the engine.
    created = "created"  # queued (manual or by a schedule)
    started = "started"  # its process started (or an inline job began)
    stop_requested = "stop_requested"  # someone asked to stop it
    signal_sent = "signal_sent"  # SIGTERM, then SIGKILL after the grace
    requeued = "requeued"  # claimed, its process never started: queued again
    reattached = "reattached"  # a restarted engine follows it again
    recovered = "recovered"  # it ended while no engine followed it
    processes_killed = "processes_killed"  # what it left running was ended
    executor_waiting = "executor_waiting"  # its executor holds it back (Ray: no resources)
    resources_ignored = "resources_ignored"  # model.json's resources, on this machine
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    # What the job's own process reports (events.jsonl), checked by ``core.records``.
    progress = "progress"
    metrics_recorded = "metrics_recorded"
    metric_skipped = "metric_skipped"
    code_used = "code_used"
    record_skipped = "record_skipped"  # a line of events.jsonl that could not be read
    # What its end did to the registry (``core.effects``).
    code_diff = "code_diff"  # uncommitted changes kept with a training
    dataset_read = "dataset_read"
    version_created = "version_created"
    version_status = "version_status"
    statistics_computed = "statistics_computed"
    predictions_written = "predictions_written"
    approved = "approved"  # a version approved, with the reason and the evaluations judged on
    rejected = "rejected"
    deployment_created = "deployment_created"
    deployment_retired = "deployment_retired"
    baseline_recorded = "baseline_recorded"  # a version's baseline (core.monitoring)
    drift_computed = "drift_computed"  # a batch prediction compared with the baseline
    monitoring_failed = "monitoring_failed"  # the baseline or drift could not be computed


# The kinds a job's own process may write to its events.jsonl.
JOB_PROCESS_KINDS = frozenset(
    {
        JobEventKind.progress,
        JobEventKind.metrics_recorded,
        JobEventKind.metric_skipped,
        JobEventKind.code_used,
    }
)


class DeploymentEventKind(StrEnum):
    created = "created"  # deployed
    retired = "retired"
    schedule_fired = "schedule_fired"  # a scheduled batch prediction was queued
    schedule_missed = "schedule_missed"  # fire times that passed while no engine served
    schedule_skipped = "schedule_skipped"  # the previous run was still going
    schedule_failed = "schedule_failed"  # the schedule could not be fired
    schedule_paused = "schedule_paused"
    schedule_resumed = "schedule_resumed"
    schedule_changed = "schedule_changed"
    drift_computed = "drift_computed"  # a batch run's drift status (core.monitoring)
    thresholds_changed = "thresholds_changed"  # its drift thresholds
