"""The command palette (ctrl+p or :): go to a project or a job, and the verbs of the screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.errors import ModelDeckError
from core.views import JobView, ProjectView


class DeckCommands(Provider):
    """Projects, recent jobs, a job by id, and what the current screen offers."""

    async def startup(self) -> None:
        deck = self.app.deck  # type: ignore[attr-defined]
        project = getattr(self.app, "current_project", None)

        def fetch() -> tuple[list[ProjectView], list[JobView]]:
            return deck.projects(), deck.jobs(project=project, limit=30)

        try:
            self.projects, self.recent = await asyncio.to_thread(fetch)
        except ModelDeckError:
            self.projects, self.recent = [], []
        screen = self.screen
        offered = getattr(screen, "palette_commands", None)
        self.screen_commands: list[tuple[str, str, Callable[[], Any]]] = (
            list(offered()) if offered else []
        )

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app
        out = list(self.screen_commands)
        out += [
            (f"Go to project {p.name}", p.repo, partial(app.open_project, p.name))
            for p in self.projects
        ]
        out += [
            (
                f"Go to job {j.short_id} {j.type} {j.target} ({j.status})",
                j.id,
                partial(app.open_job, j.id),
            )
            for j in self.recent
        ]
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
        ref = query.strip().removeprefix("job").strip()
        if len(ref) >= 4 and " " not in ref:
            yield Hit(
                0.9,
                f"Go to job by id: {ref}",
                partial(self._open_job_ref, ref),
                help="any job id or a unique prefix of one",
            )

    def _open_job_ref(self, ref: str) -> None:
        app: Any = self.app
        deck = app.deck

        def found(job: JobView) -> None:
            app.open_job(job.id)

        app.load("palette.job", lambda: deck.job(ref), found, if_idle=False)
