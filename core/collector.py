"""Python's cycle collector while a command starts.

Starting a command imports SQLAlchemy, pydantic, SQLModel and psycopg (and Textual for the
TUI): a few hundred thousand objects that live as long as the process, and almost no
garbage. The collector, run every 700 allocations, walks them again and again meanwhile: a
tenth of the start's CPU (measured on ``modeldeck engine``). The console script holds it
(``hold``): it runs once every ``HOLD_THRESHOLD`` allocations instead (as little CPU as no
collector at all, on that start), until the command opens its database (``release``, from
``core.db.make_engine``); by then most of what it runs on is imported. The objects made
until then are frozen (``gc.freeze``): later collections, the engine's as it serves, skip
them. The collector is never off: a command that opens no database still collects, only
less often.
"""

from __future__ import annotations

import gc

HOLD_THRESHOLD = 300_000  # allocations between collections while a command starts

_held: tuple[int, ...] | None = None  # the thresholds ``hold`` replaced


def hold() -> None:
    """Collections only every ``HOLD_THRESHOLD`` allocations until ``release`` (nothing
    changes if the collector is off already, or held)."""
    global _held
    if gc.isenabled() and _held is None:
        _held = gc.get_threshold()
        gc.set_threshold(HOLD_THRESHOLD, *_held[1:])


def release() -> None:
    """The command's modules are in: freeze what exists and give the collector back its
    thresholds (only if ``hold`` changed them)."""
    global _held
    if _held is not None:
        thresholds, _held = _held, None
        gc.freeze()
        gc.set_threshold(*thresholds)
