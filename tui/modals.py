"""Dialogs: confirmations, reasons, forms and the keys help. Each answers with ``dismiss``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, OptionList, Select, Static

from core.errors import ModelDeckError
from tui.format import literal
from tui.widgets import Background


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no: ``y`` or ``enter`` answers yes, ``n`` or ``escape`` no.

    The question itself is the safeguard: it is only asked after a deliberate key (``s``,
    ``S``, ``R``), and it names what would be stopped or retired.
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
            yield Static(literal(self.question), classes="question")
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
    """A dialog of fields; ``submit`` runs on a thread, and its refusal keeps the form open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
        Binding("ctrl+s", "submit", "Submit", id="form.submit"),
    ]
    TITLE_TEXT = ""
    OK_LABEL = "OK"

    def __init__(self, submit: Callable[[dict[str, Any]], Any]) -> None:
        super().__init__()
        self._submit = submit

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog form"):
            yield Label(literal(self.TITLE_TEXT), classes="title")
            yield from self.fields()
            yield Static("", id="form-error", classes="error")
            yield Label(
                f"enter: {self.OK_LABEL.lower()} · tab: next field · esc: cancel", classes="hint"
            )

    def on_mount(self) -> None:
        first = self.first_focus()
        if first is not None:
            first.focus()

    def first_focus(self) -> Any:
        """The field the cursor starts in: the first text field (enter then submits)."""
        inputs = self.query(Input)
        return inputs.first() if inputs else None

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
        self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        values = self.values()
        problem = self.check(values)
        if problem:
            self.show_error(problem)
            return
        self.show_error("")
        self.load(
            "form.submit",
            lambda: self._submit(values),
            self.dismiss,
            on_error=lambda exc: self.show_error(str(exc)),
        )

    def show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(literal(message, newlines=True))


def _field(label: str, widget: Any) -> Iterable[Any]:
    yield Label(label, classes="field-label")
    yield widget


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
        yield from _field("Reason (required)", Input(compact=True, id="reason", placeholder="why?"))
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


class ProjectForm(Form):
    TITLE_TEXT = "New project"
    OK_LABEL = "Add"

    def fields(self) -> Iterable[Any]:
        yield from _field("Name", Input(compact=True, id="name", placeholder="e.g. churn"))
        yield from _field(
            "Repository folder (holds models/<name>/training.py)",
            Input(compact=True, id="repo", placeholder="/path/to/repo"),
        )


class DatasetForm(Form):
    TITLE_TEXT = "Register a dataset"
    OK_LABEL = "Register"

    def fields(self) -> Iterable[Any]:
        yield from _field("Name", Input(compact=True, id="name", placeholder="e.g. train"))
        yield from _field(
            "File (.csv or .parquet)", Input(compact=True, id="path", placeholder="/path/data.csv")
        )
        yield from _field("Target column (optional)", Input(compact=True, id="target"))


def _options(names: Sequence[str]) -> list[tuple[Text, str]]:
    return [(literal(n), n) for n in names]


def _dataset_select(names: Sequence[str], prefer: str) -> Select[str]:
    """A dataset picker starting on the first name containing ``prefer`` (else the first)."""
    value = next((n for n in names if prefer in n), None) or (names[0] if names else Select.BLANK)
    return Select(compact=True, options=_options(names), value=value, id="dataset")


