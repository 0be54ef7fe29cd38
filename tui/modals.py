"""Dialogs: confirmations, reasons, forms and the keys help. Each answers with ``dismiss``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, OptionList, Select, Static

from core.errors import ModelDeckError
from tui.format import fit_label, literal
from tui.widgets import Background, DeckNode, Fitted


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no: ``y`` or ``enter`` answers yes, ``n`` or ``escape`` no.

    The question itself is the safeguard: it is only asked after a deliberate key (``s``,
    ``S``), and it names what would be stopped.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "No", show=False, id="confirm.escape"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(literal(self.question))
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class QuitDialog(ModalScreen[str | None]):
    """Quitting with jobs running: keep them (the default), stop them, or stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "answer('keep')", "Keep running", id="quit.keep"),
        Binding("s", "answer('stop')", "Stop & quit", id="quit.stop"),
        Binding("escape", "answer(None)", "Stay", id="quit.stay"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        n = self.running
        with Vertical(classes="dialog"):
            yield Static(
                f"{n} job{'s are' if n != 1 else ' is'} still running.\n\n"
                "Keep running: the jobs go on as their own processes; the next engine "
                "(the TUI or `modeldeck engine`) records how they end.\n"
                "Stop: ask them to stop, then quit.\n\n"
                "Schedules fire only while an engine runs: run `modeldeck engine` to keep "
                "them firing after you quit.",
                classes="question",
            )
            with Horizontal(classes="buttons"):
                yield Button("Keep running (k)", id="keep", variant="primary")
                yield Button("Stop & quit (s)", id="stop", variant="error")
                yield Button("Stay (esc)", id="stay")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)


