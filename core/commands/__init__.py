"""The verbs that change something, one module per subject. Each validates (refusing with a
ModelDeckError, nothing changed) and then writes: the catalog its rows, a job verb one queued
job through ``submit.Submitter`` (the engine does the work), job control through
``core.jobs`` (the one writer of a job's status).

- ``catalog``: projects, datasets and the repository's model folders.
- ``submit``: the one door a job is queued through.
- ``build``: jobs that make a version (train, import).
- ``version_jobs``: jobs on a version (evaluate, compute statistics, approve, reject, deploy).
- ``deployments``: jobs on a deployment (retire, run now) and its schedule.
- ``control``: stopping jobs.
- ``rerun``: a job again, with the same inputs.
"""
