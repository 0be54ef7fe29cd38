"""A pre-started process that forks job processes, so a job does not pay for a new interpreter.

Starting Python and importing the runner costs tens of milliseconds a job; forking a process
that has already done so costs about one. The engine starts one fork server (standard
library and ``core.runner`` only: never the ORM, never Textual) and asks it for a process a
job; a second one, for the jobs that compute monitoring statistics, once such a job comes.
Each child becomes its own session and process group, points stdout and stderr at the job's
log and runs ``core.runner.main`` exactly as a freshly started runner would.

Protocol, one JSON object a line: the engine writes ``{"job_dir", "cwd", "log", "env"}`` to
the server's stdin; the server answers ``{"pid": N}`` (or ``{"error": "..."}``) and, when a
child ends, ``{"exited": N, "code": C}`` (negative C: killed by signal -C). The server keeps
processes forked ahead (``{"spare": N}``, and ``{"spare_gone": N}`` when one ended unused): a
request naming one (``"spare": N``) gets no answer, the engine has its pid already. A request
that waits for an answer carries an ``"id"``, which the answer repeats.

``serve(statistics=True)``, the statistics' server, imports numpy and pyarrow before it forks
anything, so its jobs do not (a few tenths of a CPU second each). It is a server of its own
because a process forked from one holding those libraries costs the plain jobs several
milliseconds more CPU each to start and end (measured: 6 against 11 for a no-op training).

When the engine goes away (stdin closes) the server exits and its children run on, adopted
by init; their outcome is in their result file for the next engine.

The server is a child subreaper: what a job process leaves behind when it dies without
ending it (killed, or ``os._exit``) becomes the server's child, and the server kills it
at once, reporting the pids with the job's exit: ``{"exited": N, "code": C, "ended": [...]}``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

# Job processes kept forked ahead of their jobs (two rounds of two workers); fewer for the
# statistics' server, whose jobs are few (a dataset's first trainings, batch predictions).
SPARES = 4
STATISTICS_SPARES = 1


def _run_child(request: dict) -> int:
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    os.chdir(request["cwd"])
    os.environ.update(request.get("env") or {})
    from core import runner

    return runner.main(["modeldeck-job", request["job_dir"]])


def _spare(requests: int, closing: list[int], ready: int) -> None:
    """A forked process waiting for its job: its own session and process group first (the
    server reports its pid only after that, so a stop finds the group), then the request
    the server writes to it (end of file: no job for it, it exits)."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for fd in closing:  # the server's wake-up pipe, the other spares' request pipes
        os.close(fd)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)  # not the engine's pipes while it waits: the engine's exit is seen
    os.dup2(null, 2)
    os.close(null)
    os.write(ready, b".")
    os.close(ready)
    data = b""
    try:
        while chunk := os.read(requests, 1 << 16):
            data += chunk
    except OSError:
        data = b""
    os.close(requests)
    if not data:
        os._exit(0)
    code = 1
    try:
        code = _run_child(json.loads(data))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
        except BaseException:
            pass
        os._exit(code)


class Spares:
    """Job processes forked ahead of their jobs, each already in its own session. The server
    announces each (``{"spare": N}``); the engine names one in its request (``"spare": N``)
    and has its pid without waiting for an answer: neither the fork nor the session
    handshake nor a reply is in the engine's round trip."""

    def __init__(self, wakeup: tuple[int, int], most: int = SPARES) -> None:
        self.wakeup = wakeup
        self.most = most  # kept forked ahead
        self.waiting: dict[int, int] = {}  # pid -> the write end of its request pipe
        self.dead: dict[int, int] = {}  # spares that ended unused: their exit status
        self._retry_at = 0.0

    def fork(self) -> tuple[int, int]:
        """A new waiting process (once it leads its own session): its pid and request pipe."""
        req_r, req_w = os.pipe()
        ready_r, ready_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (req_r, req_w, ready_r, ready_w):
                os.close(fd)
            raise
        if pid == 0:
            os.close(req_w)
            os.close(ready_r)
            _spare(req_r, [*self.wakeup, *self.waiting.values()], ready_w)
        os.close(req_r)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        return pid, req_w

    def short(self) -> bool:
        return len(self.waiting) < self.most and time.monotonic() >= self._retry_at

    def add_one(self) -> None:
        try:
            pid, fd = self.fork()
        except OSError:
            self._retry_at = time.monotonic() + 1.0  # no process to spare: requests fork
            return
        self.waiting[pid] = fd
        _emit({"spare": pid})

    def give(self, request: bytes) -> int:
        """Hand ``request`` to a new process; its pid (the engine named no spare)."""
        pid, fd = self.fork()
        try:
            _send(fd, request)
        finally:
            os.close(fd)
        return pid

    def give_to(self, pid: int, request: bytes) -> int | None:
        """Hand ``request`` to the spare ``pid``: None, or the exit status of a spare that
        ended before it got it (the job's process ended before it ran)."""
        fd = self.waiting.pop(pid, None)
        if fd is None:
            return self.dead.pop(pid, -signal.SIGKILL)
        try:
            _send(fd, request)
            return None
        except OSError:  # it ended just now
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        finally:
            os.close(fd)

    def ended(self, pid: int, status: int) -> bool:
        """A child ended: whether it was a waiting spare (then the engine is told)."""
        fd = self.waiting.pop(pid, None)
        if fd is None:
            return False
        os.close(fd)
        self.dead[pid] = os.waitstatus_to_exitcode(status)
        _emit({"spare_gone": pid})
        return True

    def close(self) -> None:
        """Let the waiting spares go (end of file: they exit)."""
        for fd in self.waiting.values():
            os.close(fd)
        self.waiting.clear()


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _id(line: bytes) -> object:
    """The id of a request line (None when it has none or is unreadable)."""
    try:
        return json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None


