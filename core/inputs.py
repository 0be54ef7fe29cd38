"""The rules for text a user gives: UTF-8 only, the one name rule, and ``--set key=value``
overrides. Pure functions, no database and no files."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable
from typing import Any

from core.errors import ModelDeckError
from core.text import cut, has_controls, quoted

MAX_OVERRIDE_DEPTH = 32
# A reason (approve, reject, retire) is a paragraph or a few: every history row carries it.
MAX_REASON = 10_000
# Both databases index names; PostgreSQL refuses an index entry over about 2,700 bytes.
MAX_NAME = 200
# Invisible characters that belong to text are kept in names: the zero-width joiner and
# non-joiner (emoji joined into one; Persian, Indic scripts) and the tags of flag emoji.
_KEPT_INVISIBLE = frozenset("\u200c\u200d") | frozenset(map(chr, range(0xE0020, 0xE0080)))
NAME_RULE = (
    "non-empty UTF-8 text without spaces, control or invisible characters, '/' or '\\', and "
    f"not '.' or '..', of at most {MAX_NAME} characters"
)


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored: no lone surrogates (the stand-ins Python uses for
    bytes of a command line or a file name that are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_utf8(text: str, what: str) -> str:
    if not is_utf8(text):
        raise ModelDeckError(f"{what} {quoted(text)} is not valid UTF-8")
    return text


def require_utf8_values(params: dict[str, Any]) -> None:
    """Refuse a job whose inputs (a reason, a path, an override) hold text that is not
    UTF-8: the database could not store it, and the job would fail late and obscurely."""
    stack: list[tuple[str, Any]] = list(params.items())
    while stack:
        key, value = stack.pop()
        if isinstance(value, str):
            require_utf8(value, str(key))
        elif isinstance(value, dict):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((key, v) for v in value)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a project, model or dataset, or None. One rule for every
    name: it is shown on screens and never becomes a path."""
    if not name:
        return "is empty"
    if not is_utf8(name):
        return "is not valid UTF-8"
    if name in (".", ".."):
        return "is a path, not a name"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if has_controls(name):
        return "holds a control character"
    if any(_invisible(c) for c in name):
        # A zero-width space, a soft hyphen...: the name would look like another one.
        return "holds an invisible character"
    if any(c.isspace() for c in name):
        return "holds whitespace"
    if len(name) > MAX_NAME:
        return f"is {len(name):,} characters long"
    return None


def _invisible(c: str) -> bool:
    return unicodedata.category(c) == "Cf" and c not in _KEPT_INVISIBLE


def check_name(kind: str, name: str) -> str:
    """``name`` stripped, or a refusal that says which part of the name rule it breaks."""
    name = (name or "").strip()
    problem = name_problem(name)
    if problem:
        # Its invisible characters shown, as its control characters are.
        shown = "".join(f"\\u{ord(c):04x}" if _invisible(c) else c for c in cut(name, 61))
        raise ModelDeckError(f"{kind} name {quoted(shown)} {problem}: a name must be {NAME_RULE}")
    return name


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_overrides(pairs: Iterable[str], field: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs; values parsed as standard JSON where they parse, else kept as
    text (so ``NaN``, ``Infinity`` and ``1e999``, which are no JSON numbers, stay text). A
    key given twice is refused: which value the job ran with would be a guess. ``field``
    names what was typed in the refusals (``--set``; the TUI's form: ``hyperparameter``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ModelDeckError(f"{field} wants key=value, got {quoted(pair[:80])}")
        require_utf8(key, f"{field} key")
        require_utf8(value, f"{field} {key}: the value")
        if key in out:
            raise ModelDeckError(f"{field} {key} is given twice: give each key once")
        try:
            parsed = json.loads(value, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise ModelDeckError(
                f"{field} {key}: the value nests too deeply "
                f"(at most {MAX_OVERRIDE_DEPTH} levels of lists and objects)"
            ) from None
        except ValueError:  # not JSON (JSONDecodeError is a ValueError): the text itself
            parsed = value
        if _depth(parsed) > MAX_OVERRIDE_DEPTH:
            raise ModelDeckError(
                f"{field} {key}: the value nests too deeply "
                f"(at most {MAX_OVERRIDE_DEPTH} levels of lists and objects)"
            )
        out[key] = parsed
    return out


def checked_reason(reason: str | None) -> str:
    """A reason without its outer spaces (empty when none was given); one longer than
    ``MAX_REASON`` characters is refused."""
    text = (reason or "").strip()
    if len(text) > MAX_REASON:
        raise ModelDeckError(
            f"a reason may have at most {MAX_REASON:,} characters, not {len(text):,} (keep "
            "the long version elsewhere and name it)"
        )
    return text
