"""Jobs on a Ray cluster, through Ray Jobs: submit, status, stop, logs.

A job on Ray runs the same runner as a local one (``runner_command``), as the entrypoint of a
Ray job whose submission id is ``modeldeck-<job id>`` (so an engine that died around the
submission finds it again). Paths are shared, not copied: the entrypoint changes into the
job's code folder and runs the runner on the job's folder in the data home, so the data home
(jobs and artifacts), the project's repository, the datasets and this modeldeck's Python must
be at the same paths on the cluster's nodes (a head on this machine, or a shared file system).

Ray's log of the job is copied into the job's ``log.txt`` while it runs, by one thread of the
executor that also reads the jobs' status; ``poll`` says a job ended only once its whole log
is in. A stop is Ray's stop: SIGTERM to the job's processes, then SIGKILL after the engine's
grace (``RAY_JOB_STOP_WAIT_TIME_S``). A job Ray no longer knows, or whose cluster stays
unreachable longer than ``lost_after`` seconds, ends with status -1 (the engine: ``lost``).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import math
import os
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.events import JobEventKind
from core.models import Job

from .common import log
from .executor import RAY, ExecutorContext, Handle, JobSpec, runner_command

EXTRA_MISSING = (
    "the Ray executor needs the 'ray' extra: uv sync --extra ray (or pip install 'modeldeck[ray]')"
)
ADDRESS_ENV = "MODELDECK_RAY_ADDRESS"
NO_ADDRESS = (
    "no Ray cluster address: start the engine with --ray-address URL "
    f"or set ${ADDRESS_ENV} (the dashboard's URL, e.g. http://127.0.0.1:8265)"
)
# How long a running job's cluster may stay unreachable before the job is lost.
LOST_AFTER = 60.0
# How often the jobs' status and logs are read from Ray.
POLL = 0.2
# One request to the cluster waits this long at most.
REQUEST_TIMEOUT = 10.0
# A job pending on Ray this long with resources asked for gets an event saying why it waits.
WAIT_TOLD_AFTER = 5.0
# What ``model.json``'s ``resources`` may ask for, and Ray's names for them.
RESOURCE_KEYS = {
    "num_cpus": "entrypoint_num_cpus",
    "num_gpus": "entrypoint_num_gpus",
    "memory_gb": "entrypoint_memory",
}
STOPPED_MARK = "ray-stopped"  # a job stopped before its entrypoint ran never runs it
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def ray_installed() -> bool:
    """Whether the ``ray`` extra is installed (found, not imported: that takes a second)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: made unimportable in sys.modules
        return False


def submission_id(job_id: str) -> str:
    """The Ray submission id of a job: the same for every try of one job."""
    return f"modeldeck-{job_id}"


def resources_of(asked: Any) -> dict[str, float]:
    """``model.json``'s ``resources``, checked: only the known keys, each a finite number
    zero or more. Raises ValueError saying what is wrong."""
    if asked in (None, {}):
        return {}
    if not isinstance(asked, dict):
        raise ValueError("model.json's resources must be an object")
    unknown = sorted(set(asked) - set(RESOURCE_KEYS))
    if unknown:
        raise ValueError(
            f"model.json's resources: unknown {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(RESOURCE_KEYS)})"
        )
    out: dict[str, float] = {}
    for key, value in asked.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(f"model.json's resources: {key} must be a number, zero or more")
        out[key] = value
    return out


def describe_resources(resources: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in resources.items()) or "nothing"


def ray_ref(address: str, sid: str, resources: dict[str, float]) -> str:
    """The handle a job row keeps for a job on Ray."""
    return json.dumps({"address": address, "submission_id": sid, "resources": resources})


@dataclass
class Tail:
    """A job on Ray this executor follows: its end once its whole log is copied."""

    handle: Handle
    address: str
    sid: str
    log_path: Path
    resources: dict[str, float]
    ended: int | None = None
    unreachable_since: float | None = None
    pending_since: float | None = None
    told_waiting: bool = False
    give_up: bool = False  # stopped while pending: Ray cannot stop it, it ends here
    news: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class Unknown(Exception):
    """Ray does not know the submission."""