class TrainForm(Form):
    """Train a model: which model, which dataset, hyperparameters as ``key=value`` pairs."""

    TITLE_TEXT = "Train"
    OK_LABEL = "Train"

    def __init__(
        self,
        models: Sequence[str],
        model: str | None,
        datasets: Sequence[str],
        defaults: Callable[[str], dict[str, Any]],
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:
        super().__init__(submit)
        self.models = list(models)
        self.model = model if model in models else (models[0] if models else None)
        self.datasets = list(datasets)
        self.defaults = defaults

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
        yield from _field("Dataset", _dataset_select(self.datasets, prefer="train"))
        yield from _field(
            "Hyperparameters (key=value, space separated; JSON values)",
            Input(compact=True, id="hyperparameters"),
        )

    def on_mount(self) -> None:
        super().on_mount()
        if self.model:
            self._fill(self.model)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "model" and isinstance(event.value, str):
            self._fill(event.value)

    def _fill(self, model: str) -> None:
        try:
            hp = self.defaults(model)
        except ModelDeckError as exc:
            self.show_error(str(exc))
            return
        self.query_one("#hyperparameters", Input).value = pairs(hp)

    def check(self, values: dict[str, Any]) -> str | None:
        if not values.get("model"):
            return "pick a model"
        if not values.get("dataset"):
            return "pick a dataset"
        return None


def pairs(mapping: dict[str, Any]) -> str:
    import json

    return " ".join(f"{k}={json.dumps(v)}" for k, v in mapping.items())


class DatasetPick(Form):
    """Pick a dataset for an evaluation or a statistics run: arrows, then enter."""

    def __init__(
        self,
        title: str,
        ok: str,
        datasets: Sequence[str],
        prefer: str,
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:
        super().__init__(submit)
        self.TITLE_TEXT = title
        self.OK_LABEL = ok
        self.datasets = list(datasets)
        self.prefer = prefer

    def fields(self) -> Iterable[Any]:
        yield Label("Dataset", classes="field-label")
        yield OptionList(*(literal(d) for d in self.datasets), id="dataset", classes="pick")

    def first_focus(self) -> Any:
        picker = self.query_one("#dataset", OptionList)
        preferred = next((i for i, d in enumerate(self.datasets) if self.prefer in d), 0)
        if self.datasets:
            picker.highlighted = preferred
        return picker

    def values(self) -> dict[str, Any]:
        picker = self.query_one("#dataset", OptionList)
        i = picker.highlighted
        return {"dataset": self.datasets[i] if i is not None and self.datasets else None}

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_submit()

    def check(self, values: dict[str, Any]) -> str | None:
        return None if values.get("dataset") else "no dataset to pick: register one first"


class DeployForm(Form):
    """Deploy: the dataset to score, an optional cron schedule, its time zone, a preview."""

    OK_LABEL = "Deploy"

    def __init__(
        self,
        label: str,
        datasets: Sequence[str],
        preview: Callable[[str, str], list[Any]],
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:
        super().__init__(submit)
        self.TITLE_TEXT = f"Deploy {label}"
        self.datasets = list(datasets)
        self.preview = preview

    def fields(self) -> Iterable[Any]:
        yield from _field("Dataset to score", _dataset_select(self.datasets, prefer="score"))
        yield from _field(
            "Schedule (cron, empty: run on demand only)",
            Input(compact=True, id="schedule", placeholder="e.g. 0 6 * * 1-5"),
        )
        yield from _field("Time zone", Input("UTC", compact=True, id="timezone"))
        yield Static("", id="preview", classes="preview")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("schedule", "timezone"):
            self._update_preview()

    def _update_preview(self) -> None:
        expr = self.query_one("#schedule", Input).value.strip()
        tz = self.query_one("#timezone", Input).value.strip() or "UTC"
        box = self.query_one("#preview", Static)
        if not expr:
            box.update("no schedule: run it now with r on the Deployments tab")
            box.remove_class("invalid")
            return
        try:
            times = self.preview(expr, tz)
        except ModelDeckError as exc:
            box.update(literal(str(exc)))
            box.add_class("invalid")
            return
        from core.schedule import zone

        box.remove_class("invalid")
        lines = ["next runs:"] + [
            f"  {t.astimezone(zone(tz)).strftime('%a %Y-%m-%d %H:%M %Z')}" for t in times
        ]
        box.update(literal("\n".join(lines), newlines=True))

    def on_mount(self) -> None:
        super().on_mount()
        self._update_preview()

    def check(self, values: dict[str, Any]) -> str | None:
        if not values.get("dataset"):
            return "pick a dataset"
        if self.query_one("#preview").has_class("invalid"):
            return "fix the schedule first (see the message above)"
        return None


class ImportForm(Form):
    TITLE_TEXT = "Import a model file (BYOM)"
    OK_LABEL = "Import"

    def fields(self) -> Iterable[Any]:
        yield from _field(
            "Model name", Input(compact=True, id="model", placeholder="e.g. legacy-clf")
        )
        yield from _field(
            "File path or http(s) URL",
            Input(compact=True, id="source", placeholder="/path/model.joblib"),
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


class HelpScreen(ModalScreen[None]):
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
        for key, active in self.under.active_bindings.items():
            b = active.binding
            if not b.description or (b.action, b.description) in seen:
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


__all__ = [
    "ConfirmDialog",
    "DatasetForm",
    "DatasetPick",
    "DeployForm",
    "Form",
    "HelpScreen",
    "ImportForm",
    "ProjectForm",
    "QuitDialog",
    "ReasonPrompt",
    "TrainForm",
]
