"""The Models tab: one row per model version, and the verbs of a version's lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from core.kinds import KINDS
from core.lifecycle import JobType, Team, refusal
from core.service import Deck
from core.text import printable
from core.views import (
    DatasetView,
    JobBrief,
    JobView,
    MetricsView,
    ModelView,
    VersionView,
    headline_of,
)
from tui.format import metric, status_mark, status_text, when
from tui.modals import (
    DatasetPick,
    DeployForm,
    FormChoices,
    ImportForm,
    ReasonPrompt,
    TrainForm,
    parse_pairs,
)
from tui.widgets import DeckTable, Polled, Row, kind_binding

MODEL_ROW = "model:"  # key prefix of the row of a model that has no version yet

# The keys that run a job on the highlighted version, by action (from the job-kind registry).
VERBS = {
    KINDS[t].verb.action: t
    for t in (
        JobType.evaluate,
        JobType.approve,
        JobType.reject,
        JobType.deploy,
        JobType.compute_stats,
    )
}


# The models, versions and datasets of the project, who is asking and who may decide there.
Models = tuple[list[ModelView], list[VersionView], list[DatasetView], str, Team]


class ModelsPane(Polled[Models], Vertical):
    """Versions of every model of a project; models without versions have one row too."""

    poll_scale = 2.0

    BINDINGS: ClassVar[list[BindingType]] = [
        kind_binding(JobType.train),
        kind_binding(JobType.evaluate),
        kind_binding(JobType.approve),
        kind_binding(JobType.reject),
        kind_binding(JobType.deploy),
        # At 80 columns the footer has no room for these: they are in ``?`` (the keys help).
        kind_binding(JobType.compute_stats, show=False),
        kind_binding(JobType.import_, show=False),
        Binding("j", "last_job", "Last job", show=False, id="models.last_job"),
        Binding("space", "mark", "Mark", show=False, id="models.mark"),
        Binding("equals_sign", "compare", "Compare marked", show=False, id="models.compare"),
    ]

    def __init__(self, project: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.project = project
        self.versions: list[VersionView] = []
        self.models: list[ModelView] = []
        self.datasets: list[DatasetView] = []
        self.marked: list[str] = []  # version ids marked with space, in the order marked
        self._data: Models | None = None
        self.who: str | None = None  # the authenticated user (None until the first fetch)
        self.team: Team | None = None  # who may approve or reject in the project

    def compose(self) -> ComposeResult:
        table = DeckTable(id="models-table")
        # Narrower than all of them (80 columns), the table leaves out when a version was made,
        # then its approval, then its last job: the version's screen shows them.
        for name, drop in (
            ("model", 0),
            ("version", 0),
            ("status", 0),
            ("metric", 0),
            ("last job", 1),
            ("created", 3),
            ("approval", 2),
        ):
            # A headline too long even then is cut at its end (the dataset's name) with "…",
            # and so is a long model name (names may have 200 characters).
            shrink = {"metric": 16, "model": 16}.get(name, 0)
            # A name that long is cut to 40 cells before any column is left out for it.
            first = 40 if name == "model" else 0
            table.add_column(name, key=name, drop=drop, shrink=shrink, first=first)
        yield table
        yield Label("", id="models-hint", classes="window")

    def on_mount(self) -> None:
        self.start_polling()

    def fetch(self, deck: Deck, state: None) -> Models:
        p = self.project
        rules = deck.team.rules(p)
        team = Team(rules.project, tuple(rules.approvers), rules.four_eyes)
        return deck.models(p), deck.versions(p), deck.datasets(p), deck.team.whoami().user, team

    def show(self, data: Models) -> None:
        self._data = data
        self.models, self.versions, self.datasets, self.who, self.team = data
        known = {v.id for v in self.versions}
        self.marked = [m for m in self.marked if m in known]
        styles = self.styles_of_status
        rows: list[Row] = []
        with_versions = {v.model for v in self.versions}
        for m in self.models:
            for v in (v for v in self.versions if v.model == m.name):
                approval = (
                    f"{v.approval.decision} by {v.approval.by}: {v.approval.reason}"
                    if v.approval
                    else "-"
                )
                rows.append(
                    Row(
                        v.id,
                        [
                            v.model,
                            mark_text(v, self.marked),
                            status_text(v.status, styles),
                            headline(v),
                            last_job_text(v, styles),
                            f"{'imported' if v.model_kind == 'byom' else 'trained'} "
                            f"{when(v.created_at)}",
                            approval,
                        ],
                    )
                )
            if m.name not in with_versions:
                # A training that failed says so in the status too: at 80 columns the last
                # job's column is left out, and the row would only say "no versions".
                failed = m.last_job is not None and m.last_job.status == "failed"
                status = last_job_text(m, styles) if failed else Text("no versions")
                rows.append(
                    Row(
                        MODEL_ROW + m.name,
                        [m.name, "-", status, "-", last_job_text(m, styles), "-", "-"],
                    )
                )
        self.query_one(DeckTable).sync(rows)
        self.query_one("#models-hint", Label).update(
            f"{_count(len(self.models), 'model')} · {_count(len(self.versions), 'version')} · "
            + (
                f"{len(self.marked)} marked · = compare · space unmark"
                if self.marked
                else "enter: details · t train · e evaluate · a/x approve/reject · d deploy"
            )
        )
        self.screen.refresh_bindings()

    # -- the highlighted row --------------------------------------------------------------

    @property
    def current(self) -> VersionView | None:
        key = self.query_one(DeckTable).current_key
        return next((v for v in self.versions if v.id == key), None)

    @property
    def current_model(self) -> str | None:
        key = self.query_one(DeckTable).current_key
        if key is None:
            return None
        if key.startswith(MODEL_ROW):
            return key[len(MODEL_ROW) :]
        v = self.current
        return v.model if v else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.screen.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        v = self.current
        if v is not None:
            self.deck_app.open_version(v.id)
        elif (model := self.current_model) is not None:
            self.notify(f"{model} has no versions yet: t trains one", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.refusal(action) else True  # None: dimmed in the footer

    def refusal(self, action: str) -> str | None:
        """Why the key of ``action`` does nothing now (it is dimmed, and a press says this),
        or None when it may run; the lifecycle table says it for the verbs of a version
        (with who may approve or reject in the project)."""
        if action in VERBS:
            v = self.current
            if v is None:
                return f"{action}: no version on this row (train or import one first)"
            reason = self._refusal_on(VERBS[action], v)
            return f"{v.label}: {reason}" if reason else None
        if action == "train" and not any(m.kind == "code" for m in self.models):
            return "train: this project has no code model (a folder under models/)"
        if action == "last_job" and self._last_job() is None:
            return "no job yet on this row"
        if action == "mark" and self.current is None:
            return "mark: no version on this row"
        if action == "compare" and len(self.marked) < 2:
            return f"compare: mark two versions or more with space ({len(self.marked)} marked)"
        return None

    # -- marks and compare ----------------------------------------------------------------

    def action_mark(self) -> None:
        """Mark the highlighted version for comparing (space again unmarks it)."""
        v = self.current
        if v is None:
            return
        if v.id in self.marked:
            self.marked.remove(v.id)
        else:
            self.marked.append(v.id)
        if self._data is not None:
            self.show(self._data)

    def action_compare(self) -> None:
        if len(self.marked) >= 2:
            self.deck_app.open_compare(list(self.marked))

    def _refusal_on(self, job_type: JobType, v: VersionView) -> str | None:
        """Why a ``job_type`` job on ``v`` would be refused, as the service decides it."""
        return refusal(
            job_type,
            v.status,
            version=v.id,
            who=self.who,
            team=self.team,
            made_by=v.made_by,
            imported=v.model_kind == "byom",
        )

    # -- verbs ----------------------------------------------------------------------------

    def _queued(self, job: JobView) -> None:
        self.notify(f"queued {job.type} job {job.short_id} ({job.target})")
        self.poll(force=True)

    def action_train(self) -> None:
        deck = self.deck
        project = self.project
        code_models = [m.name for m in self.models if m.kind == "code"]

        def submit(values: dict[str, Any]) -> JobView:
            model = values["model"]
            defaults = deck.model_defaults(project, model)
            given = parse_pairs(values.get("hyperparameters") or "")
            overrides = {k: v for k, v in given.items() if defaults.get(k, object()) != v}
            return deck.train(project, model, values["dataset"], overrides)

        def choices(model: str) -> FormChoices:
            return FormChoices(
                deck.training_datasets(project),
                deck.last_choice(project, model, JobType.train).dataset,
                defaults=deck.model_defaults(project, model),
                model=model,
            )

        def started(job: JobView | None) -> None:
            if job is not None:
                self._queued(job)
                self.deck_app.open_job(job.id)  # watch it train

        self.app.push_screen(TrainForm(code_models, self.current_model, choices, submit), started)

    def _after(self, job: JobView | None) -> None:
        if job is not None:
            self._queued(job)

    def _choices(self, v: VersionView, job_type: JobType) -> Callable[[], FormChoices]:
        """What a form on the version offers: the datasets that fit it for ``job_type`` and
        the model's last choice (called on a thread by the form)."""
        deck, project = self.deck, self.project

        def choices() -> FormChoices:
            last = deck.last_choice(project, v.model, job_type)
            return FormChoices(deck.fitting_datasets(v.id, job_type), last.dataset, last.timezone)

        return choices

    def _version_dataset_job(self, verb: str, run: Any, job_type: JobType, prefer: str) -> None:
        v = self.current
        if v is None:
            return
        self.app.push_screen(
            DatasetPick(
                f"{verb.capitalize()} {v.label}",
                verb.capitalize(),
                prefer,
                self._choices(v, job_type),
                lambda values: run(v.id, values["dataset"]),
            ),
            self._after,
        )

    def action_evaluate(self) -> None:
        deck = self.deck
        self._version_dataset_job("evaluate", deck.evaluate, JobType.evaluate, "test")

    def action_stats(self) -> None:
        deck = self.deck
        self._version_dataset_job(
            "compute statistics", deck.compute_stats, JobType.compute_stats, "train"
        )

    def _last_job(self) -> JobBrief | None:
        """The highlighted version's last job; on the row of a model without versions, the
        model's (a training that failed)."""
        v = self.current
        if v is not None:
            return v.last_job
        name = self.current_model
        return next((m.last_job for m in self.models if m.name == name), None)

    def action_last_job(self) -> None:
        job = self._last_job()
        if job is not None:
            self.deck_app.open_job(job.id)

    def _decide(self, verb: str) -> None:
        v = self.current
        if v is None:
            return
        deck = self.deck
        run = deck.approve if verb == "approve" else deck.reject

        def read() -> tuple[list[MetricsView], MetricsView | None]:
            # On a thread: the database may be busy, and the Deck may settle jobs first.
            return deck.version_detail(v.id).evaluations, deck.evaluation(v.id)

        def submit(values: dict[str, Any]) -> JobView:
            chosen = values.get("evaluation")
            return run(v.id, values["reason"], [chosen] if chosen else None)

        def ask(found: tuple[list[MetricsView], MetricsView | None]) -> None:
            evaluations, judged = found
            self.app.push_screen(
                ReasonPrompt(
                    f"{verb.capitalize()} {v.label}",
                    submit,
                    [
                        (evaluation_label(e, metric_name=v.metric), e.job_id or "")
                        for e in evaluations
                    ],
                    judged.job_id if judged else None,
                ),
                self._after,
            )

        self.load("models.decide", read, ask)

    def action_approve(self) -> None:
        self._decide("approve")

    def action_reject(self) -> None:
        self._decide("reject")

    def action_deploy(self) -> None:
        v = self.current
        if v is None:
            return
        deck = self.deck

        def submit(values: dict[str, Any]) -> JobView:
            schedule = (values.get("schedule") or "").strip() or None
            tz = (values.get("timezone") or "").strip() or None
            return deck.deploy(v.id, values["dataset"], schedule, tz if schedule else None)

        self.app.push_screen(
            DeployForm(
                v.label,
                self._choices(v, JobType.deploy),
                lambda expr, tz: deck.preview_schedule(expr, tz, 5),
                submit,
            ),
            self._after,
        )

    def action_import(self) -> None:
        deck = self.deck
        project = self.project

        def submit(values: dict[str, Any]) -> JobView:
            fmt = values.get("format")
            return deck.import_model(
                project,
                values.get("model") or "",
                values.get("source") or "",
                None if fmt in (None, "auto") else fmt,
            )

        self.app.push_screen(ImportForm(submit), self._after)

    def palette_commands(self) -> list[tuple[str, str, object]]:
        out: list[tuple[str, str, object]] = []
        for v in self.versions:
            for job_type, verb in ((JobType.approve, "approve"), (JobType.reject, "reject")):
                if self._refusal_on(job_type, v) is None:
                    out.append(
                        (
                            f"{verb.capitalize()} {v.label}",
                            f"{v.id} is evaluated",
                            lambda v=v, verb=verb: self._palette(v, verb),
                        )
                    )
        return out

    def _palette(self, v: VersionView, verb: str) -> None:
        table = self.query_one(DeckTable)
        if v.id in table.rows:
            table.move_cursor(row=table.get_row_index(v.id))
        self._decide(verb)


