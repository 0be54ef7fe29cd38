"""The job engine: claims queued jobs, runs each on an executor (a process group of its own,
by default), follows it to the end, stops it on request, fires cron schedules, and holds the
database's engine lease.

One thread does all of it, a round at a time; the UI never waits on it. A job's process
writes its own log file and its own result file, so the job outlives the engine that
started it: the next engine to hold the lease re-attaches to it or records its outcome.

The round's phases, each an object given what it works with:

- ``lease.Lease``: take, renew and give back the engine lease;
- ``recovery.Recovery``: adopt jobs no engine follows, record the end of those that ended;
- ``scheduler.Scheduler``: fire due cron schedules;
- ``dispatcher.Dispatcher``: claim queued jobs and start them;
- ``follower.Follower``: records in, stops (SIGTERM, grace, SIGKILL), ends collected, with
  ``ingest.Ingest`` and ``outcome.Outcomes``;
- ``executor``: where a job's code runs (``LocalExecutor``; more plug into ``EXECUTORS``).

``engine.Engine`` composes them: ``tick()``, ``serve()``, ``start()``/``shutdown()``,
``status()``.
"""

from __future__ import annotations

from .common import describe, signal_name
from .engine import Engine, HasStore
from .executor import EXECUTORS, RUNNER, Executor, Handle, JobSpec, LocalExecutor
from .follower import Running
from .scheduler import UnfirableSchedule
from .spec import job_spec

__all__ = [
    "EXECUTORS",
    "RUNNER",
    "Engine",
    "Executor",
    "Handle",
    "HasStore",
    "JobSpec",
    "LocalExecutor",
    "Running",
    "UnfirableSchedule",
    "describe",
    "job_spec",
    "signal_name",
]
