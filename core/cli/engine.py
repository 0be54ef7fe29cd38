"""The commands that run the engine headless, and seed the demo project without the TUI."""

from __future__ import annotations

import signal
from typing import Any

from core.cli.output import err
from core.cli.session import Cli, Command
from core.errors import ModelDeckError


def engine(cli: Cli) -> int:
    from core.engine import Engine
    from core.hosts import LOST_AFTER_LEAST

    a = cli.args
    if a.workers is not None and a.workers < 1:
        raise ModelDeckError("--workers must be at least 1")
    if a.lost_after < LOST_AFTER_LEAST:
        raise ModelDeckError(
            f"--lost-after must be at least {LOST_AFTER_LEAST:g} seconds (two heartbeats)"
        )
    store = cli.deck.hosts.check_artifacts()  # a store this host cannot use: refused
    engine = Engine(cli.deck, workers=a.workers, grace=a.grace, lost_after=a.lost_after)
    stop: dict[str, str | None] = {"now": None}

    def on_signal(sig: int, _frame: Any) -> None:
        stop["now"] = signal.Signals(sig).name
        engine.wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    err(
        f"modeldeck engine {engine.id}: {engine.workers} worker(s), database {cli.deck.db_url}, "
        f"artifacts {store}"
    )
    announced: list[bool | None] = [None]

    def done() -> bool:
        serving = engine.holds_lease
        if serving != announced[0]:
            if serving:
                err("holding the engine lease: dispatching jobs and firing schedules")
            else:
                other = cli.deck.serving_engine()
                who = f"{other.host} pid {other.pid}" if other else "another engine"
                err(f"standing by: {who} serves this database")
            announced[0] = serving
        if stop["now"]:
            return True
        return bool(a.exit_when_idle and serving and engine.idle())

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


def demo(cli: Cli) -> int:
    """``demo --no-tui``: seed the demo project only (with the TUI, ``core.cli.main`` seeds
    it before opening the screens)."""
    from core.demo import seed_demo

    project = seed_demo(cli.deck, progress=err)
    return cli.show(project, f"demo project ready: {project.name} ({project.repo})")


RUN: dict[str, Command] = {"engine": engine, "demo": demo}
