"""Whether a process lives, read from ``/proc``: the engine, the service and readers share it.

Standard library only (and ``core.text``).
"""

from __future__ import annotations

import os
import socket

# This host's name: ``$MODELDECK_HOST`` when set (several hosts simulated on one machine, each
# with its own data home), else the hostname.
HOST = os.environ.get("MODELDECK_HOST") or socket.gethostname()


def host_problem() -> str | None:
    """Why ``HOST`` cannot name this host in the database, or None. Every job and engine
    row records it, and the same name must come back after a restart to re-attach: a byte
    that is not UTF-8 could not be stored (the engine failed every round), and a control
    character would reach other hosts' terminals."""
    from core.text import has_controls, quoted

    if len(HOST) > 255:
        return f"$MODELDECK_HOST is {len(HOST)} characters long; a host name has at most 255"
    if has_controls(HOST) or HOST.strip() != HOST:
        return (
            f"$MODELDECK_HOST {quoted(HOST)} is not a host name: it holds a control "
            "character, a byte that is not UTF-8 or spaces around it"
        )
    return None


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def proc_start_time(pid: int) -> float | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell a reused pid apart."""
    fields = _stat(pid)
    try:
        return float(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def proc_started_at(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (to a second: the boot time's
    precision), or None."""
    ticks = proc_start_time(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


# The last part of a job command's engine id starts with this (``host:pid:job-<hex>``).
JOB_COMMAND = "job-"


def engine_id(obj: object, job_command: bool = False) -> str:
    """An engine's id, ``host:pid:object``: its host and process, and which engine in it."""
    return f"{HOST}:{os.getpid()}:{JOB_COMMAND if job_command else ''}{id(obj):x}"


def is_job_command(engine_id: str | None) -> bool:
    """Whether ``engine_id`` is a job command's engine (it follows its own job only)."""
    return (engine_id or "").rpartition(":")[2].startswith(JOB_COMMAND)


def engine_pid(engine_id: str | None) -> int | None:
    """The process of the engine ``engine_id`` (``host:pid:object``) when it is of this host."""
    host, _, pid = (engine_id or "").rpartition(":")[0].rpartition(":")
    return int(pid) if host == HOST and pid.isdigit() else None


def engine_alive(engine_id: str | None) -> bool:
    """Whether the process of the engine ``engine_id`` is alive here."""
    pid = engine_pid(engine_id)
    return pid is not None and process_alive(pid, None)


def process_alive(pid: int | None, start: float | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if not fields:
        return True  # no /proc to read: kill() said it is there
    if fields[0] == b"Z":
        return False  # a zombie has exited: its outcome is in result.json
    try:
        # A reused pid is another process.
        return start is None or len(fields) < 20 or float(fields[19]) == start
    except ValueError:
        return True


def holder_gone(host: str | None, pid: int | None) -> bool:
    """Whether a lease's holder was a process on this host that has ended (killed, or its
    terminal hung up): its lease is void before it runs out."""
    return host == HOST and pid is not None and not process_alive(pid, None)