def mark_text(v: VersionView, marked: list[str]) -> Text:
    """``v3``, or ``● v3`` for a version marked for comparing (a mark that reads without
    colour)."""
    if v.id not in marked:
        return Text(f"v{v.number}")
    return Text.assemble(("● ", "bold"), f"v{v.number}")


def headline(v: VersionView) -> Text:
    """The headline metric and the dataset it was measured on: ``accuracy 0.9722 on test``."""
    head = v.headline_metric()
    if not head:
        return Text("-")
    on = v.metrics_from.dataset if v.metrics_from else None
    text = Text(f"{printable(head[0])} {metric(head[1])}")
    if on:
        text.append(f" on {printable(on)}", style="dim")
    return text


def last_job_text(v: VersionView | ModelView, styles: dict[str, str]) -> Text:
    """The last job of a version (or model); a failed one says so, with the key to open it."""
    j = v.last_job
    if j is None:
        return Text("-")
    text = Text(f"{j.type} ")
    text.append_text(status_mark(j.status, styles))
    if j.status == "failed":
        text.append(" (j: open)", style="dim")
    return text


def evaluation_label(e: MetricsView, metric_name: str | None = None) -> Text:
    """How the approve/reject dialog names an evaluation: its job, dataset and numbers."""
    head = headline_of(e.metrics, metric_name)  # the rule of the Models tab's metric column
    text = Text(f"{(e.job_id or '-')[:10]} on {printable(e.dataset or '-')}")
    if e.training:
        text.append(" (training data)")
    if head is not None:
        text.append(f": {printable(head[0])} {metric(head[1])}")
    return text


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"
