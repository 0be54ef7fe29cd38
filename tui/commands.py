"""The command palette (ctrl+p or :): go to a project or a job, and the verbs of the screen."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from core.errors import ModelDeckError
from core.text import printable
from core.views import JobView, ProjectView

if TYPE_CHECKING:
    from tui.app import ModelDeckApp


def _highlight(matcher: Matcher, title: str) -> Content:
    """``title`` as it is, the letters the query matched in the matcher's style
    (``Matcher.highlight`` would parse the title as markup, and titles hold user names)."""
    content = Content(title)
    _score, offsets = matcher.fuzzy_search.match(matcher.query, title)
    for offset in offsets:
        content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def _help(text: str) -> Any:
    """A hit's help line, shown literally: the palette parses a string as markup, and passes
    a Content through as it is."""
    return Content(printable(text))


_JOB_ID = re.compile(r"j-[0-9a-f]{2,}")  # a job's id, or a prefix of one past its "j-"


class DeckCommands(Provider):
    """Projects, recent jobs, a job by id, and what the current screen offers."""

    @property
    def deck_app(self) -> ModelDeckApp:
        return cast("ModelDeckApp", self.app)

    async def startup(self) -> None:
        deck = self.deck_app.deck
        project = self.deck_app.current_project

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
        app = self.deck_app
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
            shown = printable(title)
            yield DiscoveryHit(Content(shown), callback, text=shown, help=_help(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        ref = query.strip().removeprefix("job").strip()
        # What was typed is a job's id or the start of one: of the jobs, only those it
        # names, not others whose titles hold its letters in some order (j-c4db found
        # j-c58dee94). A job's help is its id.
        by_id = _JOB_ID.fullmatch(ref.lower()) is not None
        for title, help_text, callback in self._commands():
            job = title.startswith("Go to job ") and _JOB_ID.match(help_text) is not None
            if by_id and job and not help_text.startswith(ref.lower()):
                continue
            shown = printable(title)
            score = matcher.match(shown)
            if score > 0:
                yield Hit(
                    score, _highlight(matcher, shown), callback, text=shown, help=_help(help_text)
                )
        if len(ref) >= 4 and " " not in ref:
            shown = printable(f"Go to job by id: {ref}")  # what was typed, literally
            yield Hit(
                0.9,
                Content(shown),
                partial(self._open_job_ref, ref),
                text=shown,
                help="any job id or a unique prefix of one",
            )

    def _open_job_ref(self, ref: str) -> None:
        app = self.deck_app
        deck = app.deck

        def found(job: JobView) -> None:
            app.open_job(job.id)

        app.load("palette.job", lambda: deck.job(ref), found, if_idle=False)
