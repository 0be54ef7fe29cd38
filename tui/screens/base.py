"""What every screen shares: the top bar, the footer, ``escape`` to go back."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tui.widgets import DeckFooter, DeckNode


class DeckScreen(DeckNode, Screen[None]):
    """A place in the app; ``escape`` goes back to the place before. Screens never import
    each other: they go to another through the app's ``open_*`` methods."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", show=False, id="screen.back"),
    ]

    def on_screen_resume(self) -> None:
        for footer in self.query(DeckFooter):
            footer.screen_resumed()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def on_key(self, event: events.Key) -> None:
        """A key whose action is refused now (dimmed) says why in a toast, instead of doing
        nothing: the node that owns the binding tells, by its ``refusal(action)``. The key
        reaches the screen before the app runs its bindings, so this is the state the key
        was pressed in."""
        active = self.active_bindings.get(event.key)
        if active is None or active.enabled:
            return
        why = getattr(active.node, "refusal", None)
        reason = why(active.binding.action.split("(")[0]) if callable(why) else None
        if reason:
            self.app.notify(reason, severity="warning", timeout=4)

    def palette_commands(self) -> list[tuple[str, str, object]]:
        """(title, help, callback) commands this screen offers in the command palette."""
        return []
