"""What reaches the terminal from user or job text: no control character gets through."""

from core.text import has_controls, printable


def test_escape_sequences_become_visible() -> None:
    title = "\x1b]0;pwned\x1b\\"  # OSC: set the window title, ended by ST
    clipboard = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write the clipboard
    report = "\x1b[6n"  # ask the terminal to type the cursor position
    shown = printable(f"a{title}{clipboard}{report}\x9b2J\x7fz")
    assert not has_controls(shown)
    assert shown == "a^[]0;pwned^[\\^[]52;c;ZXZpbA==^G^[[6n\\x9b2J^?z"


def test_tab_stays_and_newline_only_when_asked() -> None:
    assert printable("a\tb\nc") == "a\tb^Jc"
    assert printable("a\tb\nc", newlines=True) == "a\tb\nc"
    assert printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
