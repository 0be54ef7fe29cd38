"""Job kinds as a registry: everything that makes one job type what it is, in one entry.

A job type's entry (``KINDS[JobType.train]``) holds its lifecycle rule (``RULES``), the names
of the parameters its job stores and their checks, the Deck verb that submits it and the one
that runs it again, what the engine's spec for its process switches on, the runner function
its process runs, its effect on the registry when it ends, the CLI's summary of a finished
one and the TUI key that submits it. README.md, "Adding a job type", lists the few places a
new type touches besides this one.

The runner (``core.runner``) is standard library only and cannot import this module: an entry
names its runner function, and a test checks that the runner's own table agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from core import effects
from core import schedule as cron
from core.errors import ModelDeckError
from core.lifecycle import IMPORT_FORMATS, RULES, JobType, Rule
from core.text import local, metrics_text

if TYPE_CHECKING:
    from core.service import Deck
    from core.views import JobView


# Parameters the engine adds to a job of any kind: the dataset file it read (when it ends).
ENGINE_PARAMS = ("dataset_file",)

Summary = Callable[["Deck", "JobView"], list[str]]
Rerun = Callable[["Deck", "JobView"], "JobView"]
ParamsCheck = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Spec:
    """What the engine's spec for a code job's process switches on.

    ``staging``: its model folder is the job's staging folder (the files of the version it
    makes), not the version's artifacts. ``code``: the model code folder it is given:
    ``repository`` (the model's folder in the repository, as it is now), ``version`` (the
    version's own copy of the code it was trained with, else the repository's; code models
    only) or ``none``. ``entry``: the function of the model's code it runs (``file:function``),
    if any; ``builtin``: what it runs instead when the model has no such file (or always, with
    no ``entry``). Both are what the job's ``code_used`` event names.
    """

    staging: bool
    code: Literal["repository", "version", "none"]
    entry: str | None
    builtin: str | None

    @property
    def runs_model_code(self) -> bool:
        """Whether it can run the model's own code (else only modeldeck's built-in)."""
        return self.entry is not None


@dataclass(frozen=True)
class TuiVerb:
    """The TUI key that submits a job of the kind, as the TUI shows it: ``pane`` is the tab
    (``models``: on the highlighted version or model; ``deployments``: on the highlighted
    deployment), ``action`` the Textual action, ``binding`` the binding's id."""

    pane: Literal["models", "deployments"]
    key: str
    action: str
    label: str
    binding: str


@dataclass(frozen=True)
class JobKind:
    """One job type: see the module's docstring.

    Exactly one of ``apply_inline`` (a job that runs no code: done inside the engine's
    transaction) and ``apply_result`` (a code job: applies its runner's result) is set, as
    ``rule.runs_code`` says; a code job has a ``spec`` and a ``runner`` too.
    """

    type: JobType
    rule: Rule
    params: tuple[str, ...]  # the names its submission stores in ``Job.params``
    check_params: ParamsCheck  # what can be checked of those without the database
    submit: str  # the Deck method that checks the rest and queues it
    rerun: Rerun  # queue one with the same inputs, through the Deck's public verbs
    spec: Spec | None
    runner: str | None  # the function of ``core.runner`` its process runs
    apply_inline: effects.InlineEffect | None
    apply_result: effects.ResultEffect | None
    summary: Summary  # the CLI's lines after "<type> completed in …"
    verb: TuiVerb

    @property
    def runs_code(self) -> bool:
        return self.rule.runs_code

    def check(self, params: Mapping[str, Any]) -> None:
        """Refuse (ModelDeckError) parameters of a job of this kind that its submission
        would not store: a name it does not take, or a value its verb refuses."""
        unknown = sorted(set(params) - set(self.params) - set(ENGINE_PARAMS))
        if unknown:
            raise ModelDeckError(f"{self.type.value} jobs take no parameter {unknown[0]!r}")
        self.check_params(params)


# -- checks of parameters ---------------------------------------------------------------


def _object(params: Mapping[str, Any], name: str) -> None:
    if name in params and not isinstance(params[name], dict):
        raise ModelDeckError(f"{name} must be an object")


def _text(params: Mapping[str, Any], name: str, optional: bool = True) -> None:
    value = params.get(name)
    if not isinstance(value, str) and not (optional and value is None):
        raise ModelDeckError(f"{name} must be a text")


def _no_check(params: Mapping[str, Any]) -> None:
    return None


def _check_train(params: Mapping[str, Any]) -> None:
    _object(params, "hyperparameters")
    _object(params, "overrides")
    _text(params, "code_fingerprint")


def _check_decision(verb: str) -> ParamsCheck:
    def check(params: Mapping[str, Any]) -> None:
        reason = params.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ModelDeckError(f"a reason is required to {verb} a version")
        chosen = params.get("evaluations")
        if chosen is not None and not (
            isinstance(chosen, list) and all(isinstance(j, str) for j in chosen)
        ):
            raise ModelDeckError("evaluations must be a list of job ids")

    return check


