"""What an alert listens for (its EVENTS), its webhook URL and how that URL is shown.

EVENTS is a comma list of ``failed`` (a job of the project, or of the deployment, failed),
``missed`` (a schedule fire time passed without a run: missed beyond the grace, or skipped
while the previous run was going), ``drift`` (a batch run's drift status is ``alert``),
``drift:warn`` (``warn`` or ``alert``), ``metric:NAME<VALUE`` and ``metric:NAME>VALUE`` (a
batch run's metric on data with the target is below or above VALUE).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import ModelDeckError
from core.text import has_controls, printable, quoted

FORMATS = ("json", "slack", "teams")  # teams: the same ``{"text": ...}`` body as slack
EVENT_NAMES = ("failed", "missed", "drift", "drift:warn", "metric:NAME<VALUE", "metric:NAME>VALUE")
DRIFT_WORSE = {"drift": ("alert",), "drift:warn": ("warn", "alert")}
_METRIC = re.compile(r"^metric:(?P<name>[^<>\s]+)(?P<op>[<>])(?P<value>[^<>\s]+)$")
MASK = "***"


@dataclass(frozen=True)
class Rule:
    """One of an alert's EVENTS: ``kind`` failed | missed | drift | metric."""

    text: str
    kind: str
    metric: str | None = None
    op: str | None = None
    threshold: float | None = None

    def drift_hit(self, status: str) -> bool:
        return status in DRIFT_WORSE.get(self.text, ())

    def metric_hit(self, value: object) -> bool:
        if self.kind != "metric" or isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or self.threshold is None:
            return False
        return value < self.threshold if self.op == "<" else value > self.threshold


def parse_rule(text: str) -> Rule:
    word = text.strip()
    if word in ("failed", "missed"):
        return Rule(word, word)
    if word in DRIFT_WORSE:
        return Rule(word, "drift")
    match = _METRIC.match(word)
    if match is not None:
        try:
            value = float(match["value"])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ModelDeckError(
                f"{quoted(word)}: the threshold {quoted(match['value'])} is not a finite number"
            )
        return Rule(word, "metric", match["name"], match["op"], value)
    if word.startswith("metric:"):
        raise ModelDeckError(
            f"{quoted(word)} is not a metric threshold: write metric:NAME<VALUE or "
            "metric:NAME>VALUE (quote it in the shell)"
        )
    raise ModelDeckError(
        f"unknown event {quoted(word)}: use a comma list of {', '.join(EVENT_NAMES)}"
    )


def parse_events(text: str) -> tuple[Rule, ...]:
    """The rules of an EVENTS comma list, each once, in the order given; refused when empty
    or when one is unknown."""
    words = [w.strip() for w in (text or "").split(",")]
    if not any(words):
        raise ModelDeckError(f"--on needs events: a comma list of {', '.join(EVENT_NAMES)}")
    if not all(words):
        raise ModelDeckError(f"--on {quoted(text)} has an empty event between commas")
    rules: dict[str, Rule] = {}
    for word in words:
        rule = parse_rule(word)
        rules.setdefault(rule.text, rule)
    return tuple(rules.values())


def check_url(url: str) -> str:
    """A webhook URL: http or https, with a host, no spaces or control characters. The
    refusal shows it masked."""
    text = (url or "").strip()
    if not text:
        raise ModelDeckError("--webhook needs a URL")
    if has_controls(text) or any(c.isspace() for c in text):
        raise ModelDeckError(
            f"webhook {mask_url(text)} holds spaces or control characters: not a URL"
        )
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        raise ModelDeckError(f"webhook {mask_url(text)} is not a URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ModelDeckError(f"webhook {mask_url(text)}: only http and https URLs are allowed")
    if not parts.hostname:
        raise ModelDeckError(f"webhook {mask_url(text)} has no host")
    if ":" not in parts.hostname:  # not an IPv6 address: a name as DNS takes it
        try:
            parts.hostname.encode("idna")
        except UnicodeError:  # an empty label (a..b), one over 63 characters
            raise ModelDeckError(
                f"webhook {mask_url(text)}: its host is not a name DNS can look up"
            ) from None
    del port
    return text


def mask_url(url: str) -> str:
    """``url`` as it is shown everywhere: the scheme and host (and port), its user
    information, path and query masked: ``https://hooks.slack.com/***``."""
    text = printable(url or "")
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    if ":" in host:  # an IPv6 address goes back into brackets
        host = f"[{host}]"
    user = f"{MASK}@" if "@" in parts.netloc else ""
    secret = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{user}{host}{port}/{MASK if secret else ''}"


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL and its secret parts masked."""
    shown = text.replace(url, mask_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return shown
    for secret in (parts.path, parts.query, parts.netloc.rpartition("@")[0]):
        if len(secret) > 1:
            shown = shown.replace(secret, MASK)
    return shown
