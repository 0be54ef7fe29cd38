"""What reaches the terminal from user or job text: no control character gets through."""

import subprocess
import sys
from pathlib import Path

from core.text import has_controls, printable

ROOT = Path(__file__).resolve().parent.parent


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


def test_bidirectional_controls_become_visible() -> None:
    """An override or isolate reorders the rest of its line on screen, so that a name or a
    log line reads as another ("Trojan Source"): shown as its code point instead. Other text
    of right-to-left scripts, and joiners, stay as they are."""
    spoof = "invoice\u202egpj.exe"  # shows as "invoiceexe.jpg" where the terminal obeys it
    assert printable(spoof) == "invoice\\u202egpj.exe"
    shown = printable("a\u2066b\u2069 \u200f \u061c \u202a")
    assert shown == "a\\u2066b\\u2069 \\u200f \\u061c \\u202a"
    assert not has_controls(shown) and has_controls(spoof)
    kept = "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \U0001f469\u200d\U0001f4bb"
    assert printable(kept) == kept and not has_controls(kept)


def test_bytes_that_were_not_utf8_show_as_their_bytes_and_can_be_written() -> None:
    name = b"caf\xe9 \xff\xfe".decode("utf-8", "surrogateescape")  # as argv and file names come
    shown = printable(f"{name}\x1b[2J")
    assert shown == "caf\\xe9 \\xff\\xfe^[[2J"
    shown.encode("utf-8")  # strict: no lone surrogate is left to make print() raise
    assert has_controls(name)  # printable changes it: the TUI's fast path must not skip it
    assert printable("a\ud800b", newlines=True) == "a\\ud800b"  # a surrogate from no byte
    assert not has_controls(shown)


def test_surrogates_in_cli_output_do_not_raise() -> None:
    """A name decoded with surrogateescape printed by ``say`` on a strict UTF-8 stdout."""
    script = (
        "import sys; from core.cli import say\n"
        "sys.stdout.reconfigure(encoding='utf-8', errors='strict')\n"
        "say(b'caf\\xe9'.decode('utf-8', 'surrogateescape'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"caf\\xe9\n"


def test_cli_tables_align_by_the_cells_text_takes_on_a_terminal() -> None:
    """A wide character (CJK, most emoji) takes two cells, a combining mark none: the columns
    after them line up as the terminal shows them."""
    from core.cli.output import table
    from core.text import cells

    assert (cells("abc"), cells("日本"), cells("😀x"), cells("e\u0301"), cells("a\u200db")) == (
        3,
        4,
        3,
        1,
        2,
    )
    # Thai and Devanagari marks take none; a soft hyphen, drawn, one.
    assert (cells("สวัสดี"), cells("हिं"), cells("a\u00adb")) == (4, 2, 3)
    shown = table(["name", "repo"], [["日本語", "/r1"], ["e\u0301te", "/r2"], ["plain", "/r3"]])
    starts = {cells(line[: line.index("/")]) for line in shown.splitlines()[1:]}
    assert starts == {cells("NAME    ")}, shown


def test_cut_keeps_text_within_its_cells() -> None:
    """A list's column cut at 8 cells takes 8 cells, whatever the script."""
    from core.text import cells, cut

    assert cut("short", 8) == "short"
    assert cut("abcdefghij", 8) == "abcdefg…"
    assert cut("日本語のモデル名前", 8) == "日本語…"  # three wide ones: 6 cells, and the …
    assert cut("e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301", 8) == "e\u0301" * 8
    for text in ("日本語のモデル名前", "😀😀😀😀😀", "abcdefghij", "aé日😀b" * 3):
        assert cells(cut(text, 8)) <= 8
    # Characters that take no cell still count: an echoed name stays short.
    assert cut("a" + "\u200b" * 40_000, 8) == "a" + "\u200b" * 30 + "…"
