"""A team on one database: who is asking (``core.identity``), who may decide on a project's
versions (its approvers, four eyes) and the project's own timeline of those changes.

``team_of`` and ``maker_of`` read what ``core.lifecycle.refusal`` needs from the rows; the
service (at submission) and the engine (when the decision runs) both ask through
``decision_refusal``, the TUI through the same ``refusal`` with the views it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from core import identity, lookup
from core.errors import ModelDeckError
from core.inputs import check_name
from core.lifecycle import JobType, Team, decider_refusal
from core.models import Job, Model, ModelVersion, Project, ProjectEvent
from core.store import Store
from core.text import cut, quoted
from core.views import TeamView, WhoView

POLICY_CHANGED = "policy_changed"  # the kind of a project event: who may decide changed


def record_change(
    s: Session, project_id: str, by: str, at: datetime, kind: str, message: str, **details: Any
) -> None:
    """Append a change of the project's (registered, archived, its rules) to its timeline,
    with who made it; in the caller's transaction."""
    s.add(
        ProjectEvent(
            project_id=project_id, at=at, by=by, kind=kind, message=message, details=details
        )
    )


def team_of(p: Project) -> Team:
    """The project's rules of who may decide on its versions."""
    return Team(project=p.name, approvers=tuple(p.approvers or ()), four_eyes=bool(p.four_eyes))


def maker_of(s: Session, v: ModelVersion) -> tuple[str | None, bool]:
    """Who made the version (the actor of the job that trained or imported it) and whether
    it was imported; (None, ...) for a version whose job is not known."""
    model = s.get(Model, v.model_id)
    imported = model is not None and model.kind == "byom"
    job = s.get(Job, v.job_id) if v.job_id else None
    return (job.actor if job is not None else None), imported


def decision_refusal(s: Session, job_type: JobType, v: ModelVersion, who: str) -> str | None:
    """Why ``who`` may not decide (``job_type``) on ``v`` under its project's rules."""
    model = s.get(Model, v.model_id)
    p = s.get(Project, model.project_id)
    made_by, imported = maker_of(s, v)
    return decider_refusal(job_type, who, team_of(p), v.id, made_by, imported)


def team_view(p: Project) -> TeamView:
    return TeamView(project=p.name, approvers=list(p.approvers or []), four_eyes=p.four_eyes)


MAX_USER_NAME = 63


def _approvers(names: Sequence[str]) -> list[str]:
    """The approvers given (``--approvers a,b``): each a user name, kept once, in order."""
    out: list[str] = []
    for name in names:
        if not name.strip():
            continue
        name = check_name("approver", name)
        if len(name.encode()) > MAX_USER_NAME:
            raise ModelDeckError(
                f"approver name {quoted(cut(name, 61))} is longer than a user name can be "
                f"({MAX_USER_NAME} bytes: PostgreSQL's role names, and login names)"
            )
        if name not in out:
            out.append(name)
    return out


class TeamService:
    """``deck.team``: who is asking, and who may decide in a project."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def whoami(self) -> WhoView:
        """The authenticated user: whom this database records as the actor."""
        via = "os" if self.store.engine.dialect.name == "sqlite" else "database"
        return WhoView(user=self.store.actor(), via=via)

    def unknown(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` nobody can be authenticated as by this database (no role of that
        name on PostgreSQL, no login on this host on SQLite): none of them can decide."""
        return identity.unknown_users(self.store.engine, list(names))

    def rules(self, project: str) -> TeamView:
        with self.store.reader() as s:
            return team_view(lookup.project(s, project))

    def set_rules(
        self,
        project: str,
        approvers: Sequence[str] | None = None,
        four_eyes: bool | None = None,
    ) -> TeamView:
        """Name the project's approvers (an empty list: anyone may decide again) and turn
        four eyes on or off; None leaves either as it is. Once approvers are named, only
        they may change this. Recorded on the project's timeline with who did it."""
        names = _approvers(approvers) if approvers is not None else None
        if names is None and four_eyes is None:
            raise ModelDeckError("nothing to set: give --approvers, --four-eyes or --no-four-eyes")
        who = self.store.actor()
        with self.store.writer() as s:
            p = lookup.project(s, project)
            before = team_view(p)
            if before.approvers and who not in before.approvers:
                raise ModelDeckError(
                    f"{who} may not change who may approve in project {p.name} "
                    f"(only {', '.join(before.approvers)} may)"
                )
            if names is not None:
                p.approvers = names or None
            if four_eyes is not None:
                p.four_eyes = four_eyes
            after = team_view(p)
            if after != before:
                s.add(p)
                record_change(
                    s,
                    p.id,
                    who,
                    self.store.now(),
                    POLICY_CHANGED,
                    f"set {after.describe()}",
                    before=before.to_json(),
                    after=after.to_json(),
                )
                s.commit()
            return after
