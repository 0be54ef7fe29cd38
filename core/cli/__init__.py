"""The ``modeldeck`` command line. Every command takes ``--json``; errors are one line.

A package by subject: ``parser`` (the arguments, and which module runs each command),
``output`` (what is printed and how), ``session`` (a command's run: listings, and a job
submitted then followed to its end), and one module of commands each: ``registry``
(projects, models, versions, datasets), ``jobs`` (the job commands, jobs, logs, events,
stop), ``deployments`` (deployments and schedules) and ``engine`` (engine, demo). Only the
module of the command given is imported, and each command imports what it uses when it runs:
``--help`` and a read start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from core.cli.output import err, error, job_lines, out, reader_left, say, say_lines, table
from core.cli.parser import COMMANDS, MAX_LIMIT, RUN_BY, _command_in, build_parser
from core.cli.session import Cli
from core.errors import ModelDeckError, database_refusal
from core.procfs import host_problem

__all__ = [
    "COMMANDS",
    "MAX_LIMIT",
    "Cli",
    "OpenTui",
    "_command_in",
    "build_parser",
    "err",
    "job_lines",
    "main",
    "out",
    "say",
    "say_lines",
    "table",
]

OpenTui = Callable[[argparse.Namespace], int]


def _run(args: argparse.Namespace) -> int:
    """Run a command of the command line (not the TUI) in the module that holds it."""
    where = RUN_BY.get(args.command)
    if where is None:
        raise ModelDeckError(f"unknown command {args.command!r}")
    run = importlib.import_module(f"core.cli.{where}").RUN[args.command]
    return run(Cli(args))


def _flush() -> None:
    """The output's last bytes, while a reader gone can be seen: it ends the command quietly.
    Another failure (a full disk) is left to the console script's exit, which says it."""
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        if not reader_left():
            raise
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None, open_tui: OpenTui | None = None) -> int:
    """Run one command; ``open_tui`` opens the TUI (the CLI itself knows no screens)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command_in(argv)).parse_args(argv)
        problem = host_problem()  # any command may run a job here, or start an engine
        if problem is not None:
            raise ModelDeckError(problem)
        if args.command in (None, "tui") or (args.command == "demo" and not args.no_tui):
            if open_tui is None:
                raise ModelDeckError("the terminal UI is not available here")
            if args.command == "demo":
                from core.demo import seed_demo
                from core.service import Deck

                deck = Deck(home=args.home, db=args.db)
                seed_demo(deck, progress=err)
            return open_tui(args)
        code = _run(args)
        _flush()
        return code  # a job command's: how its job ended, even if the reader left
    except ModelDeckError as exc:
        error(str(exc))
        _flush()  # what was printed before the refusal, while a reader gone can be seen
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not reader_left():
            raise
        return 0  # the reader had what it wanted: quietly, whatever was written
    except Exception as exc:
        refusal = database_refusal(exc)  # refused by the database: a role, a lock, a full disk
        if refusal is None:
            raise
        error(str(refusal))
        _flush()
        return 2
