"""Settings kept in the database, the same for every host: ``config get|set|list``."""

from __future__ import annotations

from core.cli.session import Cli, Command
from core.text import local


def config(cli: Cli) -> int:
    a, hosts = cli.args, cli.deck.hosts
    if a.config_cmd == "list":
        return cli.listing(
            hosts.settings(),
            ["key", "value", "set"],
            lambda v: [v.key, v.value, "(default)" if v.default else local(v.updated_at)],
        )
    if a.config_cmd == "set":
        view = hosts.set_setting(a.key, a.value)
        if view.key == "artifacts" and any(e.state == "serving" for e in hosts.engines()):
            from core.cli.output import err

            # An engine reads the store once, as it starts (it refuses one it cannot use).
            err("note: engines serving now keep their artifact store until they restart")
        return cli.show(view, f"{view.key} = {view.value}")
    view = hosts.setting(a.key)
    return cli.show(view, view.value)


RUN: dict[str, Command] = {"config": config}
