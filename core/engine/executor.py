"""Where a job's code runs: the executor seam.

The engine's phases (dispatch, follow and stop, recovery) speak to an ``Executor`` only: they
launch a job's spec and get a ``Handle`` back, ask it for the exit status, signal or stop
it, and re-attach to it after an engine restart. The job row records the executor's name
and the handle's ``ref``, so the next engine finds the job again without knowing how it
runs. ``LocalExecutor`` (a process group on this machine, forked by a fork server) is the
first implementation; another (Ray, say) is added to ``EXECUTORS`` without touching the
phases.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.events import JobEventKind
from core.models import Job
from core.procfs import proc_start_time, process_alive
from core.runner import end_processes, job_processes, needs_statistics, write_pid_file

from .common import KILL_LIMIT, log

RUNNER = Path(__file__).resolve().parent.parent / "runner.py"


def boot_code(call: str) -> str:
    """``python -c`` code that imports modeldeck's ``core`` and calls ``call`` (which puts
    ``sys.path`` as a job's process wants it: see ``core.runner.job_path``). ``-c`` put the
    working directory first: it goes (a ``core`` there, the user's own project's, or a
    ``json.py``, must not be imported in place of ours), and our root comes first."""
    root = str(RUNNER.parent.parent)
    return f"import sys; sys.path[:] = [{root!r}, *(p for p in sys.path if p)]; {call}"


# How a new interpreter starts a job's process: the runner from its cached bytecode.
RUNNER_BOOT = boot_code("from core.runner import boot; boot()")
# How long the engine waits for the fork server to answer a request for a job process.
SPAWN_TIMEOUT = 30.0


def runner_command(python: str, job_dir: Path) -> list[str]:
    """The command that runs a job's process in a new interpreter ``python``."""
    return [python, "-c", RUNNER_BOOT, str(job_dir)]


LOCAL = "local"


@dataclass(frozen=True)
class Handle:
    """A job as its executor runs it. ``ref`` is what the executor needs to find it again
    (the job row keeps it); pid, process group and start time are the local process's,
    where there is one (the CLI and the timeline show them)."""

    executor: str
    job_id: str
    ref: str
    pid: int | None = None
    pgid: int | None = None
    start: float | None = None
    name: str | None = None  # the executor's own id of it (a Ray submission id)

    @property
    def where(self) -> str:
        """How events name it: ``pid 123``, or the executor's id of it."""
        return f"pid {self.pid}" if self.pid else f"{self.executor} job {self.name}"

    @property
    def target(self) -> str:
        """What a stop's signals go to: its process group, or the executor's job."""
        return f"process group {self.pgid}" if self.pgid else f"{self.executor} job {self.name}"


@dataclass(frozen=True)
class JobSpec:
    """What a job's process is given: the runner's spec (``spec.json``) and the Python to
    run it with."""

    runner: dict[str, Any]
    python: str


class Executor(Protocol):
    """Runs jobs' code somewhere and reports on them; the engine's one view of a job's
    process."""

    name: str

    def prepare(self) -> None:
        """Get ready to launch, before the first job comes (an engine starting to serve
        calls it); raises OSError when it could not."""
        ...

    def launch(
        self, spec: JobSpec, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]
    ) -> Handle:
        """Start the job; raises OSError (or ValueError) when it could not be started."""
        ...

    def poll(self, handle: Handle) -> int | None:
        """The exit status once the job's process ended (negative: killed by that signal;
        -1: ended, status unknown), else None."""
        ...

    def signal(self, handle: Handle, sig: int) -> None:
        """Send ``sig`` to all of the job's processes."""
        ...

    def stop(self, handle: Handle) -> set[int]:
        """Kill the job for good (it had its grace); the process ids killed."""
        ...

    def leftovers(self, handle: Handle, cleaned: bool) -> set[int]:
        """The job ended: kill what it left running (``cleaned``: it says it ended its own
        processes); the process ids killed."""
        ...

    def adopt(self, job: Job) -> Handle | None:
        """Re-attach to the job of this row after an engine restart: its handle while it
        still runs here, else None."""
        ...

    def recorded(self, job: Job) -> Handle | None:
        """The handle the job row holds, alive or not; None when none was recorded."""
        ...

    def launched(self, job: Job) -> Handle | None:
        """A job claimed whose handle the database never got (its engine died around the
        launch): its handle when it was started, else None."""
        ...

    def log_path(self, handle: Handle) -> Path:
        """Where the job's log is."""
        ...

    def news(self, handle: Handle) -> list[tuple[str, str, dict[str, Any]]]:
        """Events for the job's timeline the executor has to tell since it was last asked
        (kind, message, details): a job waiting for resources, resources ignored."""
        ...

    def close(self) -> None:
        """Let go of the jobs; they keep running."""
        ...


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor is made with: where jobs' files are, whom to tell when a job ends,
    the local executor's fork server switch, the engine's grace, the executor of jobs whose
    model names none, and executors' own options (``ray_address``, ``ray_lost_after``)."""

    jobs_dir: Path
    on_exit: Callable[[], None]
    fork_server: bool = True
    grace: float = 10.0
    default: str = LOCAL
    options: Mapping[str, Any] = field(default_factory=dict)


