"""The alert commands: ``alert add|list|remove|test|log``. A webhook is shown masked."""

from __future__ import annotations

from core.cli.output import err, out, say, table
from core.cli.session import Cli, Command
from core.errors import ModelDeckError
from core.text import cut, local


def _add(cli: Cli) -> int:
    a = cli.args
    view = cli.deck.alerts.add(a.project, a.webhook, a.on, a.deployment, a.format)
    on = f"deployment {view.deployment}" if view.deployment else f"project {view.project}"
    return cli.show(
        view,
        f"{view.id}: {view.webhook} ({view.format}) told of {','.join(view.events)} on {on}",
    )


def _list(cli: Cli) -> int:
    a = cli.args
    return cli.listing(
        cli.deck.alerts.list(a.project, include_removed=a.all),
        ["id", "deployment", "events", "webhook", "format", "last", "created", "removed"],
        lambda x: [
            x.id,
            x.deployment or "(all)",
            ",".join(x.events),
            x.webhook,
            x.format,
            f"{x.last_outcome} {local(x.last_at)}" if x.last_outcome else "-",
            local(x.created_at),
            local(x.removed_at) if x.removed_at else "-",
        ],
        optional=("removed",),
    )


def _remove(cli: Cli) -> int:
    view = cli.deck.alerts.remove(cli.args.id)
    return cli.show(view, f"{view.id} removed: {view.webhook} is told nothing more")


def _test(cli: Cli) -> int:
    tries = cli.deck.alerts.test(cli.args.id)
    last = tries[-1] if tries else None
    if cli.json:
        out([t.to_json() for t in tries])
    else:
        for t in tries:
            said = f"delivered (HTTP {t.status_code})" if t.outcome == "delivered" else t.error
            err(f"try {t.attempt}: {said}")
    delivered = last is not None and last.outcome == "delivered"
    if not cli.json:
        alert = cli.deck.alerts.get(cli.args.id)
        if delivered:
            say(f"{alert.id}: a test notice was delivered to {alert.webhook}")
        else:
            err(f"{alert.id}: the test notice was not delivered to {alert.webhook}")
    return 0 if delivered else 1


def _log(cli: Cli) -> int:
    a = cli.args
    return cli.listing(
        cli.deck.alerts.log(a.project, a.alert, a.limit),
        ["at", "alert", "event", "deployment", "job", "try", "outcome", "summary"],
        lambda x: [
            local(x.at),
            x.alert,
            x.event,
            x.deployment or "-",
            x.job or "-",
            x.attempt,
            _outcome(x),
            cut(x.summary, 60),
        ],
        optional=("deployment", "job"),
    )


def _outcome(x: object) -> str:
    outcome = getattr(x, "outcome", "")
    if outcome == "delivered":
        return f"delivered (HTTP {getattr(x, 'status_code', '')})"
    if outcome == "dropped":
        return "dropped (alert removed)"
    last = " (gave up)" if getattr(x, "final", False) else ""
    return f"{getattr(x, 'error', '')}{last}"


VERBS: dict[str, Command] = {
    "add": _add,
    "list": _list,
    "remove": _remove,
    "test": _test,
    "log": _log,
}


def alert(cli: Cli) -> int:
    verb = VERBS.get(cli.args.alert_cmd)
    if verb is None:
        raise ModelDeckError(f"unknown alert command {cli.args.alert_cmd!r}")
    return verb(cli)


RUN: dict[str, Command] = {"alert": alert}

__all__ = ["RUN", "table"]
