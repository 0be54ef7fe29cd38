"""The job commands: submitting one (train, evaluate, approve, ... rerun) and following it,
listing and showing jobs, their logs and events, and stopping one."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.cli.output import err, job_lines, out, say, say_lines, table
from core.cli.session import Cli, Command, exit_status
from core.errors import ModelDeckError, connection_lost, first_line
from core.text import cut, local, printable

if TYPE_CHECKING:
    from core.service import Deck
    from core.views import JobView


def _overrides(given: list[str]) -> dict[str, Any]:
    from core.service import parse_overrides

    return parse_overrides(given)


# The job each job command submits (its Deck verb); the job is then followed to its end here,
# or only queued with --detach.
SUBMIT: dict[str, Callable[[Deck, argparse.Namespace], JobView]] = {
    "train": lambda d, a: d.train(a.project, a.model, a.dataset, _overrides(a.set)),
    "evaluate": lambda d, a: d.evaluate(a.version, a.dataset),
    "approve": lambda d, a: d.approve(a.version, a.reason, a.evaluation),
    "reject": lambda d, a: d.reject(a.version, a.reason, a.evaluation),
    "deploy": lambda d, a: d.deploy(a.version, a.dataset, a.schedule, a.timezone),
    "retire": lambda d, a: d.retire(a.deployment, a.reason),
    "import": lambda d, a: d.import_model(a.project, a.model, a.source, a.format, a.again),
    "stats": lambda d, a: d.compute_stats(a.version, a.dataset),
    "predict": lambda d, a: d.predict(a.deployment),
    "rerun": lambda d, a: d.rerun(a.job),
}


def submit(cli: Cli) -> int:
    return cli.job_command(lambda: SUBMIT[cli.args.command](cli.deck, cli.args))


def jobs(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    return cli.listing(
        d.jobs(a.project, status=a.status, job_type=a.type, limit=a.limit),
        [
            "id",
            "type",
            "target",
            "dataset",
            "status",
            "trigger",
            "actor",
            "created",
            "error",
        ],
        lambda j: [
            j.id,
            j.type,
            j.target,
            j.dataset,
            j.status,
            j.trigger,
            j.actor,
            local(j.created_at),
            cut(j.error or "", 60),
        ],
        optional=["dataset"],
    )


def job(cli: Cli) -> int:
    from core.lifecycle import FINAL_STATUSES, JobType

    a, d = cli.args, cli.deck
    j = d.job(a.job)
    if cli.json:
        out(j.to_json())
    else:
        for line in job_lines(j):
            say(line)
        if j.type == JobType.batch_predict.value and j.status in FINAL_STATUSES:
            _predictions_preview(cli, j.id)
    return 0


def _predictions_preview(cli: Cli, job_id: str) -> None:
    """A batch prediction's summary and the first rows of its predictions.csv."""
    preview = cli.deck.predictions(job_id)
    say(f"predictions  {preview.summary_text}")
    if preview.columns:
        say(f"  first {len(preview.rows)} rows of {preview.path}:")
        # The file's own header as its first row: column names as they are, not upper-cased.
        width = max(len(preview.columns), *(len(r) for r in preview.rows), 0)
        rows = [preview.columns, *preview.rows]
        cells = [list(r) + [""] * (width - len(r)) for r in rows]
        for line in table([""] * width, cells).splitlines()[1:]:
            say(f"    {line}")


def logs(cli: Cli) -> int:
    from core.lifecycle import FINAL_STATUSES, JobStatus
    from core.logs import LogReader

    a, d = cli.args, cli.deck
    job = d.job(a.job)
    if a.raw and cli.json:
        raise ModelDeckError("--raw passes the log through as it is; it takes no --json")
    if a.follow and not cli.json and job.status == JobStatus.queued.value:
        cli.queued_note(job)
    if a.raw:
        return _raw_log(cli, job)
    source = d.hosts.log(job.id)  # the file, or its copy when on another host
    log = LogReader(source)
    if cli.json:
        lines: list[str] = []
        while True:
            lines.extend(log.read(final=True))
            if log.at_end:
                break
        out({"job": job.id, "status": job.status, "lines": lines})
        return 0
    silence = _Silence(d)
    connection = _Connection()
    while True:
        try:
            job = d.job(job.id)
            final = job.status in FINAL_STATUSES
            chunk = log.read(final=final or not a.follow)
            if a.follow and not chunk and log.at_end and not final:
                silence.check(job)
        except Exception as exc:
            if not (a.follow and connection.lost(exc)):
                raise
            continue
        connection.back()
        say_lines(chunk)
        if chunk and a.follow:
            # Live, also into a pipe or a file; and before any note on stderr about it.
            sys.stdout.flush()
        if chunk or not log.at_end:
            continue
        if not a.follow or final:
            return _followed_to_the_end(job, here=source.path.exists()) if a.follow else 0
        time.sleep(0.1)


