"""Python's cycle collector while a command starts.

Starting a command imports SQLAlchemy, pydantic, SQLModel and psycopg (and Textual for the
TUI): a few hundred thousand objects that live as long as the process, and almost no
garbage. The collector, run every 700 allocations, walks them again and again meanwhile: a
tenth of the start's CPU (measured on ``modeldeck engine``). The console script holds it
(``hold``) until the command opens its database (``release``, from ``core.db.make_engine``);
by then most of what it runs on is imported. The objects made until then are frozen
(``gc.freeze``): later collections, the engine's as it serves, skip them.
"""

from __future__ import annotations

import gc

_held = False


def hold() -> None:
    """No collections until ``release`` (a no-op if the collector is off already)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """The command's modules are in: freeze what exists and turn the collector back on
    (only if ``hold`` turned it off)."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
