"""The ``modeldeck`` console script: the CLI, which opens the TUI when asked to."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Sequence

from core import collector
from core.cli import main as cli_main


def open_tui(args: argparse.Namespace) -> int:
    from tui.app import run_app  # Textual is imported only when a screen is wanted

    return run_app(home=args.home, db=args.db, project="demo" if args.command == "demo" else None)


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, open_tui=open_tui)


def run() -> None:
    """The console script: one command, then the process leaves without tearing down the
    interpreter (freeing every object of SQLAlchemy and the rest one by one costs a tenth of
    a CPU second, after the command is done). Registered first, ``_leave`` runs last of the
    exit handlers, once the non-daemon threads have ended: nothing but that freeing is
    skipped."""
    collector.hold()  # until the command's modules are in (core/collector.py)
    status = {"code": 1}  # an exception's traceback is printed, and the exit code is 1
    atexit.register(_leave, status)
    try:
        status["code"] = main()
    except SystemExit as exc:  # argparse: --help, a usage error
        status["code"] = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise
    sys.exit(status["code"])


def _leave(status: dict[str, int]) -> None:
    code = status["code"]
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        code = code or 1  # the reader left: as the command's own writes say it
    except (OSError, ValueError) as exc:  # a full disk, say: what was not written is lost
        code = code or 1
        if sys.stderr is not None:
            sys.stderr.write(f"error: could not write the output: {exc}\n")
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