class _Connection:
    """While a log is followed: the database server's connection lost (a restart, an
    administrator ending it) is said once on stderr and tried again each second; the
    follow goes on when the server answers."""

    def __init__(self) -> None:
        self._lost = False

    def lost(self, exc: Exception) -> bool:
        """Whether ``exc`` is the connection lost (then, after a second's wait, try again)."""
        if not connection_lost(exc):
            return False
        if not self._lost:
            reason = first_line(getattr(exc, "orig", None) or exc)
            err(f"modeldeck: lost the connection to the database ({reason}): retrying")
        self._lost = True
        time.sleep(1.0)
        return True

    def back(self) -> None:
        if self._lost:
            err("modeldeck: connected to the database again")
            self._lost = False


class _Silence:
    """While a log is followed: says once on stderr when the job's host falls silent (the log
    then stops), and again when it is heard from anew. Asked at most once a second."""

    def __init__(self, deck: Deck) -> None:
        self.deck = deck
        self._asked = 0.0
        self._said = False

    def check(self, job: JobView) -> None:
        if time.monotonic() - self._asked < 1.0:
            return
        self._asked = time.monotonic()
        silent = self.deck.hosts.silent_for(job.host)
        if silent is not None and not self._said:
            err(
                f"modeldeck: host {printable(job.host or '?')} not heard from for "
                f"{silent:.0f}s: its engine may be gone (the log goes on if it comes back; "
                "else the job is failed as lost)"
            )
        elif silent is None and self._said:
            err(f"modeldeck: host {printable(job.host or '?')} is heard from again")
        self._said = silent is not None


def _followed_to_the_end(job: JobView, here: bool) -> int:
    """What ended a followed log, on stderr (the log itself is on stdout): the job's end; for
    a job whose host was lost, that the log read from its copy may stop short. The exit
    status of a job command."""
    line = f"modeldeck: job {job.id} {job.status}"
    if job.error:
        line += f": {printable(job.error)}"
    if job.error == "lost" and not here:
        line += f" (its host {printable(job.host or '?')} was not seen for a while: its log "
        line += "is what that host had copied, and may stop short)"
    err(line)
    return exit_status(job)


def _raw_log(cli: Cli, job: JobView) -> int:
    """The log's bytes as they are (colours, escape sequences, carriage returns)."""
    from core.lifecycle import FINAL_STATUSES
    from core.logs import CHUNK

    source, offset = cli.deck.hosts.log(job.id), 0
    stdout = sys.stdout.buffer
    silence = _Silence(cli.deck)
    connection = _Connection()
    while True:
        try:
            job = cli.deck.job(job.id)
            final = job.status in FINAL_STATUSES
            try:
                with source.open() as fh:
                    fh.seek(offset)
                    while data := fh.read(CHUNK):
                        stdout.write(data)
                        offset += len(data)
            except FileNotFoundError:
                pass
            stdout.flush()
            if cli.args.follow and not final:
                silence.check(job)
        except Exception as exc:
            if not (cli.args.follow and connection.lost(exc)):
                raise
            continue
        connection.back()
        if not cli.args.follow:
            return 0
        if final:
            return _followed_to_the_end(job, here=source.path.exists())
        time.sleep(0.1)


def events(cli: Cli) -> int:
    a, d = cli.args, cli.deck
    evs = d.events(a.job)
    return cli.listing(
        evs,
        ["seq", "at", "kind", "message"],
        lambda e: [e.seq, local(e.at), e.kind, e.message],
    )


def stop(cli: Cli) -> int:
    from core.lifecycle import FINAL_STATUSES

    a, d = cli.args, cli.deck
    j = d.stop(a.job)
    if not a.no_wait and j.status not in FINAL_STATUSES:
        note = d.hosts.stop_note(j)
        if note is not None:
            # Only an engine of its host can signal its process: waiting here would not end.
            err(f"modeldeck: {note}")
        else:
            j = cli.follow_quietly(j)
    return cli.show(j, f"job {j.id} {j.status}")


RUN: dict[str, Command] = {name: submit for name in SUBMIT} | {
    "jobs": jobs,
    "job": job,
    "logs": logs,
    "events": events,
    "stop": stop,
}
