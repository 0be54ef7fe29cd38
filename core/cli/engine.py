"""The commands that run the engine headless, and seed the demo project without the TUI."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from core.cli.output import err
from core.cli.session import Cli, Command
from core.errors import ModelDeckError

# Each worker is a job process at once: far more than any host runs (a heartbeat's integer).
MAX_WORKERS = 10_000
# How long --exit-when-idle waits, idle, for the alerts of what it ran to be told (seconds).
ALERTS_WAIT = 60.0


def engine(cli: Cli) -> int:
    from core.engine import Engine
    from core.home import require_writable
    from core.hosts import LOST_AFTER_LEAST
    from core.lifecycle import ACTIVE_STATUSES, JobStatus

    a = cli.args
    if a.workers is not None and not 1 <= a.workers <= MAX_WORKERS:
        raise ModelDeckError(f"--workers must be from 1 to {MAX_WORKERS}")
    if a.lost_after < LOST_AFTER_LEAST:
        raise ModelDeckError(
            f"--lost-after must be at least {LOST_AFTER_LEAST:g} seconds (two heartbeats)"
        )
    options = ray_options(a.executor, a.ray_address, a.ray_lost_after)  # before a home is made
    require_writable(cli.deck.home, "serve as an engine (its jobs' folders are kept there)")
    store = cli.deck.hosts.check_artifacts()  # a store this host cannot use: refused
    engine = Engine(
        cli.deck,
        workers=a.workers,
        grace=a.grace,
        executor=a.executor,
        executor_options=options,
        lost_after=a.lost_after,
    )
    stop: dict[str, str | None] = {"now": None}

    def on_signal(sig: int, _frame: Any) -> None:
        stop["now"] = signal.Signals(sig).name
        engine.wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    shown = cli.deck.store.db_shown
    err(
        f"modeldeck engine {engine.id}: {engine.workers} worker(s), database {shown}, "
        f"artifacts {store}"
    )
    if options.get("ray_address"):
        err(ray_greeting(str(options["ray_address"]), a.executor))
    announced: list[bool | None] = [None]
    idle_since: list[float | None] = [None]

    def idle() -> bool:
        if engine.serving:
            return engine.idle()
        # Standing by (another engine holds the SQLite database's lease): what it waits for is
        # that engine's work, so it is idle once nothing is queued or running there at all
        # (one count: a job put back in the queue between two reads is not missed).
        waiting = {JobStatus.queued.value, *(s.value for s in ACTIVE_STATUSES)}
        return not engine.running and not cli.deck.count_jobs(status=waiting)

    def done() -> bool:
        serving = engine.holds_lease
        if serving != announced[0]:
            if serving:
                err("holding the engine lease: dispatching jobs and firing schedules")
            elif engine.shares_queue:
                err("dispatching jobs beside the other engines of this database")
            else:
                other = cli.deck.serving_engine()
                if engine.lease_failing:  # the database could not be written: see above
                    err("not serving: the engine lease could not be renewed; trying again")
                else:
                    who = f"{other.host} pid {other.pid}" if other else "another engine"
                    err(f"standing by: {who} serves this database")
            announced[0] = serving
        if stop["now"]:
            return True
        if not (a.exit_when_idle and idle()):
            idle_since[0] = None
            return False
        # Idle: nothing queued or running, and the alerts of what ran told; those that cannot
        # be told meanwhile (a webhook that never answers) are left to the next engine.
        idle_since[0] = idle_since[0] or time.monotonic()
        if engine.settled():
            return True
        if time.monotonic() - idle_since[0] < ALERTS_WAIT:
            return False
        err(f"alerts not told within {ALERTS_WAIT:g} s are left to the next engine")
        return True

    try:
        engine.serve(until=done)
    finally:
        engine.shutdown()
        why = f" ({stop['now']})" if stop["now"] else ""
        left = len(engine.running)
        if left:
            err(f"engine stopped{why}; {left} running job(s) keep running and will be re-attached")
        else:
            err(f"engine stopped{why}")
    return 0


def ray_options(executor: str, address: str | None, lost_after: float | None) -> dict[str, Any]:
    """The Ray executor's options from the engine's arguments; refused (exit 2) when Ray is
    asked for without its extra or a cluster address."""
    from core.engine.ray_executor import ADDRESS_ENV, EXTRA_MISSING, NO_ADDRESS, ray_installed

    if address is not None and not address.strip():
        raise ModelDeckError("--ray-address cannot be empty")
    if executor == "ray" or address is not None:
        if not ray_installed():
            raise ModelDeckError(EXTRA_MISSING)
        address = address or os.environ.get(ADDRESS_ENV) or None
        if not address:
            raise ModelDeckError(NO_ADDRESS)
    elif os.environ.get(ADDRESS_ENV) and ray_installed():
        address = os.environ[ADDRESS_ENV]  # for models whose model.json names Ray
    options: dict[str, Any] = {"ray_address": address} if address else {}
    if lost_after is not None:
        options["ray_lost_after"] = lost_after
    return options


def ray_greeting(address: str, executor: str) -> str:
    """One line on the Ray cluster the engine sends jobs to: its version, or that it does not
    answer now (jobs for it fail to start until it does)."""
    from core.engine.ray_executor import REQUEST_TIMEOUT, client_class

    which = "every code job" if executor == "ray" else "models whose model.json says so"
    try:
        client = client_class()(address)
        version = getattr(client, "_server_ray_version", None) or "?"
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        return (
            f"warning: the Ray cluster at {address} does not answer "
            f"({first}; waited up to {REQUEST_TIMEOUT:g}s): jobs for it fail to start "
            "until it does"
        )
    return f"Ray cluster at {address} (Ray {version}) runs {which}"


def demo(cli: Cli) -> int:
    """``demo --no-tui``: seed the demo project only (with the TUI, ``core.cli.main`` seeds
    it before opening the screens)."""
    from core.demo import seed_demo

    project = seed_demo(cli.deck, progress=err)
    return cli.show(project, f"demo project ready: {project.name} ({project.repo})")


RUN: dict[str, Command] = {"engine": engine, "demo": demo}