def _check_deploy(params: Mapping[str, Any]) -> None:
    _text(params, "schedule")
    _text(params, "timezone")
    if params.get("schedule"):
        cron.validate_cron(params["schedule"])
    cron.zone(params.get("timezone") or "UTC")


def _check_retire(params: Mapping[str, Any]) -> None:
    _text(params, "reason")


def _check_import(params: Mapping[str, Any]) -> None:
    for name in ("model", "source", "format"):
        _text(params, name, optional=False)
    source = params["source"]
    if "://" in source and not source.lower().startswith(("http://", "https://")):
        raise ModelDeckError(f"{source!r}: only http(s) URLs and local files can be imported")
    fmt = params["format"]
    if fmt not in IMPORT_FORMATS:
        raise ModelDeckError(f"unknown format {fmt!r} (use {', '.join(IMPORT_FORMATS)})")
    if not isinstance(params.get("again", False), bool):
        raise ModelDeckError("again must be true or false")


def _check_batch_predict(params: Mapping[str, Any]) -> None:
    _text(params, "fire_time")  # a scheduled run's fire time


# -- running again: the Deck's public verbs, with the job's inputs ------------------------


def _rerun_train(deck: Deck, j: JobView) -> JobView:
    return deck.train(j.project, j.model or "", j.dataset or "", j.params.get("overrides"))


def _rerun_evaluate(deck: Deck, j: JobView) -> JobView:
    return deck.evaluate(j.version or "", j.dataset or "")


def _rerun_compute_stats(deck: Deck, j: JobView) -> JobView:
    return deck.compute_stats(j.version or "", j.dataset or "")


def _rerun_approve(deck: Deck, j: JobView) -> JobView:
    return deck.approve(j.version or "", j.params.get("reason", ""), _chosen(j))


def _rerun_reject(deck: Deck, j: JobView) -> JobView:
    return deck.reject(j.version or "", j.params.get("reason", ""), _chosen(j))


def _chosen(j: JobView) -> list[str] | None:
    """The evaluations a decision was made on; none named: the one judged on now."""
    return j.params.get("evaluations") or None


def _rerun_deploy(deck: Deck, j: JobView) -> JobView:
    schedule = j.params.get("schedule")
    # Its time zone goes with its schedule: one with none stores the default zone, which the
    # verb refuses on its own.
    zone = j.params.get("timezone") if schedule else None
    return deck.deploy(j.version or "", j.dataset or "", schedule, zone)


def _rerun_retire(deck: Deck, j: JobView) -> JobView:
    return deck.retire(j.deployment or "", j.params.get("reason"))


def _rerun_import(deck: Deck, j: JobView) -> JobView:
    return deck.import_model(
        j.project,
        j.params["model"],
        j.params["source"],
        j.params["format"],
        again=bool(j.params.get("again")),
    )


def _rerun_batch_predict(deck: Deck, j: JobView) -> JobView:
    return deck.predict(j.deployment or "")  # a manual run, even of a scheduled one


def rerun(deck: Deck, job: JobView) -> JobView:
    """Queue a job of the same type with the same inputs (``Deck.rerun``)."""
    return KINDS[JobType(job.type)].rerun(deck, job)


# -- the CLI's summary of a completed job ---------------------------------------------------


def _outputs(job: JobView) -> list[str]:
    return [f"output: {path}" for path in job.outputs]


def _summary_new_version(deck: Deck, job: JobView) -> list[str]:
    lines = []
    if job.version:
        v = deck.version(job.version)
        lines.append(f"version {v.id} ({v.model} v{v.number}, {v.status})")
    return lines + _outputs(job)


def _summary_evaluate(deck: Deck, job: JobView) -> list[str]:
    lines = []
    if job.version:
        v = deck.version(job.version)
        mine = next(
            (m for m in deck.version_detail(v.id).evaluations if m.job_id == job.id),
            None,
        )
        shown = metrics_text(mine.metrics if mine else {})
        lines.append(f"version {v.id} is {v.status}: {shown} on {job.dataset}")
    return lines + _outputs(job)


def _summary_decision(deck: Deck, job: JobView) -> list[str]:
    lines = []
    if job.version:
        word = "approved" if job.type == JobType.approve.value else "rejected"
        seen = next(
            (e.details.get("evaluations") for e in deck.events(job.id) if e.kind == word),
            None,
        )
        for ref in seen or []:
            at = datetime.fromisoformat(ref["at"]) if ref.get("at") else None
            lines.append(
                f"version {job.version} {word} on evaluation {ref.get('job_id')} of "
                f"{ref.get('dataset')} ({local(at)})"
            )
    return lines + _outputs(job)


def _summary_deploy(deck: Deck, job: JobView) -> list[str]:
    lines = []
    if job.deployment:
        dep = deck.deployment(job.deployment)
        unserved = dep.unserved_mark(deck.serving_engine() is not None)
        nxt = f", next run {local(dep.next_run_at)}{unserved}" if dep.next_run_at else ""
        lines.append(f"deployment {dep.id} active{nxt}")
    return lines + _outputs(job)


