"""A team's commands: who am I (``whoami``), who may approve in a project (``project set``,
``project show``) and what ran when (``history``)."""

from __future__ import annotations

from core.cli.output import err, out, say
from core.cli.session import Cli, Command
from core.text import local, metrics_text


def whoami(cli: Cli) -> int:
    from core.db import sqlite_file_missing
    from core.home import resolve_db_url, resolve_home
    from core.identity import os_login
    from core.views import WhoView

    url = resolve_db_url(resolve_home(cli.args.home), cli.args.db)
    # On SQLite without its file, the login: no database to open (nor to make).
    missing = sqlite_file_missing(url)
    who = WhoView(user=os_login(), via="os") if missing else cli.deck.team.whoami()
    how = (
        "the operating-system login of this process"
        if who.via == "os"
        else "the role the database server authenticated"
    )
    return cli.show(who, f"{who.user} ({how})")


def project_set(cli: Cli) -> int:
    a = cli.args
    approvers = None if a.approvers is None else a.approvers.split(",")
    rules = cli.deck.team.set_rules(a.name, approvers, a.four_eyes)
    shown = cli.show(rules, f"project {rules.project}: {rules.describe()}")
    me = cli.deck.team.whoami()
    who = me.user
    where = "login role on this database server" if me.via == "database" else "login on this host"
    for name in cli.deck.team.unknown(rules.approvers) if approvers is not None else []:
        # Named before the role is made, or a typo: nobody can decide as them yet.
        err(f"warning: {name} is no {where}: nobody can approve or reject as {name} until it is")
    if approvers is not None and rules.approvers and who not in rules.approvers:
        # Handing the rules over is allowed; doing it unawares locks oneself out of them.
        err(
            f"warning: you ({who}) are not among its approvers: from now on only they can "
            "change its approvers or four eyes"
        )
    return shown


def project_show(cli: Cli) -> int:
    p = cli.deck.project(cli.args.name)
    if cli.json:
        out(p.to_json())
        return 0
    rows = [
        ("name", p.name),
        ("repo", p.repo),
        ("created", local(p.created_at)),
        ("archived", local(p.archived_at) if p.archived_at else "-"),
        ("models", p.models),
        ("deployments", p.active_deployments),
        ("running", p.running_jobs),
        ("failed", p.failed_jobs),
        ("approvers", ", ".join(p.approvers) or "anyone"),
        ("four eyes", "required" if p.four_eyes else "not required"),
    ]
    for key, value in rows:
        say(f"{key:<12}{value}")
    return 0


def history(cli: Cli) -> int:
    from core.history import parse_time

    a, d = cli.args, cli.deck
    if a.at is None:
        entries = d.history.timeline(a.project)
        return cli.listing(
            entries,
            ["time", "what", "version", "by", "why", "deployment"],
            lambda e: [local(e.at), e.kind, e.target, e.by, e.text, e.deployment],
            optional=["deployment"],
        )
    when = parse_time(a.at)
    active = d.history.at(a.project, when)
    if cli.json:
        out([x.to_json() for x in active])
        return 0
    shown = local(when, ms=bool(when.microsecond))  # as given: to the millisecond, or not
    say(f"deployments of {a.project} active at {shown}: {len(active)}")
    for x in active:
        t, ap = x.trained, x.approval
        say("")
        say(f"{x.id}  {x.label} ({x.version})  scoring {x.scores}")
        if x.schedule:
            say(f"  schedule   {x.schedule} ({x.timezone})")
        sha = (t.dataset_sha256 or "")[:12] or "-"
        rows = "" if t.dataset_rows is None else f", {t.dataset_rows} rows"
        job = f" (job {t.job_id})" if t.job_id else ""
        say(f"  {t.how:<10} {local(t.at)} by {t.by or '-'} on {t.dataset or '-'}{job}")
        say(f"  dataset    sha256 {sha}{rows}")
        say(f"  code       {t.code_fingerprint or '-'}")
        if ap is None:
            say("  approved   - (no approval recorded before it was deployed)")
        else:
            say(f"  approved   {local(ap.at)} by {ap.by}: {ap.reason}")
            for e in ap.evaluations:
                say(f"    on {e.job_id} of {e.dataset}: {metrics_text(e.metrics)}")
            if not ap.evaluations and ap.metrics:
                say(f"    on {metrics_text(ap.metrics)}")
        say(f"  deployed   {local(x.deployed_at)} by {x.deployed_by or '-'}")
        if x.retired_at is not None:
            why = f": {x.retire_reason}" if x.retire_reason else ""
            say(f"  retired    {local(x.retired_at)} by {x.retired_by or '-'}{why} (later)")
    return 0


RUN: dict[str, Command] = {"whoami": whoami, "history": history}
