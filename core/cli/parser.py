"""The command line's parser: the global options, every command's arguments, and which
module of ``core.cli`` runs each command."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence
from typing import cast

from core.errors import ModelDeckError

# Only what ``--help`` and the parser need is imported here and in ``core.cli``: each command's
# module imports what it uses (the job lifecycle, logs, the views, the database) when it runs.

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
        "--home",
        type=_given("--home", strip=False),
        help="data home (default: $MODELDECK_HOME or the user data dir)",
        **unset,
    )
    p.add_argument(
        "--db",
        help="SQLAlchemy database URL (default: $MODELDECK_DB or home/modeldeck.db)",
        **unset,
    )


VERSION_HELP = "a version: its id (or a unique prefix), MODEL:N or PROJECT/MODEL:N"


# A number as it is written here: ASCII digits, no "_" between them (Python's int() and
# float() read "1_0" as 10 and Arabic-Indic digits as theirs).
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)
_WHOLE = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)


def _int(text: str) -> int:
    """An argument type: a whole number written in ASCII digits (its range is checked where
    it is used)."""
    if not _WHOLE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}")
    return int(text)


def _count(flag: str, most: int) -> Callable[[str], int]:
    """An argument type: a whole number from 1 to ``most``."""

    def parse(text: str) -> int:
        value = int(text) if _WHOLE.fullmatch(text) else 0
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(
                f"{flag} takes a whole number from 1 to {most}, not {text!r}"
            )
        return value

    return parse


# The longest wait a --grace or --lost-after may ask for: a week (beyond it a typing slip,
# and a wait the system's timers cannot hold).
MAX_SECONDS = 7 * 24 * 3600


def _seconds(flag: str) -> Callable[[str], float]:
    """An argument type: a number of seconds from zero to a week (``MAX_SECONDS``)."""

    def parse(text: str) -> float:
        value = float(text) if _NUMBER.fullmatch(text) else -1.0
        if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
            raise argparse.ArgumentTypeError(
                f"{flag} takes a number of seconds from 0 to {MAX_SECONDS:,} (a week), not {text!r}"
            )
        return value

    return parse


def _psi(flag: str) -> Callable[[str], float]:
    """An argument type: a PSI threshold, a finite number above 0."""

    def parse(text: str) -> float:
        value = float(text) if _NUMBER.fullmatch(text) else -1.0
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{flag} takes a number above 0, not {text!r}")
        return value

    return parse


def _given(flag: str, wanted: str | None = None, strip: bool = True) -> Callable[[str], str]:
    """An argument type: text that is not empty. Leaving an option out is how to say none;
    a required one says what it ``wanted`` instead. ``strip``: without its outer spaces
    (not a path's: a folder's name may end in one)."""

    def parse(text: str) -> str:
        if not text.strip():
            advice = f"give {wanted}" if wanted else "leave it out instead"
            raise argparse.ArgumentTypeError(f"{flag} cannot be empty: {advice}")
        return text.strip() if strip else text

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
    p.add_argument("--workers", type=_int, default=None, help="jobs at once (default: CPU count)")
    p.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="return once nothing is queued or running and the alerts of what ran are told",
    )
    p.add_argument(
        "--grace",
        type=_seconds("--grace"),
        default=10.0,
        help="seconds between SIGTERM and SIGKILL on stop",
    )
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where code jobs run whose model.json names no executor (default: local)",
    )
    p.add_argument(
        "--ray-address", help="the Ray cluster's dashboard URL (else $MODELDECK_RAY_ADDRESS)"
    )
    p.add_argument(
        "--ray-lost-after",
        type=_seconds("--ray-lost-after"),
        default=None,
        help="seconds a Ray cluster may not answer before its running jobs are lost (60)",
    )
    p.add_argument(
        "--lost-after",
        type=_seconds("--lost-after"),
        default=120.0,
        help="seconds after which another host not seen is gone and its running jobs are "
        "failed as lost (default 120)",
    )
    cmd("engines", "list the engines that serve the database (from their heartbeats)")
    p = cmd("config", "settings kept in the database, the same for every host")
    csub = p.add_subparsers(dest="config_cmd", parser_class=_Parser, required=True)
    ca = csub.add_parser("list", help="every setting, defaults too")
    _common(ca)
    ca = csub.add_parser("get", help="one setting's value")
    _common(ca)
    ca.add_argument("key")
    ca = csub.add_parser("set", help="change a setting (artifacts: a folder every host mounts)")
    _common(ca)
    ca.add_argument("key")
    ca.add_argument("value")
    p = cmd("db", "the database: its schema revision, upgrades, a copy into PostgreSQL")
    dsub = p.add_subparsers(dest="db_cmd", parser_class=_Parser, required=True)
    for name, text in (
        ("upgrade", "apply the schema migrations the database lacks"),
        ("current", "print the database's schema revision"),
        ("copy", "copy this registry into an empty PostgreSQL database, in one transaction"),
    ):
        dp = dsub.add_parser(name, help=text, description=text)
        _common(dp)
        if name == "copy":
            dp.add_argument(
                "--to",
                required=True,
                type=_given("--to", "a postgresql://USER@HOST/DATABASE URL"),
                help="postgresql://USER@HOST/DATABASE (an empty database)",
            )
    p = cmd("projects", "list projects")
    p.add_argument("--all", action="store_true", help="archived projects too")
    p = cmd("project", "manage projects")
    psub = p.add_subparsers(dest="project_cmd", parser_class=_Parser, required=True)
    pa = psub.add_parser("add", help="add a project")
    _common(pa)
    pa.add_argument("name")
    pa.add_argument(
        "--repo",
        required=True,
        type=_given("--repo", "the model repository's folder", strip=False),
        help="the model repository folder (models in <repo>/models/)",
    )
    for verb, what in (
        ("archive", "take a project out of the lists (its history is kept)"),
        ("unarchive", "bring an archived project back into the lists"),
    ):
        pa = psub.add_parser(verb, help=what, description=what)
        _common(pa)
        pa.add_argument("name")
    pa = psub.add_parser("show", help="show a project: its counts and who may approve")
    _common(pa)
    pa.add_argument("name")
    what = "set who may approve or reject the project's versions"
    pa = psub.add_parser("set", help=what, description=what)
    _common(pa)
    pa.add_argument("name")
    pa.add_argument(
        "--approvers",
        metavar="USER,USER",
        help="only these users may approve or reject (an empty list: anyone may)",
    )
    eyes = pa.add_mutually_exclusive_group()
    eyes.add_argument(
        "--four-eyes",
        dest="four_eyes",
        action="store_const",
        const=True,
        default=None,
        help="nobody may approve or reject a version they trained or imported",
    )
    eyes.add_argument(
        "--no-four-eyes",
        dest="four_eyes",
        action="store_const",
        const=False,
        help="turn four eyes off",
    )
    cmd("whoami", "print the user this database records as the actor")
    p = cmd("history", "what ran when: a project's deployments at a moment, or its timeline")
    p.add_argument("project")
    p.add_argument(
        "--at",
        metavar="TIME",
        help="the deployments active at TIME (ISO 8601; without a zone, UTC), with what "
        "they were trained from, who approved and who deployed them",
    )
    p = cmd("models", "list a project's models")
    p.add_argument("project")
    p = cmd("versions", "list model versions")
    p.add_argument("project")
    p.add_argument("--model")
    p = cmd("version", "show one model version")
    p.add_argument("version", help=VERSION_HELP)
    p = cmd("compare", "versions side by side: metrics with deltas, what differs")
    p.add_argument("versions", nargs="+", metavar="VERSION", help=VERSION_HELP)
    p.add_argument(
        "--all", action="store_true", help="every hyperparameter, not only those that differ"
    )
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
    da.add_argument("--target", type=_given("--target"), help="the target column")
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
    p.add_argument("--next", type=_int, metavar="N", help="preview the next N fire times")
    p.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="preview from TIME on instead of now (ISO 8601; without an offset, TIME is on "
        "the schedule's clock), e.g. 2026-10-25T00:00 or 2026-10-24T22:00Z",
    )

    p = cmd("drift", "a deployment's drift: its latest batch run against the baseline")
    p.add_argument("deployment")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--job", metavar="JOB", help="the run of this batch prediction job")
    g.add_argument("--history", action="store_true", help="every run: status, top features")
    p = cmd("performance", "a deployment's metrics per batch run on data with the target")
    p.add_argument("deployment")
    p = cmd("deployment", "change a deployment's settings")
    dpsub = p.add_subparsers(dest="deployment_cmd", parser_class=_Parser, required=True)
    ds_ = dpsub.add_parser(
        "set", help="set the drift thresholds", description="set the drift thresholds"
    )
    _common(ds_)
    ds_.add_argument("deployment")
    ds_.add_argument("--warn-psi", type=_psi("--warn-psi"), metavar="X", help="warn from PSI X")
    ds_.add_argument("--alert-psi", type=_psi("--alert-psi"), metavar="Y", help="alert from Y")

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
    _alert_parsers(cmd("alert", "tell a webhook when jobs fail, schedules miss or runs drift"))
    return parser


def _alert_parsers(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="alert_cmd", parser_class=_Parser, required=True)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        v = sub.add_parser(name, help=help, description=help)
        _common(v)
        return v

    v = verb("add", "add a webhook alert to a project (or to one of its deployments)")
    v.add_argument("project")
    v.add_argument("--deployment", metavar="D", help="only this deployment's jobs and runs")
    v.add_argument("--webhook", required=True, metavar="URL", help="an http(s) URL")
    v.add_argument(
        "--on",
        required=True,
        metavar="EVENTS",
        help="a comma list of failed, missed, drift, drift:warn, metric:NAME<VALUE, "
        "metric:NAME>VALUE",
    )
    v.add_argument(
        "--format",
        choices=["json", "slack", "teams"],
        default="json",
        help='the body: the JSON notice, or {"text": ...} for Slack and Teams',
    )
    v = verb("list", "list a project's alerts")
    v.add_argument("project")
    v.add_argument("--all", action="store_true", help="removed alerts too")
    v = verb("remove", "remove an alert (its deliveries stay on record)")
    v.add_argument("id")
    v = verb("test", "send a sample notice now and say how it went")
    v.add_argument("id")
    v = verb("log", "the tries to deliver a project's notices, oldest first")
    v.add_argument("project")
    v.add_argument("--alert", metavar="ID", help="only this alert's")
    v.add_argument("--limit", type=_count("--limit", MAX_LIMIT), default=50)


# Each command and the module of ``core.cli`` that runs it (imported only when the command
# runs); ``tui`` opens the terminal UI, which the CLI itself does not know. A test checks that
# these are the commands build_parser() defines, and that each module runs its commands.
RUN_BY: dict[str, str | None] = {
    "demo": "engine",
    "tui": None,
    "engine": "engine",
    "engines": "engines",
    "config": "config",
    "db": "db",
    "projects": "registry",
    "project": "registry",
    "models": "registry",
    "versions": "registry",
    "version": "registry",
    "compare": "compare",
    "deployments": "deployments",
    "datasets": "registry",
    "dataset": "registry",
    "train": "jobs",
    "evaluate": "jobs",
    "approve": "jobs",
    "reject": "jobs",
    "deploy": "jobs",
    "retire": "jobs",
    "import": "jobs",
    "stats": "jobs",
    "predict": "jobs",
    "rerun": "jobs",
    "schedule": "deployments",
    "drift": "monitoring",
    "performance": "monitoring",
    "deployment": "monitoring",
    "jobs": "jobs",
    "job": "jobs",
    "logs": "jobs",
    "events": "jobs",
    "stop": "jobs",
    "alert": "alerts",
    "whoami": "team",
    "history": "team",
}
COMMANDS = frozenset(RUN_BY)


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
