"""A command's run: its arguments and the service, with what every command shares: listings,
one-line results, and submitting a job then following it to its end."""

from __future__ import annotations

import argparse
import functools
import shlex
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.cli.output import err, out, say, say_lines, table, unless_left

if TYPE_CHECKING:
    from core.service import Deck
    from core.views import JobView


def makes_home(args: argparse.Namespace) -> bool:
    """Whether the command may make the data home when it has none: those that can do their
    work in an empty one (serve it, add its first project, seed the demo, set it up). Every
    other command reads or changes what is there, and refuses a home without a database."""
    sub = {"project": "project_cmd", "db": "db_cmd"}.get(args.command)
    command = f"{args.command} {getattr(args, sub)}" if sub else args.command
    return command in ("engine", "demo", "project add", "db upgrade")


class Cli:
    """One command's run: its arguments, the service (``deck``) and whether it prints JSON."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = args.json

    @functools.cached_property
    def deck(self) -> Deck:
        """The service, opened when a command first asks for it (``db current`` never does:
        opening it brings the schema up to date)."""
        from core.service import Deck

        deck = Deck(home=self.args.home, db=self.args.db, create=makes_home(self.args))
        deck.on_warning(lambda message: err(f"warning: {message}"))
        return deck

    # -- what every command prints --------------------------------------------------------

    def listing(
        self,
        rows: Sequence[Any],
        headers: list[str],
        cells: Callable[[Any], list[Any]],
        optional: Sequence[str] = (),
    ) -> int:
        """A table of ``rows``; a column named in ``optional`` is left out when it is empty
        in every row (the table stays narrow)."""
        if self.json:
            out([r.to_json() for r in rows])
        elif rows:
            body = [cells(r) for r in rows]
            keep = [
                i
                for i, h in enumerate(headers)
                if h not in optional or any(r[i] not in (None, "", "-") for r in body)
            ]
            print(table([headers[i] for i in keep], [[r[i] for i in keep] for r in body]))
        else:
            err("(none)")
        return 0

    def show(self, view: Any, text: str) -> int:
        if self.json:
            out(view.to_json())
        else:
            say(text)
        return 0

    def where(self) -> str:
        """The options that name this database, for a command this one suggests."""
        where = ""
        for flag, value in (("--home", self.args.home), ("--db", self.args.db)):
            if value:
                where += f" {flag} {shlex.quote(value)}"
        return where

    def _no_engine(self) -> str:
        return (
            "no engine serves this database: the job starts when one does; "
            f"run `modeldeck engine{self.where()}`"
        )

    def no_engine_note(self) -> None:
        if self.deck.serving_engine() is None:
            err(self._no_engine())

    def queued_note(self, job: JobView) -> None:
        """On stderr, once, as a queued job's log is followed: that it waits in the queue,
        and whether an engine serves the database (else nothing will start it)."""
        lease = self.deck.serving_engine()
        if lease is None:
            err(f"modeldeck: job {job.id} is queued; {self._no_engine()}")
        else:
            err(
                f"modeldeck: job {job.id} is queued; the engine on {lease.host} (pid "
                f"{lease.pid}) serves this database: it starts when a worker is free"
            )

    # -- a job: submitted, then followed to its end ---------------------------------------

    def follow_job(self, job: JobView) -> JobView:
        """Wait for a job to end, running it here when no engine serves the database."""
        from core.engine import Engine
        from core.lifecycle import FINAL_STATUSES, JobStatus
        from core.logs import LogReader

        # It never takes the engine lease and runs the job only while no live engine serves
        # the database, so a real engine may start at any time (and adopt it).
        engine = Engine(self.deck, only_job=job.id, lease=False)
        log = LogReader(self.deck.hosts.log(job.id))
        interrupted: str | None = None  # what ended the wait: Ctrl-C, or SIGTERM
        seen: dict[str, JobView] = {}

        def on_signal(signum: int, _f: Any) -> None:
            nonlocal interrupted
            interrupted = interrupted or (
                "interrupted" if signum == signal.SIGINT else "terminated"
            )
            engine.wake()

        def ended() -> bool:
            view = seen["view"] = self.deck.job(job.id)
            final = view.status in FINAL_STATUSES
            if not self.json:
                unless_left(lambda: say_lines(log.read(final=final)))
                while final and not log.at_end:  # the job ended: print the whole rest
                    unless_left(lambda: say_lines(log.read(final=final)))
            return final or interrupted is not None

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            engine.serve(until=ended, max_wait=0.05)
            view = seen["view"]
            if view.status not in FINAL_STATUSES:
                self._left(view, interrupted or "interrupted")
                if view.status == JobStatus.queued.value:
                    self.no_engine_note()
            return view
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            engine.shutdown()

    def _left(self, job: JobView, why: str) -> None:
        """Said once, on stderr, when the wait for a job is interrupted: the job is not
        stopped, and how to follow or stop it."""
        from core.lifecycle import JobStatus

        where = self.where()
        follow = f"follow it with `modeldeck logs {job.id} --follow{where}`"
        if job.status == JobStatus.stopping.value:
            err(f"modeldeck: {why}: job {job.id} is still stopping; {follow}")
            return
        state = "stays queued" if job.status == JobStatus.queued.value else "keeps running"
        err(
            f"modeldeck: {why}: job {job.id} {state} (it was not stopped); {follow}, "
            f"stop it with `modeldeck stop {job.id}{where}`"
        )

    def job_command(self, submit: Callable[[], JobView]) -> int:
        from core.lifecycle import FINAL_STATUSES, JobStatus

        if not self.args.detach and self.deck.serving_engine() is None:
            from core.home import require_writable

            # This process will run the job: refused, as an engine's start is, where this host
            # cannot keep the job's folder, or use the artifact store (before anything is
            # queued).
            require_writable(self.deck.home, "run a job here (--detach only queues it)")
            self.deck.hosts.check_artifacts()
        job = submit()
        if self.json:
            err(job.id)
        else:
            unless_left(lambda: say(job.id, flush=True))
        if self.args.detach:
            if job.status == JobStatus.queued.value:
                self.no_engine_note()
            if self.json:
                unless_left(lambda: out(job.to_json()))
            return 0
        final = self.follow_job(job)
        if self.json:
            unless_left(lambda: out(final.to_json()))
        elif final.status in FINAL_STATUSES:  # else the wait was interrupted, and said so
            self.summarise(final)
        return exit_status(final)

    def summarise(self, job: JobView) -> None:
        from core.lifecycle import JobStatus, JobType

        d = job.duration(self.deck.now())
        took = f" in {d:.1f}s" if d is not None else ""
        line = f"{job.type} {job.status}{took}"
        if job.error:
            line += f": {job.error}"
        err(line)
        if job.status != JobStatus.completed.value:
            return
        from core.kinds import KINDS  # what a job of each type says when it is done

        for said in KINDS[JobType(job.type)].summary(self.deck, job):
            err(said)

    def follow_quietly(self, job: JobView) -> JobView:
        was, self.json = self.json, True
        try:
            return self.follow_job(job)
        finally:
            self.json = was


def exit_status(job: JobView) -> int:
    """A job command's exit status once its job is final: 0 when it completed, else 1."""
    from core.lifecycle import JobStatus

    return 0 if job.status == JobStatus.completed.value else 1


# What runs a command: its module's ``RUN`` maps each command it runs to one of these.
Command = Callable[[Cli], int]
