"""Projects: every project with its counts; the way in to each."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from core.service import Deck
from core.views import ProjectView
from tui.modals import ProjectForm
from tui.screens.base import DeckScreen
from tui.widgets import DeckFooter, DeckTable, Polled, Row, TopBar

EMPTY = (
    "No projects yet.\n\n"
    "  d   load the demo project (iris models, datasets, a first training)\n"
    "  n   add a project: a name and a repository folder with models/<name>/training.py\n\n"
    "From a shell: modeldeck project add NAME --repo DIR"
)


class ProjectsScreen(Polled[list[ProjectView]], DeckScreen):
    """The first screen: a table of projects."""

    TITLE = "Projects"
    poll_seconds = 1.0
    # Also without news: model folders added on disk, and the Deck's read records the end of
    # a job whose engine has gone.
    refetch_seconds = 1.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_project", "New project", id="projects.new"),
        Binding("d", "demo", "Load demo", id="projects.demo"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.projects: list[ProjectView] = []
        self.seeding = False
        self._was_empty: bool | None = None

    def compose(self) -> ComposeResult:
        yield TopBar("modeldeck / projects")
        table = DeckTable(id="projects")
        # At 80 columns the counts stay whole: a long name or path gives up room.
        table.add_column("name", key="name", shrink=14)
        table.add_column("repository", key="repo", shrink=14)
        table.add_column("models", key="models")
        table.add_column("deployed", key="deployments")  # its active deployments
        table.add_column("drifting", key="drifting")
        table.add_column("running", key="running")
        table.add_column("failed", key="failed")
        yield table
        yield Static(EMPTY, id="empty", classes="empty")
        yield DeckFooter()

    def on_mount(self) -> None:
        self.query_one("#empty").display = False
        self.start_polling()

    def on_screen_resume(self) -> None:
        self.poll(force=True)

    def fetch(self, deck: Deck, state: None) -> list[ProjectView]:
        return deck.projects()

    def show(self, projects: list[ProjectView]) -> None:
        self.projects = projects
        table = self.query_one(DeckTable)
        table.sync(
            [
                Row(
                    p.name,
                    [
                        p.name,
                        p.repo,
                        str(p.models),
                        str(p.active_deployments),
                        str(p.drifting),  # active ones whose latest run is warn or alert
                        str(p.running_jobs),
                        str(p.failed_jobs),
                    ],
                )
                for p in projects
            ]
        )
        empty = not projects
        self.query_one("#empty").display = empty
        table.display = not empty
        if not empty and self.focused is None:
            table.focus()
        if empty != self._was_empty:
            self._was_empty = empty
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.refusal(action) else True

    def refusal(self, action: str) -> str | None:
        """Why a dimmed key does nothing (said when it is pressed)."""
        if action != "demo":
            return None
        if self.seeding:
            return "the demo project is being loaded"
        if self.projects:
            from core.demo import PROJECT

            if any(p.name == PROJECT for p in self.projects):
                return f"the demo project is here already: {PROJECT} (enter opens it)"
            return "there are projects already: 'modeldeck demo' adds the demo project beside them"
        return None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.deck_app.open_project(str(event.row_key.value))

    def action_new_project(self) -> None:
        def added(project: Any) -> None:
            if project is not None:
                self.notify(f"project {project.name} added")
                self.poll(force=True)

        self.app.push_screen(
            ProjectForm(lambda v: self.deck.add_project(v["name"], v["repo"])), added
        )

    def action_demo(self) -> None:
        from core.demo import seed_demo

        self.seeding = True
        self.refresh_bindings()
        self.notify("loading the demo project (about 20 s: it trains a first model)…")

        def done(project: ProjectView) -> None:
            self.seeding = False
            self.poll(force=True)
            self.deck_app.open_project(project.name)

        def failed(exc: Exception) -> None:
            self.seeding = False
            self._notify_error(exc)

        self.load("projects.demo", lambda: seed_demo(self.deck), done, on_error=failed)

    def palette_commands(self) -> list[tuple[str, str, object]]:
        return [("New project", "add a project from a repository folder", self.action_new_project)]
