"""The job engine: claims queued jobs, runs each in its own process group, follows it to the
end, stops it on request, fires cron schedules, and holds the database's engine lease.

One thread does all of it, a tick at a time; the UI never waits on it. A job's process
writes its own log file and its own result file, so the job outlives the engine that
started it: the next engine to hold the lease re-attaches to it or records its outcome.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from core import jobs, wakeup
from core import schedule as cron
from core.clock import iso
from core.db import storage_full
from core.effects import apply_inline, apply_result, place_artifacts, record_dataset_read
from core.errors import ModelDeckError
from core.jobs import queued_job_rows
from core.lifecycle import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    RULES,
    DeploymentStatus,
    JobStatus,
    JobType,
    Trigger,
)
from core.models import (
    Dataset,
    Deployment,
    DeploymentEvent,
    EngineLease,
    Job,
    JobEvent,
    Model,
    ModelVersion,
    Project,
)
from core.procfs import HOST, engine_alive, holder_gone, proc_start_time, process_alive
from core.records import (
    MAX_RECORD_BYTES,
    BadRecord,
    JobRecord,
    add_deployment_event,
    add_event,
    clean_result,
    excerpt,
    parse_job_record,
)
from core.runner import CLEANUP_GRACE, end_processes, job_processes
from core.store import LEASE_NAME, Store
from core.text import printable
from core.views import EngineStatus

log = logging.getLogger("modeldeck.engine")

RUNNER = Path(__file__).with_name("runner.py")
MISSED_LISTED = 20
# Missed fires are counted up to here (a minutely schedule: ~10 weeks), so that a long outage
# costs about a second under the write lock, not half a minute.
MISSED_COUNTED = 100_000
EPSILON = timedelta(microseconds=1)
FIRE_BATCH = 250
# How long the engine's thread spends at most killing a job's processes (one stuck in the
# kernel dies when its I/O returns; the engine does not wait for that).
KILL_LIMIT = 1.0
# A part of a round that failed waits this long before it is tried again, doubling up to
# RETRY_MAX: a full disk or a broken record costs a try every few seconds, never a spin.
RETRY_FIRST = 0.5
RETRY_MAX = 5.0
# Bad lines of one job's events.jsonl get an event each, up to this many a round; the rest
# of the round's are counted in one more.
SKIPS_LISTED = 5
# Free space below this on the job's file system, with no result file, means the job's
# output could not be written.
NO_SPACE_MARGIN = 1 << 20
NO_SPACE_ERROR = "no space left on device: the job's log and result could not be written"
FIRING_SCHEDULES = "firing schedules"


class UnfirableSchedule(Exception):
    """A due deployment whose schedule cannot fire (its time zone is unknown here, say)."""


def _group_left(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _not_the_schedule(exc: BaseException) -> bool:
    """Whether firing failed for a reason no deployment is to blame for: a full disk, a
    database that cannot be written or reached (locked, read-only, gone)."""
    return storage_full(exc) or isinstance(exc, OperationalError | OSError)


def signal_name(number: int) -> str:
    """``SIGTERM``; a signal Python has no name for (a real-time one) as ``signal 40``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe(exc: BaseException) -> str:
    """One printable line saying what went wrong (the driver's error, not SQLAlchemy's
    wrapping of it with the statement)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    text = f"{type(orig).__name__}: {first}" if first else type(orig).__name__
    return printable(text if len(text) <= 300 else text[:299] + "…")


def out_of_space(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NO_SPACE_MARGIN


@dataclass
class Fault:
    """A part of the engine's round that failed: how often in a row, and when to try again."""

    failures: int
    retry_at: float


@dataclass
class Running:
    """A job process this engine follows: its own child, or one it re-attached to."""

    job_id: str
    pid: int
    pgid: int
    start: float | None
    popen: subprocess.Popen[bytes] | None = None
    deployment_id: str | None = None
    term_sent_at: float | None = None
    kill_sent: bool = False
    forked: ForkServer | None = None
    gone_since: float | None = None
    ended: int | None = None  # its exit status once seen: exit_code() may tell it only once
    unrecorded_python: str | None = None  # started, its pid not in the database yet

    def exit_code(self) -> int | None:
        """The exit status once the process has ended, else None (-1: ended, status unknown)."""
        if self.popen is not None:
            return self.popen.poll()
        if self.forked is not None:
            code = self.forked.exit_code(self.pid)
            if code is not None:
                return code
        if process_alive(self.pid, self.start):
            return None
        if self.forked is not None and self.forked.alive():
            # Gone, but its fork server has not said how yet: give the news a moment.
            self.gone_since = self.gone_since or time.monotonic()
            if time.monotonic() - self.gone_since < 2.0:
                return None
        return -1


