"""The ``modeldeck`` command line. Every command takes ``--json``; errors are one line."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from core.clock import iso
from core.errors import ModelDeckError
from core.text import compact, local, metric_value, metrics_text, printable

if TYPE_CHECKING:
    from core.views import JobView

# Only what ``--help`` and the parser need is imported up here: each command imports what it
# uses (the job lifecycle, logs, the views, the database) when it runs.

OpenTui = Callable[[argparse.Namespace], int]
MAX_LIMIT = 1_000_000  # rows a listing shows at most


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other refusal
        raise ModelDeckError(f"{message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The global options. Only the top-level parser has defaults: a (sub)command's parser
    sets them only when they are given after the command, so they work in either position
    and a command's parser never overwrites what was given before it."""
    unset = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "--json", action="store_true", help="print JSON only on standard output", **unset
    )
    p.add_argument(
        "--home", help="data home (default: $MODELDECK_HOME or the user data dir)", **unset
    )
    p.add_argument(
        "--db",
        help="SQLAlchemy database URL (default: $MODELDECK_DB or home/modeldeck.db)",
        **unset,
    )


VERSION_HELP = "a version: its id (or a unique prefix), MODEL:N or PROJECT/MODEL:N"


def _count(flag: str, most: int) -> Callable[[str], int]:
    """An argument type: a whole number from 1 to ``most``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(
                f"{flag} takes a whole number from 1 to {most}, not {text!r}"
            )
        return value

    return parse


def _seconds(flag: str) -> Callable[[str], float]:
    """An argument type: a finite number of seconds, zero or more."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(
                f"{flag} takes a number of seconds, zero or more, not {text!r}"
            )
        return value

    return parse