class _EngineGone(Exception):
    """The engine's end of this server's stdout is closed: nobody is left to tell."""


def _emit(message: dict) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # What is still buffered goes nowhere, quietly, when the interpreter exits.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        raise _EngineGone from None


def _children() -> set[int] | None:
    """This server's children (it forks from its main thread only), from the kernel's list
    of that thread's children; None where the kernel keeps no such list."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as fh:
            return {int(pid) for pid in fh.read().split()}
    except (OSError, ValueError):
        return None


def _orphans(jobs: set[int]) -> set[int]:
    """Live processes adopted from dead job processes, and their descendants (``jobs``:
    the server's own children, running jobs and spares)."""
    from core.runner import process_table

    children_now = _children()
    if children_now is not None and not children_now - jobs:
        return set()  # only running jobs: no look through all of /proc (milliseconds)
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [p for p in children.get(os.getpid(), ()) if p not in jobs]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return {p for p in found if not table[p][3]}


def _reap(jobs: set[int], spares: Spares) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in jobs:
            spares.ended(pid, status)
            continue  # else an orphan we adopted and ended
        jobs.discard(pid)
        from core.runner import end_processes

        # Its orphans are ours by now (the kernel re-parents them before telling us); the
        # others wait meanwhile; the waiting spares are not its.
        ended = end_processes(lambda: _orphans(jobs | set(spares.waiting)), 0.0, limit=1.0)
        _emit({"exited": pid, "code": os.waitstatus_to_exitcode(status), "ended": sorted(ended)})


def serve(statistics: bool = False, spares: int | None = None) -> None:
    """Fork a job process per request on stdin until stdin closes; ``statistics``: with numpy
    and pyarrow imported first; ``spares``: how many to keep forked ahead."""
    # What the runner imports for every job that reads a dataset: once here, not per child
    # (the dataset's CSV is read as utf-8-sig: that codec too; a training's baseline reuse).
    import csv  # noqa: F401
    import encodings.utf_8_sig  # noqa: F401
    import hashlib  # noqa: F401

    from core import runner  # imported once here, inherited by every child

    runner.job_path()
    from core.monitoring import reuse  # noqa: F401  (standard library only)

    if statistics:
        runner.preload_statistics()
    runner.become_subreaper()
    jobs: set[int] = set()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the engine
    if spares is None:
        spares = STATISTICS_SPARES if statistics else SPARES
    ahead = Spares((wake_r, wake_w), spares)
    pending = b""
    try:
        while True:
            short = ahead.short()
            try:
                ready, _, _ = select.select([0, wake_r], [], [], 0.0 if short else 1.0)
            except InterruptedError:
                ready = []
            if short and not ready:
                ahead.add_one()  # while no request waits: off the engine's round trip
                continue
            if wake_r in ready:
                os.read(wake_r, 4096)
            _reap(jobs, ahead)
            if 0 not in ready:
                continue
            data = os.read(0, 1 << 16)
            if not data:
                return  # the engine is gone: leave the children running
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                try:
                    request = json.loads(line)  # unreadable: said here
                    named = request.get("spare")
                    if named is not None:
                        code = ahead.give_to(int(named), line)
                        if code is None:
                            jobs.add(int(named))
                        else:
                            _emit({"exited": int(named), "code": code, "ended": []})
                        continue  # the engine has the pid: no answer
                    pid = ahead.give(line)
                except (ValueError, OSError, AttributeError) as exc:
                    _emit({"error": f"{type(exc).__name__}: {exc}", "id": _id(line)})
                    continue
                jobs.add(pid)
                _emit({"pid": pid, "id": request.get("id")})
    except _EngineGone:
        return  # as when its stdin closes: the children keep running
    finally:
        ahead.close()


if __name__ == "__main__":
    serve()