class ForkServer:
    """The engine's end of ``core.forkserver``: one light process that forks job processes."""

    def __init__(self, on_exit: Callable[[], None]) -> None:
        env = dict(os.environ)
        env.pop("PYTHONUNBUFFERED", None)
        boot = f"import sys; sys.path.append({str(RUNNER.parent.parent)!r}); "
        boot += "from core.forkserver import serve; serve()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a terminal's signals are not for it or its jobs
            close_fds=True,
        )
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._codes: dict[int, int] = {}
        self._ended: dict[int, list[int]] = {}  # what it killed that a job process left
        self._lock = threading.Lock()
        self._on_exit = on_exit
        threading.Thread(target=self._read, name="modeldeck-forkserver", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "exited" in msg:
                with self._lock:
                    self._codes[int(msg["exited"])] = int(msg["code"])
                    self._ended[int(msg["exited"])] = [int(p) for p in msg.get("ended", [])]
                self._on_exit()
            else:
                self._replies.put(msg)
        self._replies.put({"error": "the fork server exited"})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]) -> int:
        request = {"job_dir": str(job_dir), "cwd": str(cwd), "log": str(log_path), "env": env}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self._replies.get(timeout=30)
        if "pid" not in reply:
            raise OSError(reply.get("error", "the fork server did not answer"))
        return int(reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        with self._lock:
            return self._codes.pop(pid, None)

    def ended(self, pid: int) -> list[int]:
        """The processes the server killed that job process ``pid`` left when it died."""
        with self._lock:
            return self._ended.pop(pid, [])

    def close(self, wait: float = 5.0) -> None:
        """Let the server go; the jobs it forked keep running."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            if wait:
                self.proc.wait(timeout=wait)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass


class HasStore(Protocol):
    """Anything that hands out its store (a ``Deck``): the engine needs only the store."""

    store: Store


class Engine:
    """Runs jobs of one database. ``tick()`` does one round; ``start()`` runs rounds on a thread."""

    def __init__(
        self,
        store: Store | HasStore,
        workers: int | None = None,
        grace: float = 10.0,
        poll: float = 0.25,
        lease_ttl: float = 15.0,
        only_job: str | None = None,
        schedules: bool = True,
        fork_server: bool = True,
        lease: bool = True,
    ) -> None:
        """``lease=False``: a foreground engine (a job command with no engine serving). It
        never takes the database's engine lease, so a real engine can start at any time; it
        runs only ``only_job``, while no engine serves, and lets a real engine adopt it."""
        self.store: Store = store if isinstance(store, Store) else store.store
        self.use_lease = lease
        self.use_fork_server = fork_server
        self._fork_server: ForkServer | None = None
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.grace = grace
        self.poll = poll
        self.lease_ttl = lease_ttl
        self.only_job = only_job
        self.schedules = schedules and only_job is None and lease
        self.foreground = not lease and only_job is not None
        self.id = f"{HOST}:{os.getpid()}:{id(self):x}"
        self.running: dict[str, Running] = {}
        self.holds_lease = False
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renew = 0.0
        self._renew_by: datetime | None = None
        self._next_fire: datetime | None = None
        self._last_recover = 0.0
        self._lock = threading.RLock()
        self._faults: dict[str, Fault] = {}
        self._no_space: set[str] = set()  # ended jobs whose output the full disk swallowed
        self._unclaim: set[str] = set()  # claimed by us, never started: back to the queue
        self._listener: wakeup.Listener | None = None  # pokes from other processes
        self._listen_retry = 0.0
        self._unreadable: set[str] = set()  # jobs told that their events.jsonl is unreadable
        # Events that belong with a job's end (recovered, processes_killed): written in the
        # transaction that ends the job, so only the process that ends it writes them.
        self._notes: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        self._unsubscribe = self.store.on_submit(lambda _job_id: self._wake.set())

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="modeldeck-engine", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def status(self) -> EngineStatus:
        """A frozen view of this engine: whether it serves, its workers, the jobs it follows."""
        with self._lock:
            running = tuple(self.running)
        return EngineStatus(serving=self.holds_lease, workers=self.workers, running=running)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop dispatching and release the lease; running jobs keep running."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        # A lease that cannot be given back (a full disk) runs out by itself.
        self._unsubscribe()
        self._guarded("releasing the engine lease", self.release_lease)
        self._listen()
        if self._fork_server is not None:
            self._fork_server.close()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except Exception:  # keep serving: one bad round must not stop the engine
                log.exception("engine tick failed")
            self._wake.wait(self._sleep_time())
            self._wake.clear()

    def _sleep_time(self) -> float:
        delay = self.poll
        if self.holds_lease and self.schedules:
            nxt = self._next_fire  # as of this round's _fire_schedules: no query per sleep
            if nxt is not None:
                wait = (nxt - self.store.now()).total_seconds()
                fault = self._faults.get(FIRING_SCHEDULES)
                if fault is not None:  # a fire time it failed at: wait for its back-off
                    wait = max(wait, fault.retry_at - time.monotonic())
                delay = min(delay, max(0.0, wait))
        return delay

    def run_until_idle(self, timeout: float | None = None) -> bool:
        """Tick until nothing is queued or running (for scripts); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.tick()
            if not self.running and not self._queued_ids(1):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._wake.wait(min(self.poll, 0.05))
            self._wake.clear()

    def tick(self) -> None:
        """One round: lease, recovery, schedules, stops, finished jobs, new jobs.

        Each part is guarded: one that raises (a full disk, a bug) is logged once and tried
        again later, and the others go on; a round never raises.
        """
        with self._lock:
            if not self._guarded("renewing the engine lease", self._renew_lease):
                stale = time.monotonic() - self._last_renew >= self.lease_ttl
                if self.holds_lease and stale:
                    self.holds_lease = False  # it ran out: another engine may serve now
            self._listen()
            if self.holds_lease:
                if time.monotonic() - self._last_recover > 2.0:
                    self._guarded("recovering jobs", self._recover)
                    self._last_recover = time.monotonic()
                if self.schedules:
                    self._guarded(FIRING_SCHEDULES, self._fire_schedules)
            elif self.foreground and time.monotonic() - self._last_recover > 2.0:
                # Its own job only: adopt it when the engine that ran it has gone.
                self._guarded("recovering its job", lambda: self._recover(only=self.only_job))
                self._last_recover = time.monotonic()
            self._guarded("following running jobs", self._follow)
            if self._halt.is_set():
                return
            if self.holds_lease:
                self._guarded("dispatching queued jobs", self._dispatch)
            elif self.foreground and not self.running:
                # While no engine serves: else that engine runs the job.
                self._guarded("dispatching its job", self._dispatch_unserved)

    def _dispatch_unserved(self) -> None:
        if self.store.serving_engine() is None:
            self._dispatch()

    def _guarded(self, what: str, step: Callable[[], object]) -> bool:
        """Run one part of a round. A failure is logged once (to stderr, when nothing else
        is configured) and the part is left alone for a while, doubling up to RETRY_MAX,
        while the rest of the engine goes on. True when it ran and did not fail."""
        fault = self._faults.get(what)
        if fault is not None and time.monotonic() < fault.retry_at:
            return False
        try:
            step()
        except Exception as exc:
            failures = fault.failures + 1 if fault is not None else 1
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
            self._faults[what] = Fault(failures, time.monotonic() + delay)
            if failures == 1:
                log.error("modeldeck engine: %s failed: %s; trying again", what, describe(exc))
                log.debug("%s failed", what, exc_info=exc)
            return False
        if fault is not None:
            del self._faults[what]
            log.warning(
                "modeldeck engine: %s works again (after %d failed attempt(s))",
                what,
                fault.failures,
            )
        return True

    def _listen(self) -> None:
        """While this engine serves, it hears jobs queued by other processes at once."""
        serving = self.holds_lease and not self._halt.is_set()
        if serving and self._listener is None and time.monotonic() >= self._listen_retry:
            self._listener = wakeup.listen(self.store.db_url, self._wake.set)
            if self._listener is None:  # an engine that lost the lease still listens
                self._listen_retry = time.monotonic() + 5.0
        elif not serving and self._listener is not None:
            self._listener.close()
            self._listener = None

    # -- lease ----------------------------------------------------------------------------

    def _renew_lease(self) -> None:
        if self._halt.is_set() or not self.use_lease:
            return
        mono = time.monotonic()
        now = self.store.now()
        # Renew by both clocks: the injected one may jump past our expiry (a paused or
        # stalled engine), and then another engine may already hold the lease.
        fresh = self._renew_by is not None and now < self._renew_by
        if self.holds_lease and fresh and mono - self._last_renew < self.lease_ttl / 5:
            return
        if not self.holds_lease:
            with self.store.reader() as s:  # standing by costs a read, not a write lock
                lease = s.get(EngineLease, LEASE_NAME)
                held = lease is not None and lease.owner != self.id and lease.expires_at > now
                if held and not holder_gone(lease.host, lease.pid):
                    return
        with self.store.writer() as s:
            lease = s.get(EngineLease, LEASE_NAME)
            mine = lease is not None and lease.owner == self.id
            void = lease is not None and holder_gone(lease.host, lease.pid)
            if lease is None or mine or lease.expires_at <= now or void:
                if lease is None:
                    lease = EngineLease(
                        name=LEASE_NAME,
                        owner=self.id,
                        host=HOST,
                        pid=os.getpid(),
                        heartbeat_at=now,
                        expires_at=now,
                    )
                lease.owner, lease.host, lease.pid = self.id, HOST, os.getpid()
                lease.heartbeat_at = now
                lease.expires_at = now + timedelta(seconds=self.lease_ttl)
                s.add(lease)
                s.commit()
                if not self.holds_lease:
                    self._last_recover = 0.0
                self.holds_lease = True
                self._last_renew = mono
                self._renew_by = now + timedelta(seconds=self.lease_ttl / 5)
            else:
                self.holds_lease = False

    def release_lease(self) -> None:
        if not self.holds_lease:
            return
        with self.store.writer() as s:
            lease = s.get(EngineLease, LEASE_NAME)
            if lease is not None and lease.owner == self.id:
                s.delete(lease)
                s.commit()
        self.holds_lease = False

    # -- dispatch -------------------------------------------------------------------------

    def _queued_ids(self, limit: int) -> list[str]:
        with self.store.reader() as s:
            stmt = select(Job.id).where(Job.status == JobStatus.queued.value)
            if self.only_job:
                stmt = stmt.where(Job.id == self.only_job)
            return list(s.exec(stmt.order_by(col(Job.created_at)).limit(limit)).all())

    def _dispatch(self) -> None:
        for job_id in list(self._unclaim):
            self._requeue_unstarted(job_id)
            self._unclaim.discard(job_id)
        free = self.workers - len(self.running)
        if free <= 0:
            # Jobs that run no code do not take a worker: still let them through.
            free = 0
        with self.store.reader() as s:
            stmt = select(Job.id, Job.type).where(Job.status == JobStatus.queued.value)
            if self.only_job:
                stmt = stmt.where(Job.id == self.only_job)
            queued = s.exec(stmt.order_by(col(Job.created_at)).limit(free + 16)).all()
        for job_id, job_type in queued:
            if free <= 0 and RULES[JobType(job_type)].runs_code:
                continue  # no worker for it: do not take the write lock just to look
            try:
                took = self._start(job_id, free)
            except Exception as exc:
                self._start_failed(job_id, exc)
                if storage_full(exc):
                    raise  # the disk is full: try the queue again later, all of it
                continue
            free -= took

    def _start(self, job_id: str, free: int) -> int:
        """Claim a queued job and start it; the workers it took (0 or 1)."""
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            if job is None or job.status != JobStatus.queued.value:
                return 0
            rule = RULES[JobType(job.type)]
            if rule.runs_code:
                if free <= 0:
                    return 0
                if job.type == JobType.batch_predict.value and self._deployment_busy(
                    s, job.deployment_id
                ):
                    return 0
            if not jobs.claim(s, job, self.store.now(), self.id, HOST):
                s.rollback()
                return 0
            s.commit()
        if rule.runs_code:
            self._launch(job_id)
            return 1
        self._run_inline(job_id)
        return 0

    def _start_failed(self, job_id: str, exc: Exception) -> None:
        """Starting a job raised. A process that started is followed as usual. Otherwise a
        full disk puts the job back in the queue (nothing of it ran); any other error fails
        it, saying why."""
        if job_id in self.running:
            return
        if storage_full(exc):
            self._unclaim.add(job_id)
            try:
                self._requeue_unstarted(job_id)
                self._unclaim.discard(job_id)
            except Exception:
                pass  # still full: the next dispatch round tries again
            return
        log.error("modeldeck engine: starting job %s failed: %s", job_id, describe(exc))
        log.debug("starting job %s failed", job_id, exc_info=exc)
        try:
            self._finish(job_id, JobStatus.failed, f"could not start: {describe(exc)}", None, {})
        except Exception as again:
            if storage_full(again):
                self._unclaim.add(job_id)  # queued again once the disk has room
            else:
                log.error("modeldeck engine: job %s is left running: %s", job_id, describe(again))

    def _requeue_unstarted(self, job_id: str) -> None:
        """Give back a job this engine claimed but could not start: queued again, as if
        never claimed (its claim left no event)."""
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            if (
                job is None
                or job.status not in ACTIVE_STATUSES
                or job.engine_id != self.id
                or job.pid is not None
                or job_id in self.running
            ):
                return
            if job.stop_requested_at is not None:
                jobs.cancel_unstarted(s, job, self.store.now(), {})
            else:
                jobs.requeue(s, job, self.store.now(), None)
            s.commit()

    def _deployment_busy(self, s: Session, deployment_id: str | None) -> bool:
        return (
            s.exec(
                select(Job.id).where(
                    Job.deployment_id == deployment_id,
                    Job.type == JobType.batch_predict.value,
                    col(Job.status).in_(list(ACTIVE_STATUSES)),
                )
            ).first()
            is not None
        )

    def _run_inline(self, job_id: str) -> None:
        job_dir = self.store.job_dir(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            now = self.store.now()
            add_event(
                s,
                job,
                "started",
                f"{job.type} started",
                now,
                {"host": HOST, "pid": os.getpid(), "engine": self.id},
            )
            try:
                with s.begin_nested():
                    apply_inline(s, job, now, lines)
            except ModelDeckError as exc:
                lines.append(f"error: {exc.message}")
                details = {"error": exc.message}
                jobs.finish(s, job, JobStatus.failed, now, exc.message, details, exc.message, 1)
            else:
                done = f"{job.type} completed"
                jobs.finish(s, job, JobStatus.completed, now, done, {"duration": 0.0}, None, 0)
            s.commit()
        # Only what happened goes to the log: after the commit (a commit that fails puts the
        # job back in the queue, and its next run writes the log).
        try:
            with open(job_dir / "log.txt", "a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines))
        except OSError as exc:  # its events say the same: the outcome stays recorded
            log.error(
                "modeldeck engine: writing the log of job %s failed: %s", job_id, describe(exc)
            )

    def _spec(self, s: Session, job: Job, job_dir: Path) -> tuple[dict[str, Any], str, Path | None]:
        """The runner's spec, the interpreter to run it with, and the code folder.

        A version runs its own copy of the code it was trained with (``code/`` in its
        artifacts, made by its training); one trained before versions kept it runs the
        repository's model folder."""
        from core.runner import CODE_COPY  # the runner's name for it (standard library only)

        project = s.get(Project, job.project_id)
        model = s.get(Model, job.model_id) if job.model_id else None
        version = s.get(ModelVersion, job.version_id) if job.version_id else None
        dataset = s.get(Dataset, job.dataset_id) if job.dataset_id else None
        code_dir: Path | None = None
        code_source = "repository"
        meta: dict[str, Any] = {}
        if model is not None and model.kind == "code":
            code_dir = Path(project.repo) / "models" / model.name
            own = Path(version.artifact_dir) / CODE_COPY if version is not None else None
            if job.type != JobType.train.value and own is not None and own.is_dir():
                code_dir, code_source = own, "version"
            try:
                meta = json.loads((code_dir / "model.json").read_text())
            except (OSError, ValueError):
                meta = {}
        staging = self.store.staging_dir(job.id)
        kind = JobType(job.type)
        if kind in (JobType.train, JobType.import_):
            model_dir = staging
        else:
            model_dir = Path(version.artifact_dir) if version else None
        if kind != JobType.train and not (model is not None and model.kind == "code"):
            code_dir = None
        if kind == JobType.import_ or (model is not None and model.kind == "byom"):
            code_dir = None
        spec = {
            "job_id": job.id,
            "type": job.type,
            "code_dir": str(code_dir) if code_dir else None,
            "code_source": code_source if code_dir else "builtin",
            "model_dir": str(model_dir) if model_dir else None,
            "output_dir": str(job_dir / "output"),
            "hyperparameters": job.params.get("hyperparameters")
            or (version.hyperparameters if version else {}),
            "dataset": {
                "name": dataset.name,
                "path": dataset.path,
                "target": dataset.target,
                "id_column": dataset.id_column,
            }
            if dataset
            else None,
            "version": job.version_id,
            "task": meta.get("task"),
            "params": job.params,
        }
        python = meta.get("python") or sys.executable
        # A folder that is gone is not the job's working directory: the runner says it is gone.
        return spec, str(python), code_dir if code_dir and code_dir.is_dir() else None

    def _launch(self, job_id: str) -> None:
        job_dir = self.store.job_dir(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            with self.store.reader() as s:
                job = s.get(Job, job_id)
                spec, python, code_dir = self._spec(s, job, job_dir)
                deployment_id = job.deployment_id
            # How long what the job leaves running gets between SIGTERM and SIGKILL: well
            # within the engine's own grace, so a stopped job can still clean up after itself.
            spec["grace"] = min(CLEANUP_GRACE, self.grace / 2)
            (job_dir / "spec.json").write_text(json.dumps(spec, default=str))
            pid, proc, forked = self._spawn(job_id, job_dir, python, code_dir or job_dir)
        except (OSError, ValueError, ModelDeckError, queue.Empty) as exc:
            if storage_full(exc):
                raise  # nothing of it ran: the job waits in the queue for space
            self._finish(job_id, JobStatus.failed, f"could not start the job: {exc}", None, {})
            return
        start = proc_start_time(pid)
        # Before the database knows the pid: if this engine dies in between, the next one
        # finds the process here (the runner writes the same file once it is up).
        try:
            tmp = job_dir / "pid.engine.tmp"
            tmp.write_text(f"{pid} {start or ''}\n")
            os.replace(tmp, job_dir / "pid")
        except OSError:
            pass
        self.running[job_id] = Running(
            job_id, pid, pid, start, popen=proc, deployment_id=deployment_id, forked=forked
        )
        if proc is not None:
            # Wake the loop the moment the child exits, instead of at the next poll.
            threading.Thread(target=self._wake_on_exit, args=(proc,), daemon=True).start()
        self.running[job_id].unrecorded_python = python
        self._record_started(self.running[job_id])

    def _record_started(self, run: Running) -> None:
        """Record a started process's pid and its ``started`` event. Until that works (a full
        disk), following the job tries again first."""
        pid = run.pid
        with self.store.writer() as s:
            job = s.get(Job, run.job_id)
            if job.pid is not None or job.engine_id != self.id:
                run.unrecorded_python = None
                return  # a real engine found the process first and follows it now
            job.pid, job.pgid, job.proc_start = pid, run.pgid, run.start
            add_event(
                s,
                job,
                "started",
                f"{job.type} started on {HOST} (pid {pid})",
                self.store.now(),
                {
                    "host": HOST,
                    "pid": pid,
                    "pgid": run.pgid,
                    "python": run.unrecorded_python,
                    "engine": self.id,
                },
            )
            s.commit()
        run.unrecorded_python = None

    def _spawn(
        self, job_id: str, job_dir: Path, python: str, cwd: Path
    ) -> tuple[int, subprocess.Popen[bytes] | None, ForkServer | None]:
        """Start the job's process in its own session and process group, its output going
        straight to its log: forked by the fork server, or a new interpreter when the model
        asks for another Python (or the fork server is off)."""
        log_path = job_dir / "log.txt"
        if self.use_fork_server and python == sys.executable:
            if self._fork_server is None or not self._fork_server.alive():
                self._fork_server = ForkServer(on_exit=self._wake.set)
                # An engine dropped without shutdown() still lets its fork server go.
                weakref.finalize(self, self._fork_server.close, 0)
            pid = self._fork_server.spawn(job_dir, cwd, log_path, {"MODELDECK_JOB_ID": job_id})
            return pid, None, self._fork_server
        env = dict(os.environ, MODELDECK_JOB_ID=job_id)
        env.pop("PYTHONUNBUFFERED", None)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(
                [python, str(RUNNER), str(job_dir)],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=str(cwd),
                env=env,
                start_new_session=True,  # own process group: stop reaches all of it
                close_fds=True,
            )
        return proc.pid, proc, None

    def _wake_on_exit(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self._wake.set()

    # -- following running jobs -----------------------------------------------------------

    def _follow(self) -> None:
        for what in [w for w in self._faults if w.startswith("following job ")]:
            if what.removeprefix("following job ") not in self.running:
                del self._faults[what]  # it ended: nothing of it to try again
        if not self.running:
            return
        with self.store.reader() as s:
            rows = s.exec(
                select(Job.id, Job.status, Job.events_offset, Job.engine_id).where(
                    col(Job.id).in_(list(self.running))
                )
            ).all()
        state = {r[0]: (r[1], r[2], r[3]) for r in rows}
        for job_id, run in list(self.running.items()):
            # One job that cannot be followed (its records, a full disk) waits alone.
            status, offset, owner = state.get(job_id, (None, 0, None))
            with contextlib.suppress(Exception):  # else seen, and said, in _follow_one
                self._see_exit(run)  # every round, even while following it backs off
            self._guarded(
                f"following job {job_id}",
                lambda r=run, st=status, o=offset, w=owner: self._follow_one(r, st, o, w),
            )

    def _see_exit(self, run: Running) -> None:
        """Note when a followed process has ended (it is told once), and whether the disk was
        full then with no result written: by the time the database takes the outcome, space
        may have been freed. No database here: this works on a full disk, every round."""
        if run.ended is not None:
            return
        code = run.exit_code()
        if code is None:
            return
        run.ended = code
        job_dir = self.store.job_dir(run.job_id)
        if not (job_dir / "result.json").exists() and out_of_space(job_dir):
            self._no_space.add(run.job_id)

    def _follow_one(self, run: Running, status: str | None, offset: int, owner: str | None) -> None:
        job_id = run.job_id
        if status is None or status not in ACTIVE_STATUSES or owner != self.id:
            # Someone else finalised it (another engine after a lease change), or another
            # engine adopted it (a real engine took over from a job command) and follows it
            # now; its process runs on untouched.
            self.running.pop(job_id, None)
            self._no_space.discard(job_id)
            return
        self._see_exit(run)
        if run.unrecorded_python is not None:
            self._record_started(run)
        self._ingest_events(job_id, offset)
        # Exit first, signal after: a group that has ended may have a reused id by now.
        code = run.ended
        if code is None and status == JobStatus.stopping.value:
            self._signal(run)
        if code is None:
            return
        self._ingest_events(job_id, None)
        try:
            self._collect(run, code)
        except BaseException:
            self.running.setdefault(job_id, run)  # not recorded yet: again next round
            raise
        self._no_space.discard(job_id)

    def _ingest_events(self, job_id: str, offset: int | None) -> None:
        """Move new progress and metrics lines of events.jsonl into the job's timeline.

        Each line is checked (the job's code can write anything there): a bad one is
        skipped with a ``record_skipped`` event saying what was wrong, and the rest go on.
        """
        path = self.store.job_dir(job_id) / "events.jsonl"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            self._events_unreadable(job_id, exc)
            return
        if size == 0 or (offset is not None and size <= offset):
            return  # nothing new: no write lock (this runs for every running job every tick)
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            if job is None or size <= job.events_offset:
                return
            now = self.store.now()
            pos = job.events_offset
            bad = 0
            try:
                fh = open(path, "rb")  # noqa: SIM115  (closed below)
            except OSError as exc:
                s.rollback()
                self._events_unreadable(job_id, exc)
                return
            with fh:
                while pos < size:  # a chunk at a time: a backlog never sits in memory whole
                    fh.seek(pos)
                    data = fh.read(min(size - pos, MAX_RECORD_BYTES + 1))
                    end = data.rfind(b"\n")
                    if end >= 0:
                        lines, consumed = data[:end].split(b"\n"), end + 1
                    elif len(data) > MAX_RECORD_BYTES:
                        # Longer than any record: skipped, and the rest of the line after
                        # it is one more bad line.
                        lines, consumed = [data], len(data)
                    else:
                        break  # a line still being written
                    good: list[JobRecord] = []
                    at = pos
                    for raw in lines:
                        try:
                            if raw.strip():
                                good.append(parse_job_record(raw))
                        except BadRecord as exc:
                            bad += 1
                            if bad <= SKIPS_LISTED:
                                add_event(
                                    s,
                                    job,
                                    "record_skipped",
                                    f"skipped a bad line of events.jsonl: {exc}",
                                    now,
                                    {"reason": str(exc), "line": excerpt(raw), "offset": at},
                                )
                        at += len(raw) + 1
                    # A burst of progress collapses into its last report; metrics all stay.
                    last = max((i for i, r in enumerate(good) if r.kind == "progress"), default=-1)
                    for i, rec in enumerate(good):
                        if rec.kind != "progress" or i == last:
                            add_event(s, job, rec.kind, rec.message, now, rec.details)
                    pos += consumed
            if bad > SKIPS_LISTED:
                more = bad - SKIPS_LISTED
                add_event(
                    s,
                    job,
                    "record_skipped",
                    f"skipped {more} more bad line(s) of events.jsonl",
                    now,
                    {"count": more},
                )
            if pos == job.events_offset:
                return
            job.events_offset = pos
            s.add(job)
            s.commit()

    def _events_unreadable(self, job_id: str, exc: OSError) -> None:
        """The job's events.jsonl cannot be read (its code made it a folder, say): said once
        in its timeline; the job goes on, and ends, without its records."""
        if job_id in self._unreadable:
            return
        reason = describe(exc)
        self._event(
            job_id, "record_skipped", f"could not read events.jsonl: {reason}", {"reason": reason}
        )
        self._unreadable.add(job_id)

    def _signal(self, run: Running) -> None:
        mono = time.monotonic()
        if run.term_sent_at is None:
            self._killpg(run, signal.SIGTERM)
            run.term_sent_at = mono
            self._event(
                run.job_id,
                "signal_sent",
                f"SIGTERM sent to process group {run.pgid}",
                {"signal": "SIGTERM", "pgid": run.pgid, "grace": self.grace},
            )
        elif not run.kill_sent and mono - run.term_sent_at >= self.grace:
            # The job's process gets no chance to clean up after SIGKILL: stop and kill its
            # whole tree with it (a daemon in a session of its own too), then its group.
            alive = process_alive(run.pid, run.start)
            killed = end_processes(
                lambda: (
                    job_processes(run.pid, run.job_id, tree=alive, ids=alive)
                    | ({run.pid} if alive and process_alive(run.pid, run.start) else set())
                ),
                0.0,
                limit=KILL_LIMIT,
            )
            self._killpg(run, signal.SIGKILL)
            run.kill_sent = True
            others = len(killed - {run.pid})
            self._event(
                run.job_id,
                "signal_sent",
                f"still running after {self.grace:g}s: SIGKILL sent to process group {run.pgid}"
                + (f" and {others} other process(es) of the job" if others else ""),
                {"signal": "SIGKILL", "pgid": run.pgid, "pids": sorted(killed)},
            )

    @staticmethod
    def _killpg(run: Running, sig: int) -> None:
        try:
            os.killpg(run.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _event(self, job_id: str, kind: str, message: str, details: dict[str, Any]) -> None:
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            add_event(s, job, kind, message, self.store.now(), details)
            s.commit()

    def _collect(self, run: Running, code: int) -> None:
        """A followed process ended: read its result and finish the job."""
        self.running.pop(run.job_id, None)
        self._end_leftovers(run)
        result = self._read_result(run.job_id)
        if result is not None and code == -1:
            code = int(result.get("exit_code", 1))
        with self.store.reader() as s:
            stop_requested = s.get(Job, run.job_id).stop_requested_at is not None
        details: dict[str, Any] = {"exit_code": code}
        if code is not None and code < 0 and code != -1:
            details["signal"] = signal_name(-code)
        if stop_requested:
            how = "SIGKILL" if run.kill_sent else "SIGTERM"
            self._finish(
                run.job_id,
                JobStatus.cancelled,
                "stopped",
                code,
                result or {},
                extra={**details, "stopped_by": how},
            )
        elif result is None:
            if code == -1:
                self._finish(
                    run.job_id,
                    JobStatus.failed,
                    "lost",
                    None,
                    {},
                    extra={"reason": "the job's process vanished without an outcome"},
                )
            else:
                why = (
                    f"killed by {signal_name(-code)}"
                    if code < 0
                    else f"exited with status {code} before reporting"
                )
                self._finish(run.job_id, JobStatus.failed, why, code, {}, extra=details)
        elif result.get("status") == "completed":
            self._finish(run.job_id, JobStatus.completed, None, code, result, extra=details)
        elif result.get("status") == "cancelled":
            self._finish(run.job_id, JobStatus.cancelled, "stopped", code, result, extra=details)
        else:
            self._finish(
                run.job_id,
                JobStatus.failed,
                result.get("error") or "failed",
                code,
                result,
                extra=details,
            )

    def _end_leftovers(self, run: Running) -> None:
        """The job's process has ended: kill whatever it started that is still running (it
        ends its own leftovers when it can; not when it was killed or died abruptly)."""
        if not run.pid:
            return
        killed = set(run.forked.ended(run.pid)) if run.forked is not None else set()
        # Its group and session; and, when it did not get to end its own processes (it
        # writes its result after that), whatever process says it belongs to the job.
        cleaned = (self.store.job_dir(run.job_id) / "result.json").exists()
        job_id = None if cleaned else run.job_id
        # Its group and session ids stay the job's while any member is left (the kernel does
        # not reuse them); a process now holding its pid says they are another's.
        now_start = proc_start_time(run.pid)
        ids = now_start is None or now_start == run.start
        if not (cleaned and ids and not _group_left(run.pgid or run.pid)):
            # A runner that wrote its result ended its own processes first: with its group
            # empty there is nothing to look for (a look through /proc costs milliseconds).
            killed |= end_processes(
                lambda: job_processes(run.pid, job_id, tree=False, ids=ids),
                0.0,
                limit=KILL_LIMIT,
            )
        if killed:
            self._note(
                run.job_id,
                "processes_killed",
                f"{len(killed)} process(es) the job left running killed with SIGKILL",
                {"pids": sorted(killed), "signal": "SIGKILL"},
            )

    def _note(self, job_id: str, kind: str, message: str, details: dict[str, Any]) -> None:
        """An event for the job's timeline that ``_finish`` writes with its end, when it is
        this process that ends it (kept until then: a retry still writes it, once)."""
        notes = self._notes.setdefault(job_id, [])
        if kind == "processes_killed":
            for i, (k, _, d) in enumerate(notes):
                if k == kind:  # killed on an earlier try: one event lists them all
                    pids = sorted(set(d["pids"]) | set(details["pids"]))
                    message = f"{len(pids)} process(es) the job left running killed with SIGKILL"
                    notes[i] = (kind, message, {**details, "pids": pids})
                    return
        elif any(k == kind for k, _, _ in notes):
            return
        notes.append((kind, message, details))

    def _read_result(self, job_id: str) -> dict[str, Any] | None:
        """The job's result file, checked; when the full disk kept the job from writing
        one, a failure saying so."""
        try:
            data = json.loads((self.store.job_dir(job_id) / "result.json").read_bytes())
        except (OSError, ValueError, RecursionError):
            data = None
        result = clean_result(data)
        if result is None and job_id in self._no_space:
            return {"status": "failed", "error": NO_SPACE_ERROR}
        return result

    def _finish(
        self,
        job_id: str,
        status: JobStatus,
        error: str | None,
        exit_code: int | None,
        result: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        now = self.store.now()
        with self.store.writer() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in ACTIVE_STATUSES:
                self._notes.pop(job_id, None)
                return  # finalised elsewhere: outcomes are recorded once
            for kind, note, note_details in self._notes.get(job_id, []):
                add_event(s, job, kind, note, now, note_details)
            out_dir = self.store.job_dir(job_id) / "output"
            job.outputs = [str(out_dir / p) for p in result.get("outputs", [])]
            record_dataset_read(s, job, result, now)
            staging = self.store.staging_dir(job.id)
            artifacts: Path | None = None
            if status == JobStatus.completed:
                try:
                    with s.begin_nested():
                        artifacts = apply_result(
                            s, job, result, staging, self.store.artifacts_dir, now
                        )
                except ModelDeckError as exc:
                    status, error = JobStatus.failed, exc.message
                except Exception as exc:  # a result we cannot apply is the job's failure
                    log.exception("applying the result of %s failed", job_id)
                    status, error = JobStatus.failed, f"{type(exc).__name__}: {exc}"
            duration = (now - job.started_at).total_seconds() if job.started_at else None
            details = {"duration": duration, **(extra or {})}
            if error:
                details["error"] = error
            message = {
                JobStatus.completed: f"{job.type} completed",
                JobStatus.failed: f"{job.type} failed: {error}",
                JobStatus.cancelled: f"{job.type} cancelled",
            }[status]
            jobs.finish(s, job, status, now, message, details, error, exit_code)
            s.commit()
        self._notes.pop(job_id, None)
        # Only now that the version is recorded do its files move in: a commit that failed
        # left them in staging for the next try (recovery finishes a move cut short).
        if artifacts is not None and status == JobStatus.completed:
            place_artifacts(staging, artifacts)
        shutil.rmtree(staging, ignore_errors=True)
        self._wake.set()

    # -- recovery -------------------------------------------------------------------------

    def _recover(self, only: str | None = None, adopt: bool = True) -> None:
        """Adopt running jobs no engine follows; finish the ones whose process is gone.

        The lease holder adopts every live job of this host, even one a job command still
        follows (that command then lets go of it). Without the lease (``only``: a job
        command's own job; ``adopt=False``: a read while no engine serves) a job whose
        engine is alive on this host is left to that engine.
        """
        with self.store.reader() as s:
            stmt = select(Job).where(
                col(Job.status).in_(list(ACTIVE_STATUSES)),
                col(Job.id).not_in(list(self.running) or [""]),
            )
            if only is not None:
                stmt = stmt.where(Job.id == only)
            rows = s.exec(stmt).all()
        pending = {f"recovering job {job.id}" for job in rows}
        for what in [w for w in self._faults if w.startswith("recovering job ")]:
            if what not in pending and only is None:
                del self._faults[what]  # dealt with: nothing of it to try again
        for job in rows:
            # One job that cannot be recovered (its records, a full disk) waits alone.
            self._guarded(f"recovering job {job.id}", lambda j=job: self._recover_one(j, adopt))
        if only is None:
            self._guarded("placing staged artifacts", self._place_staged)

    def _place_staged(self) -> None:
        """Staging folders of ended jobs: a version recorded by a process that died before
        moving its files in gets them now; the rest were left over and go."""
        root = self.store.staging_dir("x").parent
        try:
            names = os.listdir(root)
        except OSError:
            return
        if not names:
            return
        with self.store.reader() as s:
            rows = s.exec(
                select(Job.id, Job.status, ModelVersion.artifact_dir)
                .join(ModelVersion, col(ModelVersion.job_id) == Job.id, isouter=True)
                .where(col(Job.id).in_(names), col(Job.status).in_(list(FINAL_STATUSES)))
            ).all()
        for job_id, status, artifact_dir in rows:
            staging = root / job_id
            if status == JobStatus.completed.value and artifact_dir:
                place_artifacts(staging, Path(artifact_dir))
            shutil.rmtree(staging, ignore_errors=True)

    def _recover_one(self, job: Job, adopt: bool) -> None:
        # A CLI engine adopts only what it was asked about; others wait for a real engine.
        foreign = self.only_job and job.id != self.only_job and job.host == HOST
        if foreign and process_alive(job.pid, job.proc_start):
            return
        if job.host not in (None, HOST):
            return  # another machine's job: only an engine there can judge it
        if job.engine_id == self.id:
            return
        if not self.holds_lease and engine_alive(job.engine_id):
            return  # its engine still follows it
        if job.pid is None and RULES[JobType(job.type)].runs_code:
            found = self._unrecorded_process(job)
            if found is None:
                return  # it never started: queued again, or cancelled if stopped
            job = found
        if process_alive(job.pid, job.proc_start):
            if adopt:
                self._adopt(job)
            return
        result = self._read_result(job.id)
        if job.pid is None and result is None and not RULES[JobType(job.type)].runs_code:
            self._finish(
                job.id,
                JobStatus.failed,
                "lost",
                None,
                {},
                extra={"reason": "the engine died while running it"},
            )
            return
        run = Running(job.id, job.pid or 0, job.pgid or 0, job.proc_start)
        # Recorded with the job's end: several readers may recover it at once, and only the
        # one that ends it says so.
        self._note(
            job.id,
            "recovered",
            "the job's process ended while no engine followed it",
            {"engine": self.id, "result_found": result is not None},
        )
        self._ingest_events(job.id, None)
        self._collect(run, -1)

    def recover_ended(self) -> None:
        """Record the outcome of jobs whose process ended while no engine followed them;
        adopt none (for a read while no engine serves, see ``Deck.settle``)."""
        with self._lock:
            self._recover(adopt=False)

    def _adopt(self, job: Job) -> None:
        """Follow a live job from here on: the job names this engine, so the one that ran it
        (a job command, an engine that lost the lease) lets go of it."""
        now = self.store.now()
        with self.store.writer() as s:
            row = s.get(Job, job.id)
            if row is None or row.status not in ACTIVE_STATUSES or row.engine_id != job.engine_id:
                return  # it changed meanwhile: look again at the next recovery
            row.engine_id = self.id
            add_event(
                s,
                row,
                "reattached",
                f"engine {self.id} re-attached to pid {job.pid}",
                now,
                {"engine": self.id, "pid": job.pid, "host": HOST, "from": job.engine_id},
            )
            s.add(row)
            s.commit()
        self.running[job.id] = Running(
            job.id,
            job.pid,
            job.pgid or job.pid,
            job.proc_start,
            deployment_id=job.deployment_id,
        )

    def _unrecorded_process(self, job: Job) -> Job | None:
        """A claimed code job without a pid: its engine died around the launch.

        The runner's ``pid`` file says whether the process started; record it and return the
        job. Without one no code of the job ever ran, so it is safe to queue it again.
        """
        try:
            raw = (self.store.job_dir(job.id) / "pid").read_text().split()
            pid, start = int(raw[0]), (float(raw[1]) if len(raw) > 1 else None)
            if pid <= 1:
                raise ValueError(f"not a job's pid: {pid}")
        except (OSError, ValueError, IndexError):
            pid = None
        if pid is None and engine_alive(job.engine_id):
            return None  # its engine (a job command, say) is alive: it is starting it now
        now = self.store.now()
        with self.store.writer() as s:
            row = s.get(Job, job.id)
            if row is None or row.status not in ACTIVE_STATUSES or row.pid is not None:
                return None  # someone else dealt with it meanwhile
            if pid is not None:
                row.pid, row.pgid, row.proc_start = pid, pid, start
                add_event(
                    s,
                    row,
                    "started",
                    f"{row.type} started on {HOST} (pid {pid}), found by engine {self.id}",
                    now,
                    {"host": HOST, "pid": pid, "pgid": pid, "engine": self.id},
                )
            elif row.stop_requested_at is not None:
                jobs.cancel_unstarted(s, row, now, {})
            else:
                requeued = "its engine stopped before starting the job's process: queued again"
                jobs.requeue(s, row, now, ("requeued", requeued, {"engine": self.id}))
            s.add(row)
            s.commit()
            return row if pid is not None else None

    # -- schedules ------------------------------------------------------------------------

    def _next_fire_at(self) -> datetime | None:
        with self.store.reader() as s:
            return s.exec(
                select(Deployment.next_run_at)
                .where(
                    Deployment.status == DeploymentStatus.active.value,
                    col(Deployment.paused).is_(False),
                    col(Deployment.next_run_at).is_not(None),
                )
                .order_by(col(Deployment.next_run_at))
                .limit(1)
            ).first()

    def _fire_schedules(self) -> None:
        now = self.store.now()
        self._next_fire = self._next_fire_at()
        if self._next_fire is None or self._next_fire > now:
            return  # the common round: one indexed lookup, nothing due
        with self.store.reader() as s:
            due = s.exec(
                select(Deployment.id).where(
                    Deployment.status == DeploymentStatus.active.value,
                    col(Deployment.paused).is_(False),
                    col(Deployment.next_run_at).is_not(None),
                    col(Deployment.next_run_at) <= now,
                )
            ).all()
        # A batch of deployments per write transaction: a thousand schedules due at the same
        # minute must not each wait for their own commit (and lookups). The burst makes
        # thousands of ORM objects; full collections of the whole heap in the middle of it
        # cost a third of its time, so the collector waits until the burst is over.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._fire_due(list(due))
        finally:
            if collecting:
                gc.enable()
        self._next_fire = self._next_fire_at()

    def _fire_due(self, due: list[str]) -> None:
        """Fire the due deployments. One that cannot fire does not hold back the others: it
        gets a ``schedule_failed`` event saying why (once), and the round then raises, so
        the part is logged once and backs off instead of trying again at once, forever."""
        broken: list[str] = []
        first: Exception | None = None
        for i in range(0, len(due), FIRE_BATCH):
            batch = list(due[i : i + FIRE_BATCH])
            try:
                self._fire_batch(batch)
            except Exception as exc:  # find the broken schedule: fire them one by one
                if _not_the_schedule(exc):
                    raise
                for dep_id in batch:
                    try:
                        self._fire_batch([dep_id])
                    except Exception as one:
                        if _not_the_schedule(one):
                            raise
                        broken.append(dep_id)
                        first = first or one
                        self._schedule_failed(dep_id, one)
        if first is not None:
            more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
            raise UnfirableSchedule(
                f"the schedule of deployment {broken[0]}{more} cannot fire: {describe(first)}"
            ) from first

    def _schedule_failed(self, dep_id: str, exc: Exception) -> None:
        """Say in the deployment's timeline why its schedule cannot fire, once: not again
        while its latest event already says the same."""
        reason = describe(exc)
        message = f"its schedule cannot fire: {reason}"
        try:
            with self.store.writer() as s:
                last = s.exec(
                    select(DeploymentEvent.kind, DeploymentEvent.message)
                    .where(DeploymentEvent.deployment_id == dep_id)
                    .order_by(col(DeploymentEvent.id).desc())
                    .limit(1)
                ).first()
                if last is not None and tuple(last) == ("schedule_failed", message):
                    return
                add_deployment_event(
                    s, dep_id, "schedule_failed", message, self.store.now(), {"error": reason}
                )
                s.commit()
        except Exception as again:  # the round's error says it anyway
            log.debug("recording why %s cannot fire failed", dep_id, exc_info=again)

    def _fire_batch(self, dep_ids: list[str]) -> None:
        with self.store.writer() as s:
            # Load the batch's deployments and its busy batch jobs in two queries; _fire's
            # s.get then hits the session, and no per-deployment query flushes the session.
            # (The session's identity map is weak: keep the loaded rows referenced.)
            deps = s.exec(select(Deployment).where(col(Deployment.id).in_(dep_ids))).all()
            version_ids = {d.version_id for d in deps}
            loaded = [
                *deps,
                *s.exec(select(ModelVersion).where(col(ModelVersion.id).in_(version_ids))),
            ]
            busy: dict[str, Job] = {}
            for job in s.exec(
                select(Job).where(
                    col(Job.deployment_id).in_(dep_ids),
                    Job.type == JobType.batch_predict.value,
                    col(Job.status).in_([JobStatus.queued.value, *ACTIVE_STATUSES]),
                )
            ):
                busy.setdefault(job.deployment_id, job)
            # New jobs and their events go in as rows, in bulk: building and flushing ORM
            # objects one by one was most of a big burst's time.
            rows: dict[str, list[dict[str, Any]]] = {"jobs": [], "events": [], "fired": []}
            for dep_id in dep_ids:
                self._fire(s, dep_id, self.store.now(), busy, rows)
            if rows["jobs"]:
                s.execute(insert(Job), rows["jobs"])
                s.execute(insert(JobEvent), rows["events"])
                s.execute(insert(DeploymentEvent), rows["fired"])
            s.commit()
            del loaded

    def _fire(
        self,
        s: Session,
        dep_id: str,
        now: datetime,
        busy_jobs: dict[str, Job],
        rows: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Fire one due deployment inside the caller's write transaction; a new job and its
        events are added to ``rows`` for the caller to insert."""
        d = s.get(Deployment, dep_id)
        if (
            d is None
            or d.status != DeploymentStatus.active.value
            or d.paused
            or d.next_run_at is None
            or d.next_run_at > now
        ):
            return
        # Walk the grace window and what lies before it apart: after a long outage the fires
        # within the grace are the last ones, far beyond any list of the first.
        start = d.next_run_at - timedelta(seconds=1)
        horizon = now - timedelta(seconds=d.grace_seconds)  # fires from here on are in grace
        within, n_within, upcoming = cron.due_fires(
            d.schedule, d.timezone, max(start, horizon - EPSILON), now, limit=1, keep_last=True
        )
        beyond = 0
        if start < horizon - EPSILON:
            missed, beyond, _ = cron.due_fires(
                d.schedule,
                d.timezone,
                start,
                horizon - EPSILON,
                limit=MISSED_LISTED,
                cap=MISSED_COUNTED,
            )
        if beyond:
            capped = beyond >= MISSED_COUNTED
            add_deployment_event(
                s,
                d.id,
                "schedule_missed",
                f"{beyond}{'+' if capped else ''} fire time(s) missed beyond the "
                f"{d.grace_seconds}s grace (from {missed[0]:%Y-%m-%d %H:%M} UTC)",
                now,
                {
                    "count": beyond,
                    "count_capped": capped,
                    "first": missed[0],
                    "last": missed[-1] if len(missed) == beyond else None,
                    "fire_times": missed,
                },
            )
        if within:
            fire_time = within[-1]
            busy = busy_jobs.get(d.id)
            if busy is not None:
                add_deployment_event(
                    s,
                    d.id,
                    "schedule_skipped",
                    f"fire at {fire_time:%Y-%m-%d %H:%M} UTC skipped: "
                    f"job {busy.id} is still {busy.status}",
                    now,
                    {"fire_time": fire_time, "running_job": busy.id},
                )
                add_event(
                    s,
                    busy,
                    "schedule_skipped",
                    f"scheduled fire at {fire_time:%H:%M} UTC skipped while this job runs",
                    now,
                    {"fire_time": fire_time, "deployment": d.id},
                )
            else:
                v = s.get(ModelVersion, d.version_id)
                details = {
                    "fire_time": fire_time,
                    "lateness": (now - fire_time).total_seconds(),
                    "schedule": d.schedule,
                    "timezone": d.timezone,
                }
                if n_within > 1:
                    details["coalesced"] = n_within - 1
                job_row, event_row = queued_job_rows(
                    JobType.batch_predict,
                    d.project_id,
                    at=now,
                    model_id=v.model_id,
                    version_id=v.id,
                    deployment_id=d.id,
                    dataset_id=d.dataset_id,
                    params={"fire_time": iso(fire_time)},
                    trigger=Trigger.schedule,
                    details=details,
                )
                job_id = job_row["id"]
                rows["jobs"].append(job_row)
                rows["events"].append(event_row)
                rows["fired"].append(
                    {
                        "deployment_id": d.id,
                        "at": now,
                        "kind": "schedule_fired",
                        "message": f"fire at {fire_time:%Y-%m-%d %H:%M} UTC queued job {job_id}",
                        "details": {"job": job_id, **details},
                    }
                )
        d.next_run_at = upcoming
        s.add(d)