def _given(flag: str) -> Callable[[str], str]:
    """An argument type: text that is not empty (leaving an option out is how to say none)."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{flag} cannot be empty: leave it out instead")
        return text.strip()

    return parse


def _job_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach", action="store_true", help="only queue the job and print its id")


class _Unused:
    """Stands in for the parser of a command that this run does not parse: every call on it
    (adding an argument, a group, subcommands) does nothing and gives the stand-in back."""

    def __getattr__(self, _name: str) -> Callable[..., _Unused]:
        return lambda *_args, **_kwargs: self


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only``, a parser that knows that one command alone
    (argparse builds each command's parser eagerly, a few milliseconds for all of them)."""
    parser = _Parser(prog="modeldeck", description="Keyboard-first ModelOps console.")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    def cmd(name: str, help: str, job: bool = False) -> argparse.ArgumentParser:
        if only is not None and name != only:
            return cast(argparse.ArgumentParser, _Unused())
        p = sub.add_parser(name, help=help, description=help)
        _common(p)
        if job:
            _job_opts(p)
        return p

    p = cmd("demo", "seed the demo project (idempotent) and open the TUI")
    p.add_argument("--no-tui", action="store_true", help="seed only, do not open the TUI")
    cmd("tui", "open the terminal UI")
    p = cmd("engine", "run the job engine headless until SIGTERM or SIGINT")
    p.add_argument("--workers", type=int, default=None, help="jobs at once (default: CPU count)")
    p.add_argument(
        "--exit-when-idle", action="store_true", help="return once nothing is queued or running"
    )
    p.add_argument(
        "--grace",
        type=_seconds("--grace"),
        default=10.0,
        help="seconds between SIGTERM and SIGKILL on stop",
    )
    p = cmd("projects", "list projects")
    p.add_argument("--all", action="store_true", help="archived projects too")
    p = cmd("project", "manage projects")
    psub = p.add_subparsers(dest="project_cmd", parser_class=_Parser, required=True)
    pa = psub.add_parser("add", help="add a project")
    _common(pa)
    pa.add_argument("name")
    pa.add_argument(
        "--repo", required=True, help="the model repository folder (models in <repo>/models/)"
    )
    for verb, what in (
        ("archive", "take a project out of the lists (its history is kept)"),
        ("unarchive", "bring an archived project back into the lists"),
    ):
        pa = psub.add_parser(verb, help=what, description=what)
        _common(pa)
        pa.add_argument("name")
    p = cmd("models", "list a project's models")
    p.add_argument("project")
    p = cmd("versions", "list model versions")
    p.add_argument("project")
    p.add_argument("--model")
    p = cmd("version", "show one model version")
    p.add_argument("version", help=VERSION_HELP)
    p = cmd("deployments", "list a project's deployments")
    p.add_argument("project")
    p = cmd("datasets", "list a project's datasets")
    p.add_argument("project")
    p.add_argument("--all", action="store_true", help="archived datasets too")
    p = cmd("dataset", "manage datasets")
    dsub = p.add_subparsers(dest="dataset_cmd", parser_class=_Parser, required=True)
    da = dsub.add_parser("add", help="register a CSV or Parquet dataset")
    _common(da)
    da.add_argument("project")
    da.add_argument("name")
    da.add_argument("path")
    da.add_argument("--target", help="the target column")
    da.add_argument(
        "--id-column",
        metavar="COL",
        type=_given("--id-column"),
        help="a column that identifies rows: passed through to predictions "
        "(default: a column named id)",
    )
    for verb, what in (
        ("archive", "take a dataset out of the lists and out of new jobs (history is kept)"),
        ("unarchive", "bring an archived dataset back"),
    ):
        da = dsub.add_parser(verb, help=what, description=what)
        _common(da)
        da.add_argument("project")
        da.add_argument("name")

    p = cmd("train", "train a model: a new version", job=True)
    p.add_argument("project")
    p.add_argument("model")
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override"
    )
    p = cmd("evaluate", "evaluate a version on a dataset", job=True)
    p.add_argument("version", help=VERSION_HELP)
    p.add_argument("--dataset", required=True)
    for name in ("approve", "reject"):
        p = cmd(name, f"{name} an evaluated version (a reason is required)", job=True)
        p.add_argument("version", help=VERSION_HELP)
        p.add_argument("--reason", required=True)
        p.add_argument(
            "--evaluation",
            action="append",
            metavar="JOB",
            help="the evaluation job it is decided on (repeatable; default: the latest "
            "on a dataset it was not trained on)",
        )
    p = cmd("deploy", "deploy an approved version", job=True)
    p.add_argument("version", help=VERSION_HELP)
    p.add_argument("--dataset", required=True, help="the dataset batch predictions score")
    p.add_argument(
        "--schedule",
        metavar="CRON",
        type=_given("--schedule"),
        help="5-field cron expression for batch predictions",
    )
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        type=_given("--timezone"),
        help="IANA time zone of the schedule (default UTC)",
    )
    p = cmd("retire", "retire a deployment", job=True)
    p.add_argument("deployment")
    p.add_argument(
        "--reason", type=_given("--reason"), help="why: kept on the deployment and its events"
    )
    p = cmd("import", "import a BYOM model file (path or http(s) URL)", job=True)
    p.add_argument("project")
    p.add_argument("model")
    p.add_argument("source", metavar="PATH_OR_URL")
    p.add_argument("--format", choices=["joblib", "pickle", "onnx"])
    p.add_argument(
        "--again",
        action="store_true",
        help="import a file identical (same sha256) to a version of the model anyway",
    )
    p = cmd("stats", "compute statistics of a dataset for a version", job=True)
    p.add_argument("version", help=VERSION_HELP)
    p.add_argument("--dataset", required=True)
    p = cmd("predict", "run a batch prediction of a deployment now", job=True)
    p.add_argument("deployment")
    p = cmd("rerun", "run a job again with the same inputs", job=True)
    p.add_argument("job")
    p = cmd("schedule", "change, pause, resume or preview a deployment's schedule")
    p.add_argument("deployment")
    p.add_argument("--cron", metavar="EXPR", type=_given("--cron"))
    p.add_argument("--timezone", metavar="ZONE", type=_given("--timezone"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pause", action="store_true")
    g.add_argument("--resume", action="store_true")
    p.add_argument("--next", type=int, metavar="N", help="preview the next N fire times")
    p.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="preview from TIME on instead of now (ISO 8601; without an offset, TIME is on "
        "the schedule's clock), e.g. 2026-10-25T00:00 or 2026-10-24T22:00Z",
    )

    p = cmd("jobs", "list jobs, newest first")
    p.add_argument("project", nargs="?")
    p.add_argument("--status")
    p.add_argument("--type")
    p.add_argument("--limit", type=_count("--limit", MAX_LIMIT), default=50)
    p = cmd("job", "show one job")
    p.add_argument("job")
    p = cmd("logs", "print a job's log")
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    p.add_argument(
        "--raw",
        action="store_true",
        help="pass the log's bytes through as they are, escape sequences and all",
    )
    p = cmd("events", "print a job's events")
    p.add_argument("job")
    p = cmd("stop", "stop a queued or running job")
    p.add_argument("job")
    p.add_argument(
        "--no-wait", action="store_true", help="only ask; do not wait for the job to end"
    )
    return parser


# -- output helpers ------------------------------------------------------------------------


def _cut(text: str, most: int) -> str:
    """``text`` of at most ``most`` characters, cut with ``…`` (``--json`` has all of it)."""
    return text if len(text) <= most else text[: most - 1] + "…"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def job_lines(job: JobView) -> list[str]:
    """A job's fields, one a line, aligned: times on this machine's clock, labelled; lists
    one item a line; ``params`` and other mappings as JSON."""
    fields = job.to_json()
    width = max(len(k) for k in fields) + 2
    lines = []
    for key, value in fields.items():
        raw = getattr(job, key, value)
        if isinstance(raw, datetime):
            shown = [local(raw)]
        elif value in (None, [], {}, ""):
            shown = ["-"]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = list(value)
        elif isinstance(value, dict):  # still JSON: a key a line, its value on it
            items = [f"{json.dumps(k, ensure_ascii=False)}: {_json(v)}" for k, v in value.items()]
            shown = ("{" + ",\n ".join(items) + "}").splitlines()
        elif isinstance(value, list):
            shown = [_json(value)]
        else:
            shown = [str(value)]
        lines.append(f"{key:<{width}}{shown[0]}")
        lines.extend(" " * width + more for more in shown[1:])
    return lines


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned columns; every cell shown with its control characters made visible."""
    cells = [[("-" if v is None else printable(str(v))) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def out(obj: Any) -> None:
    """JSON on standard output: ``json.dumps`` escapes control characters itself."""
    print(json.dumps(obj, indent=2, default=str))


# Text for people goes through say(), say_lines() or err() (tables through table()): user and
# job text in it is shown with its control characters made visible, never obeyed by the
# terminal (see core.text).


def say(text: str, flush: bool = False) -> None:
    """One line of text on standard output."""
    print(printable(text), flush=flush)


def say_lines(lines: Sequence[str]) -> None:
    """Lines (of a log) on standard output."""
    if lines:
        sys.stdout.write("\n".join(printable(line) for line in lines) + "\n")


def err(msg: str) -> None:
    """One line of text on standard error."""
    print(printable(msg), file=sys.stderr)


def _metric(v: Any) -> str:
    head = v.headline_metric()
    if not head:
        return "-"
    on = v.metrics_from.dataset if v.metrics_from else None
    return f"{head[0]}={metric_value(head[1])}" + (f" on {on}" if on else "")


# -- running ------------------------------------------------------------------------------


class Cli:
    def __init__(self, args: argparse.Namespace) -> None:
        from core.service import Deck

        self.args = args
        self.deck = Deck(home=args.home, db=args.db)
        self.deck.on_warning(lambda message: err(f"warning: {message}"))
        self.json: bool = args.json

    def follow_job(self, job: JobView) -> JobView:
        """Wait for a job to end, running it here when no engine serves the database."""
        from core.engine import Engine
        from core.lifecycle import FINAL_STATUSES, JobStatus
        from core.logs import LogReader

        # It never takes the engine lease and runs the job only while no live engine serves
        # the database, so a real engine may start at any time (and adopt it).
        engine = Engine(self.deck, only_job=job.id, lease=False)
        log = LogReader(self.deck.log_path(job.id))
        interrupted = False
        seen: dict[str, JobView] = {}

        def on_int(_s: int, _f: Any) -> None:
            nonlocal interrupted
            interrupted = True
            engine.wake()

        def ended() -> bool:
            view = seen["view"] = self.deck.job(job.id)
            final = view.status in FINAL_STATUSES
            if not self.json:
                say_lines(log.read(final=final))
                while final and not log.at_end:  # the job ended: print the whole rest
                    say_lines(log.read(final=final))
            return final or interrupted

        old = signal.signal(signal.SIGINT, on_int)
        try:
            engine.serve(until=ended, max_wait=0.05)
            view = seen["view"]
            if view.status not in FINAL_STATUSES:
                where = self._where()
                err(
                    f"modeldeck: left job {job.id} {view.status}; "
                    f"follow it with `modeldeck logs -f {job.id}{where}`, "
                    f"stop it with `modeldeck stop {job.id}{where}`"
                )
                if view.status == JobStatus.queued.value:
                    self._no_engine_note()
            return view
        finally:
            signal.signal(signal.SIGINT, old)
            engine.shutdown()

    def job_command(self, submit: Callable[[], JobView]) -> int:
        from core.lifecycle import JobStatus

        job = submit()
        if self.json:
            err(job.id)
        else:
            say(job.id, flush=True)
        if self.args.detach:
            if job.status == JobStatus.queued.value:
                self._no_engine_note()
            if self.json:
                out(job.to_json())
            return 0
        final = self.follow_job(job)
        if self.json:
            out(final.to_json())
        else:
            self.summarise(final)
        return 0 if final.status == JobStatus.completed.value else 1

    def _where(self) -> str:
        """The options that name this database, for a command this one suggests."""
        where = ""
        for flag, value in (("--home", self.args.home), ("--db", self.args.db)):
            if value:
                where += f" {flag} {shlex.quote(value)}"
        return where

    def _no_engine_note(self) -> None:
        if self.deck.serving_engine() is None:
            err(
                "no engine serves this database: the job starts when one does; "
                f"run `modeldeck engine{self._where()}`"
            )

    def summarise(self, job: JobView) -> None:
        from core.lifecycle import JobStatus, JobType

        d = job.duration(self.deck.now())
        took = f" in {d:.1f}s" if d is not None else ""
        line = f"{job.type} {job.status}{took}"
        if job.error:
            line += f": {job.error}"
        err(line)
        if job.status != JobStatus.completed.value:
            return
        from core.kinds import KINDS  # what a job of each type says when it is done

        for said in KINDS[JobType(job.type)].summary(self.deck, job):
            err(said)

    # -- commands -------------------------------------------------------------------------

    def run(self) -> int:
        from core.lifecycle import FINAL_STATUSES, JobType

        a = self.args
        d = self.deck
        c = a.command
        if c == "projects":
            extra = ["archived"] if a.all else []
            return self.listing(
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
        if c == "project":
            if a.project_cmd in ("archive", "unarchive"):
                p = d.archive_project(a.name, archived=a.project_cmd == "archive")
                return self.show(p, f"project {p.name} {a.project_cmd}d")
            p = d.add_project(a.name, a.repo)
            return self.show(p, f"project {p.name} added ({p.models} model(s) in {p.repo}/models)")
        if c == "models":
            return self.listing(
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
        if c == "versions":
            return self.listing(
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
                    _metric(v),
                    _cut(compact(v.hyperparameters), 40) or "-",
                    local(v.created_at),
                    f"{v.approval.decision} by {v.approval.by}" if v.approval else "-",
                ],
                optional=["hyperparameters"],
            )
        if c == "version":
            detail = d.version_detail(a.version)
            if self.json:
                out(detail.to_json())
            else:
                v = detail.version
                say(f"{v.id}  {v.project}/{v.model}:{v.number}  {v.status}")
                say(f"  created  {local(v.created_at)} by job {v.job_id}")
                say(f"  code     {printable(v.code_fingerprint or '-')}")
                say(f"  runs     {_runs(detail)}")
                say(f"  params   {json.dumps(v.hyperparameters)}")
                for m in detail.metrics_history:
                    say(
                        f"  metrics  {local(m.at)} on {m.dataset or '-'}: {metrics_text(m.metrics)}"
                    )
                for ap in detail.approvals:
                    say(f"  {ap.decision:<8} {local(ap.at)} by {ap.by}: {ap.reason}")
                for dep in detail.deployments:
                    why = f" ({_retired(dep)})" if dep.retired_at else ""
                    say(f"  deploy   {dep.id}  {dep.status}  on {dep.dataset}{why}")
                self.version_judgement(detail)
                self.version_statistics(detail)
            return 0
        if c == "deployments":
            serving = d.serving_engine() is not None
            return self.listing(
                d.deployments(a.project),
                [
                    "id",
                    "version",
                    "status",
                    "dataset",
                    "schedule",
                    "timezone",
                    "paused",
                    "next run",
                    "last run",
                    "retired",
                ],
                lambda x: [
                    x.id,
                    x.label,
                    x.status,
                    x.dataset,
                    x.schedule,
                    x.timezone,
                    "yes" if x.paused else "no",
                    local(x.next_run_at) + x.unserved_mark(serving),
                    x.last_run["status"] if x.last_run else "-",
                    _retired(x),
                ],
            )
        if c == "datasets":
            extra = ["archived"] if a.all else []
            return self.listing(
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
        if c == "dataset":
            if a.dataset_cmd in ("archive", "unarchive"):
                ds = d.archive_dataset(a.project, a.name, archived=a.dataset_cmd == "archive")
                return self.show(ds, f"dataset {ds.name} of {ds.project} {a.dataset_cmd}d")
            ds = d.add_dataset(a.project, a.name, a.path, a.target, a.id_column)
            return self.show(ds, f"dataset {ds.name} added: {ds.rows} rows, {ds.columns} columns")
        if c == "train":
            from core.service import parse_overrides

            overrides = parse_overrides(a.set)
            return self.job_command(lambda: d.train(a.project, a.model, a.dataset, overrides))
        if c == "evaluate":
            return self.job_command(lambda: d.evaluate(a.version, a.dataset))
        if c == "approve":
            return self.job_command(lambda: d.approve(a.version, a.reason, a.evaluation))
        if c == "reject":
            return self.job_command(lambda: d.reject(a.version, a.reason, a.evaluation))
        if c == "deploy":
            return self.job_command(lambda: d.deploy(a.version, a.dataset, a.schedule, a.timezone))
        if c == "retire":
            return self.job_command(lambda: d.retire(a.deployment, a.reason))
        if c == "import":
            return self.job_command(
                lambda: d.import_model(a.project, a.model, a.source, a.format, a.again)
            )
        if c == "stats":
            return self.job_command(lambda: d.compute_stats(a.version, a.dataset))
        if c == "predict":
            return self.job_command(lambda: d.predict(a.deployment))
        if c == "rerun":
            return self.job_command(lambda: d.rerun(a.job))
        if c == "schedule":
            return self.schedule()
        if c == "jobs":
            return self.listing(
                d.jobs(a.project, status=a.status, job_type=a.type, limit=a.limit),
                [
                    "id",
                    "type",
                    "target",
                    "dataset",
                    "status",
                    "trigger",
                    "actor",
                    "created",
                    "error",
                ],
                lambda j: [
                    j.id,
                    j.type,
                    j.target,
                    j.dataset,
                    j.status,
                    j.trigger,
                    j.actor,
                    local(j.created_at),
                    (j.error or "")[:60],
                ],
                optional=["dataset"],
            )
        if c == "job":
            j = d.job(a.job)
            if self.json:
                out(j.to_json())
            else:
                for line in job_lines(j):
                    say(line)
                if j.type == JobType.batch_predict.value and j.status in FINAL_STATUSES:
                    self.predictions_preview(j.id)
            return 0
        if c == "logs":
            return self.logs()
        if c == "events":
            evs = d.events(a.job)
            return self.listing(
                evs,
                ["seq", "at", "kind", "message"],
                lambda e: [e.seq, local(e.at), e.kind, e.message],
            )
        if c == "stop":
            j = d.stop(a.job)
            if not a.no_wait and j.status not in FINAL_STATUSES:
                j = self.follow_quietly(j)
            return self.show(j, f"job {j.id} {j.status}")
        if c == "engine":
            return self.engine()
        raise ModelDeckError(f"unknown command {c!r}")

    def predictions_preview(self, job_id: str) -> None:
        """A batch prediction's summary and the first rows of its predictions.csv."""
        preview = self.deck.predictions(job_id)
        say(f"predictions  {preview.summary_text}")
        if preview.columns:
            say(f"  first {len(preview.rows)} rows of {preview.path}:")
            # The file's own header as its first row: column names as they are, not upper-cased.
            width = max(len(preview.columns), *(len(r) for r in preview.rows), 0)
            rows = [preview.columns, *preview.rows]
            cells = [list(r) + [""] * (width - len(r)) for r in rows]
            for line in table([""] * width, cells).splitlines()[1:]:
                say(f"    {line}")

    def version_judgement(self, detail: Any) -> None:
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

    def version_statistics(self, detail: Any) -> None:
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

    def follow_quietly(self, job: JobView) -> JobView:
        was, self.json = self.json, True
        try:
            return self.follow_job(job)
        finally:
            self.json = was

    def listing(
        self,
        rows: Sequence[Any],
        headers: list[str],
        cells: Callable[[Any], list[Any]],
        optional: Sequence[str] = (),
    ) -> int:
        """A table of ``rows``; a column named in ``optional`` is left out when it is empty
        in every row (the table stays narrow)."""
        if self.json:
            out([r.to_json() for r in rows])
        elif rows:
            body = [cells(r) for r in rows]
            keep = [
                i
                for i, h in enumerate(headers)
                if h not in optional or any(r[i] not in (None, "", "-") for r in body)
            ]
            print(table([headers[i] for i in keep], [[r[i] for i in keep] for r in body]))
        else:
            err("(none)")
        return 0

    def show(self, view: Any, text: str) -> int:
        if self.json:
            out(view.to_json())
        else:
            say(text)
        return 0

    def logs(self) -> int:
        from core.lifecycle import FINAL_STATUSES
        from core.logs import LogReader

        a, d = self.args, self.deck
        job = d.job(a.job)
        if a.raw:
            if self.json:
                raise ModelDeckError("--raw passes the log through as it is; it takes no --json")
            return self.raw_log(job)
        log = LogReader(d.log_path(job.id))
        if self.json:
            lines: list[str] = []
            while True:
                lines.extend(log.read(final=True))
                if log.at_end:
                    break
            out({"job": job.id, "status": job.status, "lines": lines})
            return 0
        while True:
            job = d.job(job.id)
            final = job.status in FINAL_STATUSES
            chunk = log.read(final=final or not a.follow)
            say_lines(chunk)
            if chunk or not log.at_end:
                continue
            if not a.follow or final:
                return 0
            time.sleep(0.1)

    def raw_log(self, job: JobView) -> int:
        """The log's bytes as they are (colours, escape sequences, carriage returns)."""
        from core.lifecycle import FINAL_STATUSES
        from core.logs import CHUNK

        path, offset = self.deck.log_path(job.id), 0
        stdout = sys.stdout.buffer
        while True:
            final = self.deck.job(job.id).status in FINAL_STATUSES
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    while data := fh.read(CHUNK):
                        stdout.write(data)
                        offset += len(data)
            except FileNotFoundError:
                pass
            stdout.flush()
            if not self.args.follow or final:
                return 0
            time.sleep(0.1)

    def schedule(self) -> int:
        a, d = self.args, self.deck
        paused = True if a.pause else False if a.resume else None
        # Refuse a bad preview before changing anything.
        if a.start is not None and a.next is None:
            raise ModelDeckError("--from goes with --next N (the fire times to preview)")
        if a.next is not None and not 1 <= a.next <= 1000:
            raise ModelDeckError("--next takes a number from 1 to 1000")
        if a.start is not None:
            _parse_time(a.start, "UTC")
        if a.cron or a.timezone or paused is not None:
            dep = d.set_schedule(a.deployment, a.cron, a.timezone, paused)
        else:
            dep = d.deployment(a.deployment)
        start = _parse_time(a.start, dep.timezone) if a.start is not None else None
        preview: list[datetime] = []
        if a.next is not None:
            if not dep.schedule:
                raise ModelDeckError(f"deployment {dep.id} has no schedule")
            # From TIME on: a fire at TIME itself is shown too.
            after = start - timedelta(microseconds=1) if start is not None else None
            preview = d.preview_schedule(dep.schedule, dep.timezone, a.next, after=after)
        if self.json:
            data = dep.to_json()
            if a.next is not None:
                data["preview"] = [
                    {"utc": iso(t), "local": _in_zone(t, dep.timezone)} for t in preview
                ]
            out(data)
            return 0
        state = "paused" if dep.paused else "active"
        unserved = dep.unserved_mark(d.serving_engine() is not None)
        say(
            f"{dep.id}: {dep.schedule or 'no schedule'} ({dep.timezone}), {state}, "
            f"next run {local(dep.next_run_at)}{unserved}"
        )
        if preview:
            print(
                table(
                    [f"local ({dep.timezone})", "utc"],
                    [
                        [_in_zone(t, dep.timezone), t.strftime("%Y-%m-%d %H:%M UTC")]
                        for t in preview
                    ],
                )
            )
        return 0

    def engine(self) -> int:
        from core.engine import Engine

        a = self.args
        if a.workers is not None and a.workers < 1:
            raise ModelDeckError("--workers must be at least 1")
        engine = Engine(self.deck, workers=a.workers, grace=a.grace)
        stop: dict[str, str | None] = {"now": None}

        def on_signal(sig: int, _frame: Any) -> None:
            stop["now"] = signal.Signals(sig).name
            engine.wake()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        err(
            f"modeldeck engine {engine.id}: {engine.workers} worker(s), database {self.deck.db_url}"
        )
        announced: list[bool | None] = [None]

        def done() -> bool:
            serving = engine.holds_lease
            if serving != announced[0]:
                if serving:
                    err("holding the engine lease: dispatching jobs and firing schedules")
                else:
                    other = self.deck.serving_engine()
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
                err(
                    f"engine stopped{why}; {left} running job(s) keep running "
                    "and will be re-attached"
                )
            else:
                err(f"engine stopped{why}")
        return 0


def _parse_time(text: str, tz: str) -> datetime:
    """An ISO 8601 time given by the user; one without an offset is on the clock of ``tz``."""
    from core.schedule import zone

    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ModelDeckError(
            f"--from {printable(text)!r} is not a time: use ISO 8601, such as 2026-10-25T00:00 "
            "(on the schedule's clock) or 2026-10-24T22:00Z"
        ) from None
    return t.replace(tzinfo=zone(tz)) if t.tzinfo is None else t


def _runs(detail: Any) -> str:
    """Which code a version's jobs run."""
    where = printable(detail.code_dir or "")
    if detail.code_source == "version":
        return f"its own copy of the code it was trained with ({where})"
    if detail.code_source == "repository":
        return f"the repository's current code ({where}): trained before versions kept theirs"
    return "the built-in evaluator and scorer (no code of its own)"


def _retired(dep: Any) -> str:
    """When a retired deployment was retired, and why (its reason, when one was given)."""
    if dep.retired_at is None:
        return "-"
    return local(dep.retired_at) + (f": {dep.retire_reason}" if dep.retire_reason else "")


def _in_zone(t: datetime, tz: str) -> str:
    from core.schedule import zone

    return t.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M %Z")


# The commands build_parser() defines (a test checks that the two agree).
COMMANDS = frozenset(
    {
        "demo",
        "tui",
        "engine",
        "projects",
        "project",
        "models",
        "versions",
        "version",
        "deployments",
        "datasets",
        "dataset",
        "train",
        "evaluate",
        "approve",
        "reject",
        "deploy",
        "retire",
        "import",
        "stats",
        "predict",
        "rerun",
        "schedule",
        "jobs",
        "job",
        "logs",
        "events",
        "stop",
    }
)


def _command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names when it is certainly one (the first word after the global
    options), else None: then the whole parser is built, for help and for every refusal."""
    takes_value = {"--home", "--db"}
    words = iter(argv)
    for word in words:
        if word in takes_value:
            next(words, None)
        elif word == "--json" or word.split("=", 1)[0] in takes_value:
            continue
        else:
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None, open_tui: OpenTui | None = None) -> int:
    """Run one command; ``open_tui`` opens the TUI (the CLI itself knows no screens)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command_in(argv)).parse_args(argv)
        if args.command in (None, "tui") or (args.command == "demo" and not args.no_tui):
            if open_tui is None:
                raise ModelDeckError("the terminal UI is not available here")
            if args.command == "demo":
                from core.demo import seed_demo
                from core.service import Deck

                deck = Deck(home=args.home, db=args.db)
                seed_demo(deck, progress=err)
            return open_tui(args)
        if args.command == "demo":
            from core.demo import seed_demo

            cli = Cli(args)
            project = seed_demo(cli.deck, progress=err)
            return cli.show(project, f"demo project ready: {project.name} ({project.repo})")
        return Cli(args).run()
    except ModelDeckError as exc:
        err(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