def client_class() -> Any:
    from ray.job_submission import JobSubmissionClient

    class Client(JobSubmissionClient):  # type: ignore[misc]
        """Ray's job client, each request bounded in time (a cluster gone quiet must not
        hang the engine)."""

        def _do_request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", REQUEST_TIMEOUT)
            return super()._do_request(*args, **kwargs)

    return Client


def _unknown(exc: RuntimeError) -> bool:
    text = str(exc)
    return "status code 404" in text or "does not exist" in text


def _status(info: Any) -> str:
    return str(getattr(info.status, "value", info.status))


def _strip_ray_lines(text: str, sid: str) -> str:
    """Ray's own line announcing the entrypoint (our long boot command) left out."""
    head = f"Running entrypoint for job {sid}: "
    if head not in text:
        return text
    return "".join(line for line in text.splitlines(True) if not line.startswith(head))


def copy_log(log_path: Path, text: str, sid: str, final: bool) -> None:
    """Append to ``log_path`` what of Ray's log ``text`` it lacks. The file holds a prefix of
    the (filtered) log: its size says where to go on, so an engine restarted re-attaches
    without losing or repeating a line. While the job runs only whole lines are copied."""
    if not final:
        text = text[: text.rfind("\n") + 1]
    data = _strip_ray_lines(text, sid).encode("utf-8", "backslashreplace")
    with open(log_path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # a reader settling jobs may copy too: once
        try:
            have = os.fstat(fh.fileno()).st_size
            if len(data) > have:
                fh.write(data[have:])
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def say_in_log(log_path: Path, line: str) -> None:
    try:
        with open(log_path, "ab") as fh:
            fh.write(f"modeldeck: {line}\n".encode())
    except OSError:
        pass


class RayExecutor:
    """Runs jobs as Ray jobs of the cluster at ``ray_address`` (the engine's
    ``--ray-address`` or ``$MODELDECK_RAY_ADDRESS``); a job already on Ray is found at the
    address its handle names."""

    name = RAY

    def __init__(self, ctx: ExecutorContext) -> None:
        if not ray_installed():
            raise ValueError(EXTRA_MISSING)
        self.ctx = ctx
        self.address: str | None = ctx.options.get("ray_address") or os.environ.get(ADDRESS_ENV)
        self.lost_after = float(ctx.options.get("ray_lost_after") or LOST_AFTER)
        self.grace = ctx.grace
        self._clients: dict[str, Any] = {}
        self._tails: dict[str, Tail] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the cluster -------------------------------------------------------------------------

    def client(self, address: str) -> Any:
        """Ray's job client for ``address``; raises OSError when the cluster does not
        answer."""
        with self._lock:
            made = self._clients.get(address)
        if made is not None:
            return made
        try:
            made = client_class()(address)
        except (ConnectionError, OSError) as exc:
            raise OSError(f"the Ray cluster at {address} does not answer ({exc})") from None
        except RuntimeError as exc:
            raise OSError(f"the Ray cluster at {address} refused: {exc}") from None
        with self._lock:
            self._clients[address] = made
        return made

    def info(self, address: str, sid: str) -> Any:
        """Ray's record of submission ``sid``; Unknown when Ray does not know it, OSError when
        the cluster does not answer."""
        try:
            return self.client(address).get_job_info(sid)
        except RuntimeError as exc:
            if _unknown(exc):
                raise Unknown(sid) from None
            raise OSError(str(exc)) from None

    # -- the seam ----------------------------------------------------------------------------

    def launch(
        self, spec: JobSpec, job_dir: Path, cwd: Path, log_path: Path, env: dict[str, str]
    ) -> Handle:
        if not self.address:
            raise ValueError(NO_ADDRESS)
        resources = resources_of(spec.runner.get("resources"))
        (job_dir / "spec.json").write_text(json.dumps(spec.runner, default=str))
        job_id = str(spec.runner["job_id"])
        sid = submission_id(job_id)
        run = shlex.join(runner_command(spec.python, job_dir))
        mark = shlex.quote(str(job_dir / STOPPED_MARK))
        entrypoint = f"test ! -e {mark} && cd {shlex.quote(str(cwd))} && exec {run}"
        # Ray's SIGKILL comes a second after the engine's grace: the engine says it first.
        wait = str(math.ceil(self.grace) + 1)
        kwargs: dict[str, Any] = {}
        for key, value in resources.items():
            kwargs[RESOURCE_KEYS[key]] = int(value * 2**30) if key == "memory_gb" else value
        client = self.client(self.address)
        try:
            client.submit_job(
                entrypoint=entrypoint,
                submission_id=sid,
                runtime_env={"env_vars": {**env, "RAY_JOB_STOP_WAIT_TIME_S": wait}},
                metadata={"modeldeck_job": job_id},
                **kwargs,
            )
        except RuntimeError as exc:
            raise ValueError(f"Ray refused the job: {exc}") from None
        except OSError as exc:
            raise OSError(f"the Ray cluster at {self.address} does not answer ({exc})") from None
        handle = Handle(RAY, job_id, ray_ref(self.address, sid, resources), name=sid)
        self._follow(handle)
        return handle

    def poll(self, handle: Handle) -> int | None:
        return self._follow(handle).ended

    def signal(self, handle: Handle, sig: int) -> None:
        """Ray's stop (SIGTERM now, SIGKILL after the grace), whatever ``sig`` asks: Ray
        sends no other signal."""
        try:
            (self.ctx.jobs_dir / handle.job_id / STOPPED_MARK).touch()
        except OSError:
            pass
        tail = self._follow(handle)
        try:
            self.client(tail.address).stop_job(tail.sid)
        except (OSError, RuntimeError) as exc:
            log.warning("modeldeck engine: stopping Ray job %s: %s", tail.sid, exc)

    def stop(self, handle: Handle) -> set[int]:
        """Past the grace: Ray kills it; one that never started (pending on resources) Ray
        cannot stop, so it ends here (it never runs: its entrypoint sees the stop mark)."""
        tail = self._follow(handle)
        tail.give_up = True
        self._wake.set()
        return set()

    def leftovers(self, handle: Handle, cleaned: bool) -> set[int]:
        with self._lock:  # its end is being recorded: no more to follow
            self._tails.pop(handle.job_id, None)
        return set()  # Ray's job supervisor ends what the entrypoint left

    def adopt(self, job: Job) -> Handle | None:
        handle = self.recorded(job)
        if handle is None:
            return None
        address, sid = self._where(handle)
        try:
            info = self.info(address, sid)
        except Unknown:
            say_in_log(self.log_path(handle), f"Ray at {address} does not know job {sid}")
            return None
        except OSError:
            return handle  # unreachable: following it says when it is lost
        if _status(info) in TERMINAL:
            self._copy_final(address, sid, self.log_path(handle))
            return None
        return handle

    def recorded(self, job: Job) -> Handle | None:
        if not job.handle or job.executor != RAY:
            return None
        try:
            ref = json.loads(job.handle)
            sid = str(ref["submission_id"])
        except (ValueError, KeyError, TypeError):
            return None
        return Handle(RAY, job.id, job.handle, name=sid)

    def launched(self, job: Job) -> Handle | None:
        if not self.address:
            return None
        sid = submission_id(job.id)
        try:
            info = self.info(self.address, sid)
        except (Unknown, OSError):
            return None
        resources = {
            key: (getattr(info, ray_key, None) or 0) for key, ray_key in RESOURCE_KEYS.items()
        }
        if resources["memory_gb"]:
            resources["memory_gb"] = resources["memory_gb"] / 2**30
        asked = {k: v for k, v in resources.items() if v}
        return Handle(RAY, job.id, ray_ref(self.address, sid, asked), name=sid)

    def prepare(self) -> None:
        """Nothing ahead: it connects to the cluster at its first job."""

    def log_path(self, handle: Handle) -> Path:
        return self.ctx.jobs_dir / handle.job_id / "log.txt"

    def news(self, handle: Handle) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            tail = self._tails.get(handle.job_id)
            if tail is None or not tail.news:
                return []
            told, tail.news = tail.news, []
        return told

    def close(self) -> None:
        self._halt.set()
        self._wake.set()

    # -- following ---------------------------------------------------------------------------

    def _where(self, handle: Handle) -> tuple[str, str]:
        ref = json.loads(handle.ref)
        return str(ref["address"]), str(ref["submission_id"])

    def _follow(self, handle: Handle) -> Tail:
        with self._lock:
            tail = self._tails.get(handle.job_id)
            if tail is None:
                address, sid = self._where(handle)
                resources = json.loads(handle.ref).get("resources") or {}
                tail = Tail(handle, address, sid, self.log_path(handle), resources)
                self._tails[handle.job_id] = tail
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modeldeck-ray", daemon=True)
                self._thread.start()
        self._wake.set()
        return tail

    def _run(self) -> None:
        while not self._halt.is_set():
            with self._lock:
                tails = [t for t in self._tails.values() if t.ended is None]
            for tail in tails:
                try:
                    self._look(tail)
                except Exception:  # one job's trouble must not stop the others' following
                    log.debug("following Ray job %s", tail.sid, exc_info=True)
            self._wake.wait(POLL)
            self._wake.clear()

    def _end(self, tail: Tail, code: int) -> None:
        tail.ended = code
        self.ctx.on_exit()

    def _look(self, tail: Tail) -> None:
        now = time.monotonic()
        try:
            info = self.info(tail.address, tail.sid)
        except Unknown:
            say_in_log(tail.log_path, f"Ray at {tail.address} does not know job {tail.sid}")
            self._end(tail, -1)
            return
        except OSError as exc:
            since = tail.unreachable_since = tail.unreachable_since or now
            if now - since >= self.lost_after:
                say_in_log(
                    tail.log_path,
                    f"the Ray cluster at {tail.address} has not answered for "
                    f"{now - since:.0f}s ({exc}): job {tail.sid} is lost",
                )
                self._end(tail, -1)
            return
        tail.unreachable_since = None
        status = _status(info)
        if status == "PENDING":
            tail.pending_since = tail.pending_since or now
            if tail.give_up:
                say_in_log(tail.log_path, f"stopped while Ray job {tail.sid} waited to start")
                self._end(tail, -1)
            elif (
                tail.resources
                and not tail.told_waiting
                and now - tail.pending_since >= WAIT_TOLD_AFTER
            ):
                tail.told_waiting = True
                asked = describe_resources(tail.resources)
                with self._lock:
                    tail.news.append(
                        (
                            JobEventKind.executor_waiting,
                            f"queued on Ray for {now - tail.pending_since:.0f}s, asking for "
                            f"{asked}: {info.message}",
                            {
                                "executor": RAY,
                                "submission_id": tail.sid,
                                "resources": tail.resources,
                                "ray_status": status,
                                "ray_message": info.message,
                            },
                        )
                    )
            return
        final = status in TERMINAL
        copy_log(tail.log_path, self.client(tail.address).get_job_logs(tail.sid), tail.sid, final)
        if not final:
            return
        code = info.driver_exit_code
        if code is None and status == "FAILED":
            say_in_log(tail.log_path, f"Ray: {info.message}")
            code = 1
        self._end(tail, -1 if code is None else int(code))

    def _copy_final(self, address: str, sid: str, log_path: Path) -> None:
        try:
            copy_log(log_path, self.client(address).get_job_logs(sid), sid, True)
        except (OSError, RuntimeError) as exc:
            say_in_log(log_path, f"the end of the log could not be read from Ray: {exc}")