def _group_left(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _killpg(pgid: int | None, sig: int) -> None:
    if not pgid:
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ForkServer:
    """The engine's end of ``core.forkserver``: one light process that forks job processes;
    ``statistics``: the one for jobs computing monitoring statistics (numpy and pyarrow
    imported); ``spares``: how many it keeps forked ahead (its default when None)."""

    def __init__(
        self, on_exit: Callable[[], None], statistics: bool = False, spares: int | None = None
    ) -> None:
        env = dict(os.environ)
        env.pop("PYTHONUNBUFFERED", None)
        boot = boot_code(f"from core.forkserver import serve; serve({statistics!r}, {spares!r})")
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
        self._spares: list[int] = []  # forked ahead, each in its own session, announced
        self._asked = 0  # the id of the last request that waits for an answer
        self._abandoned: set[int] = set()  # requests given up on: what they forked is killed
        threading.Thread(target=self._read, name="modeldeck-forkserver", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "spare" in msg:
                with self._lock:
                    self._spares.append(int(msg["spare"]))
            elif "spare_gone" in msg:
                with self._lock:
                    if int(msg["spare_gone"]) in self._spares:
                        self._spares.remove(int(msg["spare_gone"]))
            elif "exited" in msg:
                with self._lock:
                    self._codes[int(msg["exited"])] = int(msg["code"])
                    self._ended[int(msg["exited"])] = [int(p) for p in msg.get("ended", [])]
                self._on_exit()
            else:
                with self._lock:  # checked and queued at once (see _give_up)
                    late = msg.get("id") in self._abandoned
                    if late:
                        self._abandoned.discard(msg.get("id"))
                    else:
                        self._replies.put(msg)
                if late:
                    _end_late(msg)
        self._replies.put({"error": "the fork server exited"})

    def _give_up(self, asked: int) -> None:
        """Stop waiting for the answer to request ``asked``: its job failed to start, so the
        process it forks, now or later, is killed. An answer the reader queued before this is
        found in the queue; one it reads after, it kills itself."""
        with self._lock:
            self._abandoned.add(asked)
        kept = []
        while True:
            try:
                reply = self._replies.get_nowait()
            except queue.Empty:
                break
            if reply.get("id") == asked:
                with self._lock:
                    self._abandoned.discard(asked)
                _end_late(reply)
            else:
                kept.append(reply)
        for reply in kept:
            self._replies.put(reply)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]) -> int:
        """A job process: a spare when one is announced, else forked on this request."""
        request: dict[str, Any] = {
            "job_dir": str(job_dir),
            "cwd": str(cwd),
            "log": str(log_path),
            "env": env,
        }
        with self._lock:
            spare = self._spares.pop(0) if self._spares else None
        if spare is not None:
            request["spare"] = spare  # its pid is known: no answer to wait for
        else:
            self._asked += 1
            request["id"] = self._asked  # its answer says so: a late one is not taken for it
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        if spare is not None:
            return spare
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._give_up(self._asked)
                raise OSError("the fork server did not answer") from None
            if reply.get("id", self._asked) == self._asked:
                break
            _end_late(reply)  # an earlier request's, given up on
        if "pid" not in reply:
            raise OSError(reply.get("error", "the fork server did not answer"))
        return int(reply["pid"])

    def gone(self, wait: float = 1.0) -> bool:
        """Whether the server has ended (given ``wait`` seconds to)."""
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return False
        return True

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


def _end_late(answer: dict[str, Any]) -> None:
    """Kill the job process a given-up request got (with its process group, once it leads
    one): its job was failed as not started, so its code must not run on untracked."""
    pid = answer.get("pid")
    if not isinstance(pid, int):
        return
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:  # gone, or no group of its own yet (then it started nothing)
            pass


def local_ref(pid: int, pgid: int, start: float | None) -> str:
    """The handle a job row keeps for a local process."""
    return json.dumps({"pid": pid, "pgid": pgid, "start": start})


