"""Project: four tabs (models, jobs, deployments, datasets), switched with 1..4."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, TabbedContent, TabPane

from tui.screens.base import DeckScreen
from tui.tabs.datasets import DatasetsPane
from tui.tabs.deployments import DeploymentsPane
from tui.tabs.jobs import JobsPane
from tui.tabs.models import ModelsPane
from tui.widgets import DeckFooter, TopBar

TABS = ("models", "jobs", "deployments", "datasets")


class ProjectScreen(DeckScreen):
    TITLE = "Project"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "tab('models')", "Models", show=False, id="project.models"),
        Binding("2", "tab('jobs')", "Jobs", show=False, id="project.jobs"),
        Binding("3", "tab('deployments')", "Deploys", show=False, id="project.deployments"),
        Binding("4", "tab('datasets')", "Data", show=False, id="project.datasets"),
        Binding("h", "history", "History", show=False, id="project.history"),
    ]

    def __init__(self, project: str, tab: str = "models") -> None:
        super().__init__()
        self.project = project
        self.initial_tab = tab

    def compose(self) -> ComposeResult:
        yield TopBar(f"modeldeck / {self.project}")
        with TabbedContent(initial=self.initial_tab, id="tabs"):
            with TabPane("1 Models", id="models"):
                yield ModelsPane(self.project)
            with TabPane("2 Jobs", id="jobs"):
                yield JobsPane(self.project)
            with TabPane("3 Deployments", id="deployments"):
                yield DeploymentsPane(self.project)
            with TabPane("4 Datasets", id="datasets"):
                yield DatasetsPane(self.project)
        yield DeckFooter()

    def on_mount(self) -> None:
        self.deck_app.current_project = self.project
        self._focus_table(self.initial_tab)

    def on_screen_resume(self) -> None:
        self.deck_app.current_project = self.project
        self.call_after_refresh(self._refocus)

    def _refocus(self) -> None:
        """Back from a screen opened from a tab: that tab's table has the focus again (not
        a table of a hidden tab, where enter would open something unseen)."""
        tab = self.query_one(TabbedContent).active
        pane = self.query_one(f"#{tab}", TabPane)
        if self.focused is None or self.focused not in pane.query("*"):
            self._focus_table(tab)

    def _focus_table(self, tab: str) -> None:
        pane = self.query_one(f"#{tab}", TabPane)
        pane.query_one(DataTable).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_table(tab)

    def action_history(self) -> None:
        self.deck_app.open_history(self.project)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self._focus_table(event.pane.id)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "tab":
            return True
        return True

    def palette_commands(self) -> list[tuple[str, str, object]]:
        out: list[tuple[str, str, object]] = []
        for pane in (self.query_one(ModelsPane), self.query_one(DeploymentsPane)):
            out.extend(pane.palette_commands())
        return out
