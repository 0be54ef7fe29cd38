"""A pre-started process that forks job processes, so a job does not pay for a new interpreter.

Starting Python and importing the runner costs tens of milliseconds a job; forking a process
that has already done so costs about one. The engine starts one fork server (standard
library and ``core.runner`` only: never the ORM, never Textual) and asks it for a process a
job. Each child becomes its own session and process group, points stdout and stderr at the
job's log and runs ``core.runner.main`` exactly as a freshly started runner would.

Protocol, one JSON object a line: the engine writes ``{"job_dir", "cwd", "log", "env"}`` to
the server's stdin; the server answers ``{"pid": N}`` (or ``{"error": "..."}``) and, when a
child ends, ``{"exited": N, "code": C}`` (negative C: killed by signal -C). When the engine
goes away (stdin closes) the server exits and its children run on, adopted by init; their
outcome is in their result file for the next engine.

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


def _child(request: dict, wakeup: tuple[int, int], ready: int) -> None:
    os.setsid()
    os.write(ready, b".")  # the server reports the pid only now: a stop finds the group
    os.close(ready)
    signal.set_wakeup_fd(-1)
    for fd in wakeup:
        os.close(fd)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    code = 1
    try:
        code = _run_child(request)
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


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _children() -> set[int] | None:
    """This (single-threaded) server's children, from the kernel's list; None where the
    kernel keeps no such list."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as fh:
            return {int(pid) for pid in fh.read().split()}
    except (OSError, ValueError):
        return None


def _orphans(jobs: set[int]) -> set[int]:
    """Live processes adopted from dead job processes, and their descendants."""
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


def _reap(jobs: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in jobs:
            continue  # an orphan we adopted and ended
        jobs.discard(pid)
        from core.runner import end_processes

        # Its orphans are ours by now (the kernel re-parents them before telling us).
        ended = end_processes(lambda: _orphans(jobs), 0.0, limit=1.0)  # others wait meanwhile
        _emit({"exited": pid, "code": os.waitstatus_to_exitcode(status), "ended": sorted(ended)})


def serve() -> None:
    """Fork a job process per request on stdin until stdin closes."""
    # What the runner imports for every job that reads a dataset: once here, not per child.
    import csv  # noqa: F401
    import hashlib  # noqa: F401

    from core import runner  # imported once here, inherited by every child

    runner.become_subreaper()
    jobs: set[int] = set()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the engine
    pending = b""
    while True:
        try:
            ready, _, _ = select.select([0, wake_r], [], [], 1.0)
        except InterruptedError:
            ready = []
        if wake_r in ready:
            os.read(wake_r, 4096)
        _reap(jobs)
        if 0 not in ready:
            continue
        data = os.read(0, 1 << 16)
        if not data:
            return  # the engine is gone: leave the children running
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                request = json.loads(line)
                ready_r, ready_w = os.pipe()
                pid = os.fork()
            except (ValueError, OSError) as exc:
                _emit({"error": f"{type(exc).__name__}: {exc}"})
                continue
            if pid == 0:
                os.close(ready_r)
                _child(request, (wake_r, wake_w), ready_w)
            jobs.add(pid)
            os.close(ready_w)
            os.read(ready_r, 1)  # until the child leads its own session and process group
            os.close(ready_r)
            _emit({"pid": pid})


if __name__ == "__main__":
    serve()
