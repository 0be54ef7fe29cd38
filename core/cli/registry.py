"""The registry's commands: projects, models, versions and datasets (listing, showing,
adding and archiving)."""

from __future__ import annotations

import json
from typing import Any

from core.cli.output import metric, out, retired, say, table
from core.cli.session import Cli, Command
from core.text import compact, cut, local, metrics_text, printable


def projects(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    extra = ["archived"] if a.all else []
    return cli.listing(
        d.projects(include_archived=a.all),
        ["name", "repo", "models", "deployments", "running", "failed", *extra],
        lambda p: [
            p.name,
            p.repo,
            p.models,
            p.active_deployments,
            p.running_jobs,
            p.failed_jobs,
            *([local(p.archived_at) if p.archived_at else "-"] if a.all else []),
        ],
    )


def project(cli: Cli) -> int:
    a = cli.args
    if a.project_cmd in ("set", "show"):
        from core.cli import team  # who may approve: the team's commands

        return team.project_set(cli) if a.project_cmd == "set" else team.project_show(cli)
    if a.project_cmd in ("archive", "unarchive"):
        p = cli.deck.archive_project(a.name, archived=a.project_cmd == "archive")
        return cli.show(p, f"project {p.name} {a.project_cmd}d")
    from core.commands.catalog import project_input

    project_input(a.name, a.repo)  # refused before the data home is made
    p = cli.deck.add_project(a.name, a.repo)
    return cli.show(p, f"project {p.name} added ({p.models} model(s) in {p.repo}/models)")


def models(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    return cli.listing(
        d.models(a.project),
        ["name", "kind", "versions", "latest", "deployed"],
        lambda m: [
            printable(m.name),
            m.kind,
            m.versions,
            f"v{m.latest_version} {m.latest_status}" if m.latest_version else "-",
            ", ".join(f"v{n}" for n in m.deployed_versions) or "-",
        ],
    )


def versions(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    return cli.listing(
        d.versions(a.project, a.model),
        [
            "id",
            "model",
            "version",
            "status",
            "metric",
            "hyperparameters",
            "created",
            "approval",
        ],
        lambda v: [
            v.id,
            v.model,
            v.number,
            v.status,
            metric(v),
            cut(compact(v.hyperparameters), 40) or "-",
            local(v.created_at),
            f"{v.approval.decision} by {v.approval.by}" if v.approval else "-",
        ],
        optional=["hyperparameters"],
    )


def version(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    detail = d.version_detail(a.version)
    if cli.json:
        out(detail.to_json())
    else:
        v = detail.version
        say(f"{v.id}  {v.project}/{v.model}:{v.number}  {v.status}")
        say(f"  created  {local(v.created_at)} by job {v.job_id}")
        say(f"  code     {printable(v.code_fingerprint or '-')}")
        if v.code_diff:
            say(f"  diff     {printable(v.code_diff)}")
        say(f"  runs     {_runs(detail)}")
        say(f"  params   {json.dumps(v.hyperparameters)}")
        for m in detail.metrics_history:
            say(f"  metrics  {local(m.at)} on {m.dataset or '-'}: {metrics_text(m.metrics)}")
        for ap in detail.approvals:
            say(f"  {ap.decision:<8} {local(ap.at)} by {ap.by}: {ap.reason}")
        for dep in detail.deployments:
            why = f" ({retired(dep)})" if dep.retired_at else ""
            say(f"  deploy   {dep.id}  {dep.status}  on {dep.dataset}{why}")
        _judgement(detail)
        _statistics(detail)
    return 0


def _judgement(detail: Any) -> None:
    """Which evaluation the version is judged on, and what each decision was made on."""
    from core.lifecycle import JobType

    judged = detail.version.metrics_from
    if judged is not None and judged.job_type == JobType.evaluate.value:
        own = " (its training data)" if judged.training else ""
        name = str(judged.dataset)
        say(f"  judged   on evaluation {judged.job_id} of {name}{own}")
    for ap in detail.approvals:
        for e in ap.evaluations:
            own = ", its training data" if e.training else ""
            name = str(e.dataset)
            say(f"  {ap.decision} on evaluation {e.job_id} of {name} ({local(e.at)}{own})")


def _statistics(detail: Any) -> None:
    """Statistics per dataset and job: a table of the columns each."""
    from core.stats_table import STATS_HEADERS, stats_rows

    if not detail.statistics:
        say("  statistics  none (modeldeck stats VERSION --dataset D)")
    for run in detail.statistics:
        say(
            f"  statistics of {run.dataset or run.dataset_id} "
            f"by job {run.job_id}, "
            f"{local(run.at)}: {run.rows} rows, {len(run.columns)} columns"
        )
        for line in table(STATS_HEADERS, stats_rows(run.columns)).splitlines():
            say(f"    {line}")


def _runs(detail: Any) -> str:
    """Which code a version's jobs run."""
    where = printable(detail.code_dir or "")
    if detail.code_source == "version":
        return f"its own copy of the code it was trained with ({where})"
    if detail.code_source == "gone":
        return f"nothing: the copy of the code it was trained with is gone ({where}); its jobs fail"
    if detail.code_source == "repository":
        return f"the repository's current code ({where}): trained before versions kept theirs"
    return "the built-in evaluator and scorer (no code of its own)"


def datasets(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    extra = ["archived"] if a.all else []
    return cli.listing(
        d.datasets(a.project, include_archived=a.all),
        ["name", "rows", "columns", "target", "id", "sha256", "path", *extra],
        lambda x: [
            x.name,
            x.rows,
            x.columns,
            x.target,
            x.id_column,
            x.sha256[:12] if x.sha256 else None,
            x.path,
            *([local(x.archived_at) if x.archived_at else "-"] if a.all else []),
        ],
    )


def dataset(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    if a.dataset_cmd in ("archive", "unarchive"):
        ds = d.archive_dataset(a.project, a.name, archived=a.dataset_cmd == "archive")
        return cli.show(ds, f"dataset {ds.name} of {ds.project} {a.dataset_cmd}d")
    ds = d.add_dataset(a.project, a.name, a.path, a.target, a.id_column)
    return cli.show(ds, f"dataset {ds.name} added: {ds.rows} rows, {ds.columns} columns")


RUN: dict[str, Command] = {
    "projects": projects,
    "project": project,
    "models": models,
    "versions": versions,
    "version": version,
    "datasets": datasets,
    "dataset": dataset,
}