class LocalExecutor:
    """Each job a process group (and session) of its own on this machine: forked by the fork
    server, or a new interpreter when the model asks for another Python."""

    name = LOCAL

    def __init__(self, ctx: ExecutorContext) -> None:
        self.jobs_dir = ctx.jobs_dir
        self.use_fork_server = ctx.fork_server
        # The running fork servers: the plain one (False) and the statistics' one (True).
        self.fork_servers: dict[bool, ForkServer] = {}
        # Whether the jobs computing statistics go to a server that imported their libraries
        # (off once that import ended one: a broken install).
        self.preload = True
        self._on_exit = ctx.on_exit
        self._popens: dict[int, subprocess.Popen[bytes]] = {}  # its own children, by pid
        self._forked: dict[int, ForkServer] = {}  # forked by a fork server of this engine
        self._news: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}

    def handle(self, job_id: str, pid: int, pgid: int | None, start: float | None) -> Handle:
        pgid = pgid or pid
        return Handle(LOCAL, job_id, local_ref(pid, pgid, start), pid, pgid, start)

    def _fork_server(self, statistics: bool = False) -> ForkServer:
        """The running fork server of that kind, started anew when there is none."""
        server = self.fork_servers.get(statistics)
        if server is None or not server.alive():
            server = self.fork_servers[statistics] = ForkServer(self._on_exit, statistics)
            # An engine dropped without close() still lets its fork server go.
            weakref.finalize(self, server.close, 0)
        return server

    def prepare(self) -> None:
        """Start the plain fork server now: it boots (tens of milliseconds) while the engine
        starts, not while its first job waits."""
        if self.use_fork_server:
            self._fork_server()

    def launch(
        self, spec: JobSpec, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]
    ) -> Handle:
        (job_dir / "spec.json").write_text(json.dumps(spec.runner, default=str))
        job_id = str(spec.runner["job_id"])
        if spec.runner.get("resources"):
            asked = spec.runner["resources"]
            self._news[job_id] = [
                (
                    JobEventKind.resources_ignored,
                    f"runs on this machine: the resources model.json asks for are ignored "
                    f"({json.dumps(asked, sort_keys=True)})",
                    {"executor": LOCAL, "resources": asked},
                )
            ]
        if self.use_fork_server and spec.python == sys.executable:
            pid = self._fork(spec, job_dir, cwd, log_path, env)
        else:
            pid = self._popen(spec, job_dir, cwd, log_path, env)
        start = proc_start_time(pid)
        # Before the database knows the pid: if this engine dies in between, the next one
        # finds the process here (the runner writes the same file once it is up).
        try:
            write_pid_file(job_dir, pid, "" if start is None else str(start))
        except OSError:
            pass
        return self.handle(job_id, pid, pid, start)

    def _fork(
        self, spec: JobSpec, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]
    ) -> int:
        """The job's process, forked by a fork server: the statistics' one for a job that
        computes statistics, unless importing their libraries ended it."""
        statistics = self.preload and needs_statistics(spec.runner)
        server = self._fork_server(statistics)
        try:
            pid = server.spawn(job_dir, cwd, log_path, env)
        except OSError:
            if not (statistics and server.gone()):
                raise
            # Importing them ended the server: this engine's jobs import them themselves.
            log.warning("the fork server ended importing numpy and pyarrow; not again")
            self.preload = False
            server = self._fork_server()
            pid = server.spawn(job_dir, cwd, log_path, env)
        self._forked[pid] = server
        return pid

    def _popen(
        self, spec: JobSpec, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]
    ) -> int:
        """The job's process, a new interpreter (the model asks for another Python)."""
        full = dict(os.environ, **env)
        full.pop("PYTHONUNBUFFERED", None)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(
                runner_command(spec.python, job_dir),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=str(cwd),
                env=full,
                start_new_session=True,  # own process group: stop reaches all of it
                close_fds=True,
            )
        self._popens[proc.pid] = proc
        # Wake the engine the moment the child exits, instead of at the next poll.
        threading.Thread(target=self._wake_on_exit, args=(proc,), daemon=True).start()
        return proc.pid

    def _wake_on_exit(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self._on_exit()

    def poll(self, handle: Handle) -> int | None:
        pid = handle.pid or 0
        popen = self._popens.get(pid)
        if popen is not None:
            code = popen.poll()
            if code is not None:
                del self._popens[pid]
            return code
        forked = self._forked.get(pid)
        if forked is not None:
            code = forked.exit_code(pid)
            if code is not None:
                return code
            if forked.alive():
                # Its server reaps it and says how it ended, at once: no look into /proc
                # (a few of them a job each round, while it runs).
                return None
        return None if process_alive(pid, handle.start) else -1

    def signal(self, handle: Handle, sig: int) -> None:
        _killpg(handle.pgid, sig)

    def stop(self, handle: Handle) -> set[int]:
        # The job's process gets no chance to clean up after SIGKILL: stop and kill its
        # whole tree with it (a daemon in a session of its own too), then its group.
        pid = handle.pid or 0
        alive = process_alive(pid, handle.start)
        killed = end_processes(
            lambda: (
                job_processes(pid, handle.job_id, tree=alive, ids=alive)
                | ({pid} if alive and process_alive(pid, handle.start) else set())
            ),
            0.0,
            limit=KILL_LIMIT,
        )
        _killpg(handle.pgid, signal.SIGKILL)
        return killed

    def leftovers(self, handle: Handle, cleaned: bool) -> set[int]:
        pid = handle.pid
        if not pid:
            return set()
        forked = self._forked.pop(pid, None)
        killed = set(forked.ended(pid)) if forked is not None else set()
        # Its group and session; and, when it did not get to end its own processes (it
        # writes its result after that), whatever process says it belongs to the job.
        job_id = None if cleaned else handle.job_id
        # Its group and session ids stay the job's while any member is left (the kernel does
        # not reuse them); a process now holding its pid says they are another's.
        now_start = proc_start_time(pid)
        ids = now_start is None or now_start == handle.start
        if not (cleaned and ids and not _group_left(handle.pgid or pid)):
            # A runner that wrote its result ended its own processes first: with its group
            # empty there is nothing to look for (a look through /proc costs milliseconds).
            killed |= end_processes(
                lambda: job_processes(pid, job_id, tree=False, ids=ids),
                0.0,
                limit=KILL_LIMIT,
            )
        return killed

    def adopt(self, job: Job) -> Handle | None:
        if job.pid is None or not process_alive(job.pid, job.proc_start):
            return None
        return self.handle(job.id, job.pid, job.pgid, job.proc_start)

    def recorded(self, job: Job) -> Handle | None:
        """The handle the job row holds, alive or not (None: no process was recorded)."""
        if job.pid is None:
            return None
        return self.handle(job.id, job.pid, job.pgid, job.proc_start)

    def launched(self, job: Job) -> Handle | None:
        # The runner's ``pid`` file says whether the process started.
        try:
            raw = (self.jobs_dir / job.id / "pid").read_text().split()
            pid, start = int(raw[0]), (float(raw[1]) if len(raw) > 1 else None)
            if pid <= 1:
                raise ValueError(f"not a job's pid: {pid}")
        except (OSError, ValueError, IndexError):
            return None
        return self.handle(job.id, pid, pid, start)

    def log_path(self, handle: Handle) -> Path:
        return self.jobs_dir / handle.job_id / "log.txt"

    def news(self, handle: Handle) -> list[tuple[str, str, dict[str, Any]]]:
        return self._news.pop(handle.job_id, []) if self._news else []

    def close(self) -> None:
        # Not waiting for them: a server still starting (an engine that ends at once) sees
        # its end of file once it has, and exits then; this process need not wait for it.
        for server in self.fork_servers.values():
            server.close(wait=0)


ExecutorFactory = Callable[[ExecutorContext], Executor]

RAY = "ray"


def ray_executor(ctx: ExecutorContext) -> Executor:
    """The Ray executor (``core.engine.ray_executor``), imported only when a job needs it;
    without the ``ray`` extra, a ValueError naming it."""
    from .ray_executor import RayExecutor

    return RayExecutor(ctx)


# Executors by the name a job row records; a new one plugs in here.
EXECUTORS: dict[str, ExecutorFactory] = {LOCAL: LocalExecutor, RAY: ray_executor}


class Executors:
    """The executors of one engine, made when first needed."""

    def __init__(self, ctx: ExecutorContext) -> None:
        self.ctx = ctx
        self._made: dict[str, Executor] = {}

    @property
    def default(self) -> str:
        """The executor of a job whose model names none."""
        return self.ctx.default

    def get(self, name: str | None) -> Executor:
        name = name or LOCAL
        made = self._made.get(name)
        if made is None:
            factory = EXECUTORS.get(name)
            if factory is None:
                raise ValueError(f"no executor {name!r} here (known: {', '.join(EXECUTORS)})")
            made = self._made[name] = factory(self.ctx)
        return made

    def prepare(self) -> None:
        """Get the default executor ready (an executor that cannot be made yet, Ray without
        its extra say, says so at its first job)."""
        try:
            executor = self.get(self.default)
        except ValueError:
            return
        executor.prepare()

    def of(self, handle: Handle) -> Executor:
        return self.get(handle.executor)

    def close(self) -> None:
        for made in self._made.values():
            made.close()
