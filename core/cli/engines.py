"""The engines that serve the database, from their heartbeats."""

from __future__ import annotations

from core.cli.session import Cli, Command
from core.text import local


def engines(cli: Cli) -> int:
    return cli.listing(
        cli.deck.hosts.engines(),
        ["host", "pid", "workers", "running", "version", "started", "last seen", "state"],
        lambda e: [
            e.host,
            e.pid,
            e.workers,
            e.running,
            e.version,
            local(e.started_at),
            local(e.last_seen),
            e.state,
        ],
    )


RUN: dict[str, Command] = {"engines": engines}
