"""``modeldeck compare``: versions side by side (metrics with deltas, the hyperparameters
that differ, dataset, code, trainer, approval, status)."""

from __future__ import annotations

from typing import Any

from core.cli.output import out, say, table
from core.cli.session import Cli, Command
from core.text import cut


def compare(cli: Cli) -> int:
    from core.compare import compare as compare_versions
    from core.compare import delta_text, hyperparameter_text
    from core.text import metric_value

    a = cli.args
    c = compare_versions(cli.deck, a.versions, all_hyperparameters=a.all)
    if cli.json:
        out(c.to_json())
        return 0
    vs = c.versions
    rows: list[list[Any]] = [
        ["version", *(v.label for v in vs)],
        ["id", *(v.id for v in vs)],
        ["status", *(v.status for v in vs)],
        ["dataset", *(v.dataset or "-" for v in vs)],
        ["code", *(v.code_fingerprint or "-" for v in vs)],
        ["trainer", *(v.trainer or "-" for v in vs)],
        ["approval", *(cut(v.approval, 40) if v.approval else "-" for v in vs)],
        ["metrics of", *(_metrics_of(v) for v in vs)],
    ]
    for m in c.metrics:
        cells = []
        for x, d in zip(m.values, m.deltas, strict=True):
            shown = "-" if x is None else metric_value(x)
            cells.append(f"{shown} ({delta_text(d)})" if d is not None else shown)
        rows.append([f"metric {m.name}", *cells])
    for h in c.hyperparameters:
        rows.append([f"param {h.name}", *(cut(hyperparameter_text(x), 40) for x in h.values)])
    # The first row names the versions: the header line would only say "FIELD".
    for line in table(["", *("" for _ in vs)], rows).splitlines()[1:]:
        print(line)
    if not c.metrics:
        say("(no metrics recorded on these versions)")
    if c.same_hyperparameters and not c.all_hyperparameters:
        say(f"({c.same_hyperparameters} hyperparameter(s) the same in all: --all shows them)")
    elif not c.hyperparameters:
        say("(no hyperparameters)")
    return 0


def _metrics_of(v: Any) -> str:
    if v.metrics_job is None:
        return "-"
    return f"{v.metrics_job[:10]} on {v.metrics_dataset or '-'}"


RUN: dict[str, Command] = {"compare": compare}