class Form(Background, ModalScreen[Any]):
    """A dialog of fields; ``submit`` runs on a thread, and its refusal keeps the form open.

    Only ``ctrl+s`` (or the OK button) submits: ``enter`` in a field moves to the next
    field, so no key meant for a field launches a job. The cursor starts in the first
    field; the focused field is marked with ``>`` (visible without colour). ``prepare``,
    when given, runs on a thread on opening and its result goes to ``prepared``.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
        Binding("ctrl+s", "submit", "Submit", id="form.submit"),
    ]
    TITLE_TEXT = ""
    OK_LABEL = "OK"

    def __init__(
        self,
        submit: Callable[[dict[str, Any]], Any],
        prepare: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__()
        self._submit = submit
        self._prepare = prepare
        self._refused = False  # the error shown is a submit's refusal: gone on the next edit

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog form"):
            # "Approve <a long model name> v3": cut before the version's number
            yield Fitted(self.TITLE_TEXT, fit_label, classes="title")
            yield from self.fields()
            error = Static("", id="form-error", classes="error")
            error.display = False  # until there is an error to show
            yield error
            with Horizontal(classes="form-keys"):
                yield Label("ctrl+s: submit · enter: next · esc: cancel", classes="hint")
                yield Button(self.OK_LABEL, id="ok", compact=True, variant="primary")

    def on_mount(self) -> None:
        first = self.first_focus()
        if first is not None:
            first.focus()
        if self._prepare is not None:
            self.load("form.prepare", self._prepare, self.prepared, on_error=self._failed)

    def prepared(self, data: Any) -> None:
        """The result of ``prepare``: fill the fields with it."""

    def _failed(self, exc: Exception) -> None:
        self.show_error(str(exc))

    def first_focus(self) -> Any:
        """The field the cursor starts in: the first field of the form."""
        found = self.query(".field-row > *").exclude(".marker")
        return found.first() if found else None

    def fields(self) -> Iterable[Any]:
        return ()

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for widget in self.query("Input, Select"):
            if widget.id:
                value = widget.value  # type: ignore[attr-defined]
                out[widget.id] = None if value is Select.BLANK else value
        return out

    def check(self, values: dict[str, Any]) -> str | None:
        """A message when the values cannot be submitted (checked before ``submit``)."""
        return None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._forget_refusal()

    def on_select_changed(self, _event: Select.Changed) -> None:
        self._forget_refusal()

    def _forget_refusal(self) -> None:
        """A field changed: the last submit's refusal no longer says what is wrong (it did,
        under a preview that said otherwise); what ``prepare`` said stays."""
        if self._refused:
            self._refused = False
            self.show_error("")

    def _refuse(self, message: str) -> None:
        self.show_error(message)
        self._refused = True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        values = self.values()
        problem = self.check(values)
        if problem:
            self._refuse(problem)
            return
        self.show_error("")
        self.load(
            "form.submit",
            lambda: self._submit(values),
            self.dismiss,
            on_error=lambda exc: self._refuse(str(exc)),
        )

    def show_error(self, message: str) -> None:
        box = self.query_one("#form-error", Static)
        box.update(literal(message, newlines=True))
        box.display = bool(message)


def _field(label: str, widget: Any) -> Iterable[Any]:
    """A labelled field; ``>`` marks it while the cursor is in it (a mark, not a colour)."""
    yield Vertical(
        Label(label, classes="field-label"),
        Horizontal(Static(">", classes="marker"), widget, classes="field-row"),
        classes="field",
    )


class _Field(Input):
    """A text field that keeps its text on focus: tabbing in puts the cursor at its end
    instead of selecting it all (a typed space would replace ``Europe/Berlin``). The field
    does it itself as it gains focus, not the form after it (when keys typed meanwhile had
    gone in ahead of the text)."""

    def _on_focus(self, event: events.Focus) -> None:
        self.cursor_position = len(self.value)
        super()._on_focus(event)


def _input(value: str = "", **kw: Any) -> Input:
    return _Field(value, compact=True, select_on_focus=False, **kw)


class ReasonPrompt(Form):
    """Ask for the reason of an approval or a rejection; an empty reason is refused.

    ``evaluations`` are the (label, job id) of the evaluations the decision may be made on;
    the dialog shows which one it refers to (``chosen``, the one the version is judged on)
    and lets the user pick another."""

    def __init__(
        self,
        title: str,
        submit: Callable[[dict[str, Any]], Any],
        evaluations: Sequence[tuple[Text, str]] = (),
        chosen: str | None = None,
    ) -> None:
        super().__init__(submit)
        self.TITLE_TEXT = title
        self.OK_LABEL = title.split()[0]
        self.evaluations = list(evaluations)
        ids = [job for _, job in self.evaluations]
        self.chosen = chosen if chosen in ids else (ids[-1] if ids else None)

    def fields(self) -> Iterable[Any]:
        yield from _field("Reason (required)", _input(id="reason", placeholder="why?"))
        if self.evaluations:
            yield from _field(
                "On evaluation",
                Select(
                    self.evaluations,
                    compact=True,
                    allow_blank=False,
                    value=self.chosen,
                    id="evaluation",
                ),
            )
        else:
            yield Static(Text("on no evaluation: none recorded", style="dim"))

    def check(self, values: dict[str, Any]) -> str | None:
        return None if (values.get("reason") or "").strip() else "a reason is required"


class RetirePrompt(Form):
    """Retire a deployment: the question names it and what stops; the reason is optional
    (as ``retire --reason`` is) and kept on the deployment and in its events."""

    OK_LABEL = "Retire"

    def __init__(self, question: str, submit: Callable[[dict[str, Any]], Any]) -> None:
        super().__init__(submit)
        self.TITLE_TEXT = "Retire a deployment"
        self.question = question

    def fields(self) -> Iterable[Any]:
        yield Static(literal(self.question, newlines=True))
        yield from _field("Reason (optional)", _input(id="reason", placeholder="why?"))


class ProjectForm(Form):
    TITLE_TEXT = "New project"
    OK_LABEL = "Add"

    def fields(self) -> Iterable[Any]:
        yield from _field("Name", _input(id="name", placeholder="e.g. churn"))
        yield from _field(
            "Repository folder (holds models/<name>/training.py)",
            _input(id="repo", placeholder="/path/to/repo"),
        )


class DatasetForm(Form):
    TITLE_TEXT = "Register a dataset"
    OK_LABEL = "Register"

    def fields(self) -> Iterable[Any]:
        yield from _field("Name", _input(id="name", placeholder="e.g. train"))
        yield from _field(
            "File (.csv or .parquet)", _input(id="path", placeholder="/path/data.csv")
        )
        yield from _field("Target column (optional)", _input(id="target"))


def _options(names: Sequence[str]) -> list[tuple[Text, str]]:
    return [(literal(n), n) for n in names]


def default_dataset(names: Sequence[str], last: str | None, prefer: str) -> str | None:
    """The dataset a form starts on: the one chosen last time (when it is still offered),
    else the first whose name contains ``prefer``, else the first."""
    if last in names:
        return last
    return next((n for n in names if prefer in n), None) or (names[0] if names else None)


def _fill_datasets(select: Select[str], names: Sequence[str], chosen: str | None) -> None:
    select.set_options(_options(names))
    if chosen is not None:
        select.value = chosen


class FormChoices:
    """What a form offers and starts on, loaded when it opens (see ``Form.prepare``)."""

    def __init__(
        self,
        datasets: Sequence[str],
        last_dataset: str | None = None,
        timezone: str | None = None,
        defaults: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> None:
        self.datasets = list(datasets)
        self.last_dataset = last_dataset
        self.timezone = timezone
        self.defaults = defaults
        self.model = model


NO_DATASET = "no dataset fits: register one on the Datasets tab (4, then n)"


class TrainForm(Form):
    """Train a model: which model, which dataset (those with a target column; the one its
    last training used first), hyperparameters as ``key=value`` pairs."""

    TITLE_TEXT = "Train"
    OK_LABEL = "Train"

    def __init__(
        self,
        models: Sequence[str],
        model: str | None,
        choices: Callable[[str], FormChoices],
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:
        super().__init__(submit)
        self.models = list(models)
        self.model = model if model in models else (models[0] if models else None)
        self.choices = choices
        self._filled: str | None = None

    def fields(self) -> Iterable[Any]:
        yield from _field(
            "Model",
            Select(
                compact=True,
                options=_options(self.models),
                value=self.model or Select.BLANK,
                id="model",
            ),
        )
        yield from _field("Dataset (with a target column)", Select([], compact=True, id="dataset"))
        yield from _field(
            "Hyperparameters (key=value, space separated; JSON values)",
            _input(id="hyperparameters"),
        )

    def on_mount(self) -> None:
        super().on_mount()
        if self.model:
            self._fill(self.model)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "model" and isinstance(event.value, str):
            self._fill(event.value)

    def _fill(self, model: str) -> None:
        if model == self._filled:
            return
        self._filled = model
        self.load(
            f"form.fill.{model}",
            lambda: self.choices(model),
            self._filled_in,
            if_idle=False,
            on_error=self._failed,
        )

    def _filled_in(self, got: FormChoices) -> None:
        if got.model != self._filled:
            return  # another model was picked meanwhile
        self.show_error("" if got.datasets else NO_DATASET)
        chosen = default_dataset(got.datasets, got.last_dataset, "train")
        _fill_datasets(self.query_one("#dataset", Select), got.datasets, chosen)
        self.query_one("#hyperparameters", Input).value = pairs(got.defaults or {})

    def check(self, values: dict[str, Any]) -> str | None:
        if not values.get("model"):
            return "pick a model"
        if not values.get("dataset"):
            return "pick a dataset"
        return None


def pairs(mapping: dict[str, Any]) -> str:
    """Hyperparameters as the form shows them: ``key=value`` with the value as compact JSON,
    quoted as a shell would where it holds a space or a quote (:func:`parse_pairs` reads it
    back to the same values)."""
    import json
    import shlex

    return " ".join(
        f"{k}={shlex.quote(json.dumps(v, separators=(',', ':')))}" for k, v in mapping.items()
    )


def parse_pairs(text: str) -> dict[str, Any]:
    """What was typed in a hyperparameters field: ``key=value`` pairs split as a shell splits
    words, so ``note="a b"`` is one pair; values parsed as ``--set`` parses them."""
    import shlex

    from core.service import parse_overrides

    try:
        words = shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise ModelDeckError(f"hyperparameters: {exc}") from None
    return parse_overrides(words, field="hyperparameter")


class DatasetPick(Form):
    """Pick a dataset for an evaluation or a statistics run: the datasets that fit the
    version, starting on the one used last time for the model."""

    def __init__(
        self,
        title: str,
        ok: str,
        prefer: str,
        choices: Callable[[], FormChoices],
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:
        super().__init__(submit, prepare=choices)
        self.TITLE_TEXT = title
        self.OK_LABEL = ok
        self.datasets: list[str] = []
        self.prefer = prefer

    def fields(self) -> Iterable[Any]:
        yield from _field(
            "Dataset (those that fit the version)", OptionList(id="dataset", classes="pick")
        )

    def prepared(self, data: FormChoices) -> None:
        self.datasets = data.datasets
        picker = self.query_one("#dataset", OptionList)
        picker.clear_options()
        picker.add_options([literal(d) for d in self.datasets])
        chosen = default_dataset(self.datasets, data.last_dataset, self.prefer)
        if chosen is not None:
            picker.highlighted = self.datasets.index(chosen)
        self.show_error("" if self.datasets else NO_DATASET)

    def values(self) -> dict[str, Any]:
        picker = self.query_one("#dataset", OptionList)
        i = picker.highlighted
        return {"dataset": self.datasets[i] if i is not None and self.datasets else None}

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.focus_next()

    def check(self, values: dict[str, Any]) -> str | None:
        return None if values.get("dataset") else NO_DATASET


class DeployForm(Form):
    """Deploy: the dataset to score, an optional cron schedule, its time zone, a preview.

    The dataset and the zone start on those of the model's last deploy. A zone that is
    not an IANA name is refused here, said in the preview, never replaced by UTC."""

    OK_LABEL = "Deploy"

    def __init__(
        self,
        label: str,
        choices: Callable[[], FormChoices],
        preview: Callable[[str, str], list[Any]],
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:
        super().__init__(submit, prepare=choices)
        self.TITLE_TEXT = f"Deploy {label}"
        self.preview = preview
        self._problem: str | None = None

    def fields(self) -> Iterable[Any]:
        yield from _field(
            "Dataset to score (those that fit the version)", Select([], compact=True, id="dataset")
        )
        yield from _field(
            "Schedule (cron, empty: run on demand only)",
            _input(id="schedule", placeholder="e.g. 0 6 * * 1-5"),
        )
        yield from _field("Time zone (IANA name, e.g. Europe/Berlin)", _input("UTC", id="timezone"))
        yield Static("", id="preview", classes="preview")

    def prepared(self, data: FormChoices) -> None:
        chosen = default_dataset(data.datasets, data.last_dataset, "score")
        _fill_datasets(self.query_one("#dataset", Select), data.datasets, chosen)
        zone = self.query_one("#timezone", Input)
        if data.timezone and zone.value == "UTC":  # not when the user typed one meanwhile
            zone.value = data.timezone
        self.show_error("" if data.datasets else NO_DATASET)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("schedule", "timezone"):
            self._update_preview()

    def _update_preview(self) -> None:
        from core.schedule import zone

        expr = self.query_one("#schedule", Input).value.strip()
        tz = self.query_one("#timezone", Input).value.strip()
        box = self.query_one("#preview", Static)
        try:
            if not tz:
                raise ModelDeckError(
                    "no time zone: enter an IANA name such as Europe/Berlin or UTC"
                )
            where = zone(tz)
            times = self.preview(expr, tz) if expr else []
        except ModelDeckError as exc:
            self._problem = str(exc)
            box.update(literal(self._problem))
            box.add_class("invalid")
            return
        self._problem = None
        box.remove_class("invalid")
        if not expr:
            box.update("no schedule: run it now with r on the Deployments tab")
            return
        lines = [f"next runs ({tz}):"] + [
            f"  {t.astimezone(where).strftime('%a %Y-%m-%d %H:%M %Z')}" for t in times
        ]
        box.update(literal("\n".join(lines), newlines=True))

    def on_mount(self) -> None:
        super().on_mount()
        self._update_preview()

    def check(self, values: dict[str, Any]) -> str | None:
        if self._problem:
            return f"refused: {self._problem}"
        if not values.get("dataset"):
            return "pick a dataset"
        return None


class ImportForm(Form):
    TITLE_TEXT = "Import a model file (BYOM)"
    OK_LABEL = "Import"

    def fields(self) -> Iterable[Any]:
        yield from _field("Model name", _input(id="model", placeholder="e.g. legacy-clf"))
        yield from _field(
            "File path or http(s) URL",
            _input(id="source", placeholder="/path/model.joblib"),
        )
        yield from _field(
            "Format",
            Select(
                compact=True,
                options=[
                    ("from the file name", "auto"),
                    ("joblib", "joblib"),
                    ("pickle", "pickle"),
                    ("onnx", "onnx"),
                ],
                value="auto",
                id="format",
                allow_blank=False,
            ),
        )


class HelpScreen(DeckNode, ModalScreen[None]):
    """The keys of the screen underneath, as the footer would show them, and what is dimmed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        rows: list[Text] = []
        seen: set[str] = set()
        bindings = self.under.active_bindings
        # A key the footer shows is listed rather than a hidden twin (q, not ctrl+q, for Quit).
        footer = {
            (a.binding.action, a.binding.description) for a in bindings.values() if a.binding.show
        }
        for key, active in bindings.items():
            b = active.binding
            if not b.description or (b.action, b.description) in seen:
                continue
            if not b.show and (b.action, b.description) in footer:
                continue
            # modeldeck's own keys (they all have ids), not the widgets' cursor keys
            if not b.id or b.id.startswith("help."):
                continue
            seen.add((b.action, b.description))  # type: ignore[arg-type]
            shown = b.key_display or self.app.get_key_display(b)
            line = Text.assemble((f"{shown:>10}", "bold"), "  ", b.description)
            if not active.enabled:
                line.append("  (not now)", style="dim")
            rows.append(line)
            del key
        rows.append(Text.assemble((f"{'ctrl+p':>10}", "bold"), "  ", "Command palette"))
        body = Text("\n").join(rows)
        with VerticalScroll(classes="dialog help"):
            yield Label(f"Keys — {self.under.title or self.under.__class__.__name__}")
            yield Static(body)
            yield Label("escape closes", classes="hint")

    def on_mount(self) -> None:
        # No toasts of its own: Textual draws them over the dialog (ModelDeckApp.notify
        # holds those raised meanwhile); those of the screen underneath stay under it.
        for rack in self.query("#textual-toastrack"):
            rack.remove()

    def on_unmount(self) -> None:
        # However it leaves (dismissed, popped, switched for another screen), once.
        self.deck_app.release_held_toasts()


__all__ = [
    "ConfirmDialog",
    "DatasetForm",
    "DatasetPick",
    "DeployForm",
    "Form",
    "FormChoices",
    "HelpScreen",
    "ImportForm",
    "ProjectForm",
    "QuitDialog",
    "ReasonPrompt",
    "RetirePrompt",
    "TrainForm",
]
