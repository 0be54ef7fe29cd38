"""The ``modeldeck`` console script: the CLI, which opens the TUI when asked to."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.cli import main as cli_main


def open_tui(args: argparse.Namespace) -> int:
    from tui.app import run_app  # Textual is imported only when a screen is wanted

    return run_app(home=args.home, db=args.db, project="demo" if args.command == "demo" else None)


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, open_tui=open_tui)


if __name__ == "__main__":
    sys.exit(main())