def _summary_outputs(deck: Deck, job: JobView) -> list[str]:
    return _outputs(job)


def _summary_batch_predict(deck: Deck, job: JobView) -> list[str]:
    return [*_outputs(job), deck.predictions(job.id).summary_text]


# -- the registry ---------------------------------------------------------------------------

_T = JobType

KINDS: dict[JobType, JobKind] = {
    _T.train: JobKind(
        type=_T.train,
        rule=RULES[_T.train],
        params=("hyperparameters", "overrides", "code_fingerprint", "requirements", "columns"),
        check_params=_check_train,
        submit="train",
        rerun=_rerun_train,
        spec=Spec(staging=True, code="repository", entry="training.py:train", builtin=None),
        runner="run_train",
        apply_inline=None,
        apply_result=effects.trained,
        summary=_summary_new_version,
        verb=TuiVerb("models", "t", "train", "Train", "models.train"),
    ),
    _T.evaluate: JobKind(
        type=_T.evaluate,
        rule=RULES[_T.evaluate],
        params=(),
        check_params=_no_check,
        submit="evaluate",
        rerun=_rerun_evaluate,
        spec=Spec(
            staging=False,
            code="version",
            entry="evaluation.py:evaluate",
            builtin="built-in evaluator",
        ),
        runner="run_evaluate",
        apply_inline=None,
        apply_result=effects.evaluated,
        summary=_summary_evaluate,
        verb=TuiVerb("models", "e", "evaluate", "Evaluate", "models.evaluate"),
    ),
    _T.compute_stats: JobKind(
        type=_T.compute_stats,
        rule=RULES[_T.compute_stats],
        params=(),
        check_params=_no_check,
        submit="compute_stats",
        rerun=_rerun_compute_stats,
        spec=Spec(staging=False, code="version", entry=None, builtin="built-in statistics"),
        runner="run_compute_stats",
        apply_inline=None,
        apply_result=effects.stats_computed,
        summary=_summary_outputs,
        verb=TuiVerb("models", "c", "stats", "Stats", "models.stats"),
    ),
    _T.approve: JobKind(
        type=_T.approve,
        rule=RULES[_T.approve],
        params=("reason", "evaluations"),
        check_params=_check_decision("approve"),
        submit="approve",
        rerun=_rerun_approve,
        spec=None,
        runner=None,
        apply_inline=effects.decided,
        apply_result=None,
        summary=_summary_decision,
        verb=TuiVerb("models", "a", "approve", "Approve", "models.approve"),
    ),
    _T.reject: JobKind(
        type=_T.reject,
        rule=RULES[_T.reject],
        params=("reason", "evaluations"),
        check_params=_check_decision("reject"),
        submit="reject",
        rerun=_rerun_reject,
        spec=None,
        runner=None,
        apply_inline=effects.decided,
        apply_result=None,
        summary=_summary_decision,
        verb=TuiVerb("models", "x", "reject", "Reject", "models.reject"),
    ),
    _T.deploy: JobKind(
        type=_T.deploy,
        rule=RULES[_T.deploy],
        params=("schedule", "timezone"),
        check_params=_check_deploy,
        submit="deploy",
        rerun=_rerun_deploy,
        spec=None,
        runner=None,
        apply_inline=effects.deployed,
        apply_result=None,
        summary=_summary_deploy,
        verb=TuiVerb("models", "d", "deploy", "Deploy", "models.deploy"),
    ),
    _T.retire: JobKind(
        type=_T.retire,
        rule=RULES[_T.retire],
        params=("reason",),
        check_params=_check_retire,
        submit="retire",
        rerun=_rerun_retire,
        spec=None,
        runner=None,
        apply_inline=effects.retired,
        apply_result=None,
        summary=_summary_outputs,
        verb=TuiVerb("deployments", "R", "retire", "Retire", "deployments.retire"),
    ),
    _T.import_: JobKind(
        type=_T.import_,
        rule=RULES[_T.import_],
        params=("model", "source", "format", "again"),
        check_params=_check_import,
        submit="import_model",
        rerun=_rerun_import,
        spec=Spec(staging=True, code="none", entry=None, builtin="built-in import"),
        runner="run_import",
        apply_inline=None,
        apply_result=effects.imported,
        summary=_summary_new_version,
        verb=TuiVerb("models", "i", "import", "Import", "models.import"),
    ),
    _T.batch_predict: JobKind(
        type=_T.batch_predict,
        rule=RULES[_T.batch_predict],
        params=("fire_time",),
        check_params=_check_batch_predict,
        submit="predict",
        rerun=_rerun_batch_predict,
        spec=Spec(
            staging=False, code="version", entry="scoring.py:score", builtin="built-in scorer"
        ),
        runner="run_batch_predict",
        apply_inline=None,
        apply_result=effects.predicted,
        summary=_summary_batch_predict,
        verb=TuiVerb("deployments", "r", "run_now", "Run now", "deployments.run"),
    ),
}
