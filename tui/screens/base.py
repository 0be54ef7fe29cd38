"""What every screen shares: the top bar, the footer, ``escape`` to go back."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen

from tui.widgets import Background


class DeckScreen(Background, Screen[None]):
    """A place in the app; ``escape`` goes back to the place before."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", show=False, id="screen.back"),
    ]

    @property
    def deck(self):  # type: ignore[no-untyped-def]
        return self.app.deck  # type: ignore[attr-defined]

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def palette_commands(self) -> list[tuple[str, str, object]]:
        """(title, help, callback) commands this screen offers in the command palette."""
        return []
