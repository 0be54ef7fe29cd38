"""The monitoring commands: a deployment's drift (latest run, a given run, the history), its
performance per run, and its drift thresholds (``deployment set``)."""

from __future__ import annotations

from typing import Any

from core.cli.output import err, out, say, table
from core.cli.session import Cli, Command
from core.clock import iso
from core.monitoring.views import DriftRun
from core.text import local

TOP_FEATURES = 3


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def drift_json(run: DriftRun) -> dict[str, Any]:
    """A run as ``modeldeck drift --json`` prints it."""
    pred = run.prediction
    return {
        "deployment": run.deployment_id,
        "job": run.job_id,
        "version": run.version_id,
        "baseline": {"dataset": run.baseline_dataset, "rows": run.baseline_rows},
        "scored": {"dataset": run.scored_dataset, "rows": run.scored_rows},
        "features": [
            {"name": f.name, "psi": f.psi, "ks": f.ks, "status": f.status} for f in run.features
        ],
        "prediction": {"psi": pred.psi, "status": pred.status} if pred else None,
        "status": run.status,
    }


def _top(run: DriftRun) -> list[Any]:
    return [f for f in run.features if f.status != "ok"][:TOP_FEATURES]


def _none(cli: Cli, what: str) -> int:
    if cli.json:
        out(None)
    else:
        err(what)
    return 0


def _why_none(cli: Cli, deployment: str) -> str:
    last = cli.deck.monitoring.last_batch_job(deployment)
    if last is None:
        return f"(no drift run: deployment {deployment} has no batch prediction yet)"
    return (
        f"(no drift run: its last batch prediction {last} kept none: it has not completed, "
        "or the version has no baseline)"
    )


def drift(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    if a.history:
        return _history(cli)
    run = d.monitoring.drift(a.deployment, a.job)
    if run is None:
        return _none(cli, _why_none(cli, a.deployment))
    if cli.json:
        out(drift_json(run))
        return 0
    say(f"deployment {run.deployment_id}, job {run.job_id} ({local(run.at)}): drift {run.status}")
    say(
        f"baseline: {run.baseline_dataset or '-'} ({run.baseline_rows or '-'} rows); "
        f"scored: {run.scored_dataset or '-'} ({run.scored_rows} rows); "
        f"warn from PSI {run.warn_psi:g}, alert from {run.alert_psi:g}"
    )
    rows = [[f.name, f.kind, _num(f.psi), _num(f.ks), f.status] for f in run.features]
    if run.prediction is not None:
        p = run.prediction
        rows.append(["(prediction)", p.kind, _num(p.psi), _num(p.ks), p.status])
    print(table(["feature", "kind", "psi", "ks", "status"], rows))
    return 0


def _history(cli: Cli) -> int:
    runs = cli.deck.monitoring.history(cli.args.deployment)
    if cli.json:
        out(
            [
                {
                    "job": r.job_id,
                    "at": iso(r.at),
                    "version": r.version_id,
                    "status": r.status,
                    "scored": {"dataset": r.scored_dataset, "rows": r.scored_rows},
                    "top": [{"name": f.name, "psi": f.psi, "status": f.status} for f in _top(r)],
                }
                for r in runs
            ]
        )
        return 0
    if not runs:
        err(_why_none(cli, cli.args.deployment))
        return 0
    rows = [
        [
            local(r.at),
            r.job_id,
            r.status,
            r.scored_rows,
            ", ".join(f"{f.name} {f.status}" + (f" {f.psi:.3f}" if f.psi else "") for f in _top(r))
            or "-",
        ]
        for r in runs
    ]
    print(table(["at", "job", "status", "rows", "drifting"], rows))
    return 0


def performance(cli: Cli) -> int:
    runs = [r for r in cli.deck.monitoring.history(cli.args.deployment) if r.metrics]
    if cli.json:
        out(
            [
                {
                    "job": r.job_id,
                    "at": iso(r.at),
                    "version": r.version_id,
                    "scored": {"dataset": r.scored_dataset, "rows": r.scored_rows},
                    "metrics": r.metrics,
                }
                for r in runs
            ]
        )
        return 0
    if not runs:
        err(
            "(no performance history: no batch run scored data with the target column into "
            "a 'prediction' column)"
        )
        return 0
    names = sorted({k for r in runs for k in r.metrics})
    rows = [
        [local(r.at), r.job_id, r.scored_rows, *(_num(r.metrics.get(k)) for k in names)]
        for r in runs
    ]
    print(table(["at", "job", "rows", *names], rows))
    return 0


def deployment(cli: Cli) -> int:
    a = cli.args
    warn, alert = cli.deck.monitoring.set_thresholds(a.deployment, a.warn_psi, a.alert_psi)
    dep = cli.deck.deployment(a.deployment)
    if cli.json:
        out({"deployment": dep.id, "warn_psi": warn, "alert_psi": alert})
    else:
        say(f"{dep.id}: drift warn from PSI {warn:g}, alert from {alert:g}")
    return 0


RUN: dict[str, Command] = {"drift": drift, "performance": performance, "deployment": deployment}
