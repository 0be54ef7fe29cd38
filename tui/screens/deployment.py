"""A deployment's batch prediction jobs (the Jobs table, filtered to one deployment)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer

from core.views import DeploymentView
from tui.screens.base import DeckScreen
from tui.tabs.jobs import JobsPane
from tui.widgets import TopBar


class DeploymentScreen(DeckScreen):
    TITLE = "Deployment"

    def __init__(self, deployment: DeploymentView) -> None:
        super().__init__()
        self.deployment = deployment

    def compose(self) -> ComposeResult:
        d = self.deployment
        yield TopBar(f"modeldeck / {d.project} / deployment of {d.label} ({d.status}) · jobs")
        yield JobsPane(d.project, deployment=d.id, job_type="batch_predict")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p: in the keys help
