"""Delivering a notice: the HTTP request (httpx, 5 s timeout), the body in the alert's
format, and the record of each try: an ``alert_delivery`` row and, when the notice concerns
a deployment, events on the deployment's timeline (each try, then the outcome).

Up to ``TRIES`` tries a notice, ``BACKOFF * 2**(n-1)`` seconds after the n-th failed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from core.alerts.rules import mask_url, scrub
from core.alerts.tables import Alert, AlertDelivery, AlertNotice
from core.models import DeploymentEvent
from core.store import Store
from core.text import printable

TRIES = 3
TIMEOUT = 5.0  # seconds, for each of connecting, sending and reading the answer
BACKOFF = 1.0  # seconds before the 2nd try; doubled before each next one
USER_AGENT = "modeldeck-alerts"


class DeploymentAlertKind:
    """Kinds of the deployment timeline's alert events (a text column: no enum to widen)."""

    attempt = "alert_attempt"
    delivered = "alert_delivered"
    failed = "alert_failed"
    dropped = "alert_dropped"


def text_of(body: dict[str, Any]) -> str:
    """The one message a chat webhook shows: the summary, then where and when."""
    where = [f"project {body.get('project')}"]
    for key in ("deployment", "version", "job"):
        if body.get(key):
            where.append(f"{key} {body[key]}")
    head = f"[modeldeck {body.get('event')}] {body.get('summary')}"
    return f"{head}\n{', '.join(where)} at {body.get('at')}"


# Markdown's punctuation, which Teams reads in a message's text: escaped with a backslash.
_MARKDOWN = re.compile(r"([\\`*_~\[\]()#|!])")


def chat_text(text: str, fmt: str) -> str:
    """Text a chat shows, made inert, so that a job's error cannot mention ``<!channel>``,
    make a link of its own or format the message: its control characters visible (as on a
    terminal), ``&``, ``<`` and ``>`` escaped as Slack asks (Teams reads them as HTML), and
    for Teams, whose text is Markdown, Markdown's punctuation escaped too."""
    text = printable(text, newlines=True)
    if fmt == "teams":
        text = _MARKDOWN.sub(r"\\\1", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(fmt: str, body: dict[str, Any]) -> dict[str, Any]:
    """What is posted: the body itself (``json``: its text exact, escaped by JSON), or
    ``{"text": ...}`` (``slack``/``teams``); for Slack with ``"mrkdwn": false``, so that
    ``*bold*`` or ``_it_`` in a job's error is shown as typed."""
    if fmt == "json":
        return body
    posted: dict[str, Any] = {"text": chat_text(text_of(body), fmt)}
    if fmt == "slack":
        posted["mrkdwn"] = False
    return posted


@dataclass(frozen=True)
class Answer:
    ok: bool
    status_code: int | None
    error: str | None


def post(url: str, fmt: str, body: dict[str, Any], timeout: float = TIMEOUT) -> Answer:
    """POST the notice; a 2xx answer is delivered. Errors are one printable line with the
    URL masked."""
    import httpx  # only an engine that delivers, or ``alert test``, needs it

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            r = client.post(url, json=payload(fmt, body), headers={"User-Agent": USER_AGENT})
    except httpx.TimeoutException:
        return Answer(False, None, f"no answer within {timeout:g}s")
    except Exception as exc:  # a refused connection, a DNS failure, a broken answer
        first = (str(exc).strip().splitlines() or [""])[0]
        return Answer(False, None, scrub(f"{type(exc).__name__}: {first}".rstrip(": "), url))
    if 200 <= r.status_code < 300:
        return Answer(True, r.status_code, None)
    return Answer(False, r.status_code, f"HTTP {r.status_code}")


def tries_so_far(s: Session, notice_id: int) -> tuple[int, bool]:
    """How many tries a notice has had, and whether the last one was final."""
    count = s.exec(
        select(func.count()).select_from(AlertDelivery).where(AlertDelivery.notice_id == notice_id)
    ).one()
    final = s.exec(
        select(AlertDelivery.id).where(
            AlertDelivery.notice_id == notice_id, col(AlertDelivery.final).is_(True)
        )
    ).first()
    return int(count), final is not None


def _timeline(s: Session, notice: AlertNotice, alert: Alert, at: Any, kind: str, text: str) -> None:
    if notice.deployment_id is None:
        return  # a project's deliveries: the ``alert_delivery`` rows (``alert log``)
    s.add(
        DeploymentEvent(
            deployment_id=notice.deployment_id,
            at=at,
            kind=kind,
            message=f"alert {alert.id} ({notice.event}) to {mask_url(alert.webhook)}: {text}",
            details={
                "alert": alert.id,
                "notice": notice.id,
                "event": notice.event,
                "job": notice.job_id,
            },
        )
    )


def record(
    store: Store, notice: AlertNotice, alert: Alert, attempt: int, answer: Answer | None
) -> bool:
    """Record one try (``answer``), or the drop of a notice whose alert was removed
    (``None``); whether it was the last."""
    now = store.now()
    if answer is None:
        outcome, final, said = "dropped", True, "dropped: the alert was removed"
    else:
        outcome = "delivered" if answer.ok else "error"
        final = answer.ok or attempt >= TRIES
        said = f"try {attempt} of {TRIES}: " + (
            f"delivered (HTTP {answer.status_code})" if answer.ok else str(answer.error)
        )
    with store.writer() as s:
        s.add(
            AlertDelivery(
                notice_id=notice.id,
                alert_id=alert.id,
                attempt=attempt,
                at=now,
                outcome=outcome,
                status_code=None if answer is None else answer.status_code,
                error=None if answer is None else answer.error,
                final=final,
            )
        )
        if answer is None:
            _timeline(s, notice, alert, now, DeploymentAlertKind.dropped, said)
        else:
            _timeline(s, notice, alert, now, DeploymentAlertKind.attempt, said)
            if final:
                kind = DeploymentAlertKind.delivered if answer.ok else DeploymentAlertKind.failed
                end = "delivered" if answer.ok else f"not delivered after {attempt} tries"
                _timeline(s, notice, alert, now, kind, end)
        s.commit()
    return final


def try_once(store: Store, notice_id: int, backoff: float = BACKOFF) -> float | None:
    """One try to deliver a notice, recorded; the seconds to wait before the next try, or
    None when there is none (delivered, given up, dropped, or already final)."""
    with store.reader() as s:
        notice = s.get(AlertNotice, notice_id)
        alert = s.get(Alert, notice.alert_id) if notice is not None else None
        if notice is None or alert is None:
            return None
        done, final = tries_so_far(s, notice_id)
    if final or done >= TRIES:
        return None
    if alert.removed_at is not None:
        record(store, notice, alert, done + 1, None)
        return None
    attempt = done + 1
    answer = post(alert.webhook, alert.format, notice.body)
    if record(store, notice, alert, attempt, answer):
        return None
    return backoff * 2 ** (attempt - 1)
