"""The modeldeck terminal UI: an App hosting the in-process engine and the screens."""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive

from core.engine import Engine
from core.errors import ModelDeckError
from core.home import writable
from core.service import Deck
from core.text import printable
from core.views import DeploymentEventView, DeploymentView, EventView, JobView
from tui.commands import DeckCommands
from tui.format import resolve_styles
from tui.widgets import Background

log = logging.getLogger("modeldeck.tui")


class Warned(Message):
    """A warning of the Deck (a model folder skipped, ...), posted from any thread."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


ENGINE_POLL = 0.5


class ModelDeckApp(Background, App[int]):
    """Projects, jobs, logs and approvals, driven from the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "modeldeck"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {DeckCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Keys", id="app.help"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.palette"),
        # Binding the palette to ":" stops Textual from adding its own ctrl+p: bind both.
        Binding(
            "ctrl+p",
            "command_palette",
            "Commands",
            show=False,
            id="app.palette_ctrl",
            priority=True,
        ),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, id="app.quit_ctrl", priority=True),
    ]

    engine_status: reactive[str] = reactive("")
    """One line about the engine serving this database, shown in every screen's top bar."""

    def __init__(
        self,
        deck: Deck,
        project: str | None = None,
        *,
        run_engine: bool = True,
        engine: Engine | None = None,
        poll: float = 0.25,
    ) -> None:
        super().__init__()
        self.deck = deck
        self.start_project = project
        self.poll = poll
        self.engine: Engine | None = engine
        self._owns_engine = engine is None and run_engine
        self.status_styles: dict[str, str] = {}
        self.current_project: str | None = None  # the project screen on top, for the palette
        self._warned: set[str] = set()
        # Toasts raised while the keys help is open: shown when it closes (see ``notify``).
        self._held: list[tuple[str, str, SeverityLevel, float | None]] = []
        self.read_only_home = False  # known once mounted: then no engine starts here

    # -- lifecycle ------------------------------------------------------------------------

    def on_mount(self) -> None:
        from tui.screens.projects import ProjectsScreen

        self.status_styles = resolve_styles(self.theme_variables)
        # Warnings come from Deck calls on worker threads: posting a message is thread-safe.
        # The Deck may outlive the app (tests and benchmarks run many apps on one Deck): its
        # listener holds the app weakly, else every app that ended stayed in memory, and the
        # garbage collector went through all of them on each full collection.
        app = weakref.ref(self)

        def warned(text: str) -> None:
            live = app()
            if live is not None:
                live.post_message(Warned(text))

        self.deck.on_warning(warned)
        for text in list(self.deck.warnings):  # given before the app listened
            self.post_message(Warned(text))
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        # An engine here writes its heartbeat, lease and jobs' folders in the data home: on a
        # read-only one it would fail every round, so the TUI only reads (as the CLI does).
        self.read_only_home = not writable(self.deck.home)
        if self.read_only_home:
            self._owns_engine = False
        if self._owns_engine:
            self.engine = Engine(self.deck)
            self.engine.start()
        self.push_screen(ProjectsScreen())
        if self.start_project:
            self.open_project(self.start_project)
        self._check_engine()
        self.set_interval(ENGINE_POLL, self._check_engine)

    def on_warned(self, message: Warned) -> None:
        """Each warning of the Deck as a toast, once."""
        if message.text not in self._warned:
            self._warned.add(message.text)
            self.notify(message.text, title="warning", severity="warning", timeout=10)

    def _on_theme_changed(self, _theme: Any) -> None:
        self.status_styles = resolve_styles(self.theme_variables)

    def _check_engine(self) -> None:
        engine = self.engine

        def who(serving: int) -> str:
            status = engine.status() if engine is not None else None
            if status is not None and status.serving:
                n = len(status.running)
                return f"engine: this process ({n} running)" if n else "engine: this process"
            lease = self.deck.serving_engine()
            if lease is not None:
                return f"engine: {lease.host} pid {lease.pid}"
            if serving:  # engines that share the work without a lease (PostgreSQL)
                return "engines:"
            if self.read_only_home:  # said below: the queue waits for an engine elsewhere
                return "engine: none serving"
            return "engine: none serving (jobs wait in the queue)"

        def probe() -> str:
            engines = self.deck.hosts.summary()  # every host's engines, from heartbeats
            text = who(engines.serving)
            # One engine: the text says how busy it is; several: how many, and how busy.
            if engines.serving > 1 or text == "engines:":
                text += f" · {engines.serving} serving, {engines.running}/{engines.workers} busy"
            if self.read_only_home:  # why this process serves none
                text += " · data home read-only"
            return text

        self.load("app.engine", probe, self._set_engine_status)

    def _set_engine_status(self, text: str) -> None:
        self.engine_status = text

    def on_unmount(self) -> None:
        self.shutdown_engine()

    def shutdown_engine(self) -> None:
        """Stop dispatching and release the lease; job processes keep running."""
        if self.engine is not None and self._owns_engine:
            self.engine.shutdown()
            self._owns_engine = False

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast, shown literally whatever ``markup`` says: every toast of modeldeck may
        quote a name, a path or an error that a user or a job wrote (a widget's ``notify``
        comes here too)."""
        del markup
        from tui.modals import HelpScreen

        shown = (printable(str(message), newlines=True), printable(str(title)), severity, timeout)
        if self.screen_stack and isinstance(self.screen, HelpScreen):
            # Textual draws a screen's toasts above it, here over the dialog's border: held
            # until the help closes, then shown (with their whole timeout) on the screen under.
            self._held.append(shown)
            return
        self._toast(*shown)

    def _toast(
        self, message: str, title: str, severity: SeverityLevel, timeout: float | None
    ) -> None:
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    @property
    def held_toasts(self) -> list[str]:
        """The toasts waiting for the keys help to close, their messages."""
        return [message for message, *_ in self._held]

    def release_held_toasts(self) -> None:
        """The toasts held while the keys help was open, now that it has closed (called as
        it unmounts, however it left)."""
        held, self._held = self._held, []
        for shown in held:
            self._toast(*shown)

    # -- actions --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        from tui.modals import QuitDialog

        running = list(self.engine.status().running) if self.engine is not None else []
        if not running:
            self.exit(0)
            return

        def answered(choice: str | None) -> None:
            if choice == "keep":
                self.exit(0)
            elif choice == "stop":
                self._stop_and_quit(running)

        self.push_screen(QuitDialog(len(running)), answered)

    def _stop_and_quit(self, job_ids: list[str]) -> None:
        self.notify(f"stopping {len(job_ids)} job(s)…")

        def stop_all() -> None:
            for job_id in job_ids:
                try:
                    self.deck.stop(job_id, reason="stopped when the TUI quit")
                except ModelDeckError:
                    pass  # it finished meanwhile
            # Let the engine deliver the signals and record the outcome before it stops.
            for job_id in job_ids:
                self.deck.wait(job_id, timeout=5.0)

        self.load("app.stop_quit", stop_all, lambda _r: self.exit(0), if_idle=False)

    def action_help(self) -> None:
        from tui.modals import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))  # it releases the held toasts

    # -- navigation: screens reach each other through these, never by importing each other

    def open_project(self, name: str, tab: str = "models") -> None:
        """The project's screen, on ``tab``."""
        from tui.screens.project import ProjectScreen

        self.push_screen(ProjectScreen(name, tab=tab))

    def open_job(self, job_id: str, *, replace: bool = False) -> None:
        """The job's screen. With ``replace`` it takes the current screen's place, or, when
        the screen under the current one is that job's, goes back to it."""
        from tui.screens.job import JobScreen

        if not replace:
            self.push_screen(JobScreen(job_id))
            return
        below = self.screen_stack[-2] if len(self.screen_stack) > 1 else None
        if isinstance(below, JobScreen) and below.job_id == job_id:
            self.pop_screen()
        else:
            self.switch_screen(JobScreen(job_id))

    def open_event(self, event: EventView, job: JobView) -> None:
        """One event of a job, every field of it."""
        from tui.screens.event import EventScreen

        self.push_screen(EventScreen(event, job))

    def open_deployment_event(self, event: DeploymentEventView, deployment: DeploymentView) -> None:
        """One event of a deployment's timeline, every field of it."""
        from tui.screens.event import DeploymentEventScreen

        self.push_screen(DeploymentEventScreen(event, deployment))

    def open_version(self, version_id: str) -> None:
        """A version's details."""
        from tui.screens.version import VersionScreen

        self.push_screen(VersionScreen(version_id))

    def open_compare(self, version_ids: list[str]) -> None:
        """Versions side by side."""
        from tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(version_ids))

    def open_history(self, project: str) -> None:
        """What ran when in a project: its timeline and the deployments active at a time."""
        from tui.screens.history import HistoryScreen

        self.push_screen(HistoryScreen(project))

    def open_deployment(self, deployment: DeploymentView) -> None:
        """A deployment and its batch prediction jobs."""
        from tui.screens.deployment import DeploymentScreen

        self.push_screen(DeploymentScreen(deployment))


def run_app(
    home: str | Path | None = None, db: str | None = None, project: str | None = None
) -> int:
    """Open the TUI on a data home; returns the process exit code."""
    if os.environ.get("MODELDECK_TUI_LOG"):
        logging.basicConfig(filename=os.environ["MODELDECK_TUI_LOG"], level=logging.INFO)
    deck = Deck(home=home, db=db)
    app = ModelDeckApp(deck, project=project)
    try:
        code = app.run()
    finally:
        app.shutdown_engine()
        deck.close()
    return code or 0
