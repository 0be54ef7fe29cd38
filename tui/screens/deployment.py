"""A deployment: its fields, and its batch prediction jobs (the Jobs table, filtered)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from core.service import Deck
from core.views import DeploymentView
from tui.format import in_zone, literal, status_text, when
from tui.screens.base import DeckScreen
from tui.tabs.jobs import JobsPane
from tui.widgets import Polled, TopBar


def deployment_header(d: DeploymentView, styles: dict[str, str]) -> Table:
    """Every field of the deployment, those the Deployments tab leaves out when narrow too."""
    grid = Table.grid(padding=(0, 1), expand=True)
    for _ in range(2):
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(ratio=1)
    status = "paused" if d.status == "active" and d.paused else d.status
    last: Any = "-"
    if d.last_run:
        last = status_text(str(d.last_run["status"]), styles)
        last.append(f" {when(d.last_run.get('at'))}")
    pairs: list[tuple[str, Any]] = [
        ("version", literal(d.label)),
        ("status", status_text(status, styles)),
        ("schedule", literal(d.schedule or "on demand")),
        ("zone", literal(d.timezone)),
        ("next run", in_zone(d.next_run_at, d.timezone)),
        ("last run", last),
        ("dataset", literal(d.dataset)),
        ("id", literal(d.id)),
    ]
    for i in range(0, len(pairs), 2):
        (a, av), (b, bv) = pairs[i], pairs[i + 1]
        grid.add_row(a, av, b, bv)
    return grid


class DeploymentScreen(Polled[DeploymentView], DeckScreen):
    TITLE = "Deployment"
    poll_seconds = 1.0

    def __init__(self, deployment: DeploymentView) -> None:
        super().__init__()
        self.deployment = deployment

    def compose(self) -> ComposeResult:
        d = self.deployment
        yield TopBar(f"modeldeck / {d.project} / deployment of {d.label} ({d.status}) · jobs")
        yield Static(deployment_header(d, self.styles_of_status), id="deployment-header")
        yield JobsPane(d.project, deployment=d.id, job_type="batch_predict")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p: in the keys help

    def on_mount(self) -> None:
        self.start_polling()

    def fetch(self, deck: Deck, state: None) -> DeploymentView:
        return deck.deployment(self.deployment.id)

    def show(self, d: DeploymentView) -> None:
        self.deployment = d
        header = deployment_header(d, self.styles_of_status)
        self.query_one("#deployment-header", Static).update(header)
