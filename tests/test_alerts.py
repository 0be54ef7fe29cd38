"""Alerts against a real webhook (an HTTP server on 127.0.0.1): what arrives, once, after
retries, without holding up the engine; URLs masked; bad input refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alerts_support import TRICKLE, Webhook, serve_webhook
from cli_support import run_main
from conftest import ROOT, Result, ok, refused
from deploy_support import (
    add_fast_stages,
    approved_version,
    deploy,
    scheduling_deck,
    utc,
    wait_for,
)

from core.clock import FakeClock
from core.engine import Engine
from core.service import Deck

BODY_KEYS = {"event", "project", "deployment", "version", "job", "summary", "details", "at"}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Scoring that fails while a `fail` file sits next to the scored dataset.
FAILING_SCORING = """
def score(context):
    if context.dataset.path.with_name("fail").exists():
        raise RuntimeError("scoring broke on purpose")
    (context.output_dir / "predictions.csv").write_text("row,prediction\\n0,1\\n")
"""


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with serve_webhook() as h:
        yield h


@pytest.fixture
def engine(deck: Deck, project: str, repo: Path) -> Iterator[Engine]:
    folder = add_fast_stages(repo)
    (folder / "scoring.py").write_text(FAILING_SCORING)
    e = Engine(deck, workers=2, poll=0.05)
    try:
        yield e
    finally:
        e.shutdown()


def serve_until(engine: Engine, predicate, timeout: float = 20.0, what: str = "it"):
    """Run engine rounds until ``predicate()`` holds."""

    def step():
        engine.tick()
        return predicate()

    return wait_for(step, timeout, what)


def keep_serving(engine: Engine, seconds: float) -> None:
    """Rounds for ``seconds``: time in which something must not happen (a notice sent
    twice), so no condition to wait for; a wait for one is ``serve_until``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        engine.tick()
        time.sleep(0.05)


def cli_in(capsys: pytest.CaptureFixture[str], home: Path, *argv: str) -> Result:
    return run_main([*argv, "--home", str(home)], capsys)


def add_alert(
    capsys: pytest.CaptureFixture[str], home: Path, project: str, webhook: str, *more: str
) -> Result:
    """``modeldeck alert add PROJECT --webhook WEBHOOK --on failed MORE...``."""
    return cli_in(
        capsys, home, "alert", "add", project, "--webhook", webhook, "--on", "failed", *more
    )


def failing_train(deck: Deck, project: str, message: str = "boom") -> str:
    return deck.train(project, "scripted", "train", {"lines": 1, "fail": message}).id


def test_a_failed_job_is_told_once_with_the_documented_body(
    deck: Deck, engine: Engine, project: str, hook: Webhook, home: Path, capsys
) -> None:
    added = ok(add_alert(capsys, home, project, hook.url("/json"), "--json")).json()
    ok(add_alert(capsys, home, project, hook.url("/chat"), "--format", "slack"))
    good = deck.train(project, "scripted", "train", {"lines": 1})
    bad = failing_train(deck, project, "the data ran out")
    assert engine.run_until_idle(30)
    assert deck.job(good.id).status == "completed" and deck.job(bad).status == "failed"
    serve_until(engine, lambda: hook.bodies("/json") and hook.bodies("/chat"), what="alerts")
    keep_serving(engine, 1.0)  # more rounds, and a new engine on the same database
    engine.shutdown()
    again = Engine(deck, workers=1, poll=0.05)
    try:
        keep_serving(again, 1.0)
    finally:
        again.shutdown()

    [body] = hook.bodies("/json")
    assert set(body) == BODY_KEYS
    assert (body["event"], body["project"], body["job"], body["deployment"]) == (
        "failed",
        "proj",
        bad,
        None,
    )
    assert body["version"] is None  # a training that failed made no version
    assert "the data ran out" in body["details"]["error"]
    assert body["details"]["type"] == "train"
    assert bad in body["summary"] and "failed" in body["summary"]
    assert ISO_MS.match(body["at"])
    [chat] = hook.bodies("/chat")
    assert (
        set(chat) == {"text", "mrkdwn"}
        and bad in chat["text"]
        and "the data ran out" in chat["text"]
    )
    assert chat["text"].startswith("[modeldeck failed] ")
    [request] = [r for r in hook.received if r.path == "/json"]
    assert request.headers["Content-Type"] == "application/json"

    listed = ok(cli_in(capsys, home, "alert", "list", project, "--json")).json()
    mine = next(a for a in listed if a["id"] == added["id"])
    assert mine["last_outcome"] == "delivered" and mine["events"] == ["failed"]
    log = ok(cli_in(capsys, home, "alert", "log", project, "--alert", added["id"], "--json")).json()
    assert [(x["attempt"], x["outcome"], x["status_code"], x["final"]) for x in log] == [
        (1, "delivered", 200, True)
    ]
    assert log[0]["job"] == bad and ISO_MS.match(log[0]["at"])


def test_a_webhook_answering_500_twice_gets_the_alert_on_the_third_try(
    deck: Deck, engine: Engine, project: str, repo: Path, hook: Webhook, home: Path, capsys
) -> None:
    version = approved_version(deck, engine, project)
    dep = deploy(deck, engine, version)
    secret = "/services/T0/B0/s3cr3t-token"
    alert = deck.alerts.add(project, hook.url(secret) + "?sig=abc123", "failed", deployment=dep)
    hook.answers = [500, 500]
    (repo / "data" / "fail").write_text("")
    job = deck.predict(dep)
    assert engine.run_until_idle(30)
    assert deck.job(job.id).status == "failed"
    serve_until(
        engine,
        lambda: any(e.kind == "alert_delivered" for e in deck.deployment_events(dep)),
        timeout=30,
        what="the third try",
    )
    bodies = hook.bodies(secret)
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert (bodies[0]["event"], bodies[0]["deployment"], bodies[0]["job"]) == (
        "failed",
        dep,
        job.id,
    )
    assert bodies[0]["version"] == deck.version(version).model + ":1"
    events = [e for e in deck.deployment_events(dep) if e.kind.startswith("alert_")]
    events.sort(key=lambda e: (e.at, e.kind != "alert_attempt"))
    said = [(e.kind, e.message.split(": ", 1)[1]) for e in events]
    assert said == [
        ("alert_attempt", "try 1 of 3: HTTP 500"),
        ("alert_attempt", "try 2 of 3: HTTP 500"),
        ("alert_attempt", "try 3 of 3: delivered (HTTP 200)"),
        ("alert_delivered", "delivered"),
    ]
    for e in events:  # the URL's path and query never show
        assert "s3cr3t" not in e.message and "abc123" not in e.message
        assert f"http://127.0.0.1:{hook.port}/***" in e.message
    tries = [(d.attempt, d.outcome, d.final) for d in deck.alerts.log(project, alert.id)]
    assert tries == [(1, "error", False), (2, "error", False), (3, "delivered", True)]
    text = ok(cli_in(capsys, home, "alert", "log", project)).out
    assert "HTTP 500" in text and "delivered (HTTP 200)" in text and "s3cr3t" not in text


def test_a_webhook_that_never_answers_does_not_delay_other_jobs(
    deck: Deck, engine: Engine, project: str, hook: Webhook
) -> None:
    """Jobs end, and their notices are found, while a try to a webhook that does not answer
    is still under way: an order of events, not a measured time."""
    hook.default = TRICKLE  # the answer never ends while ``trickling`` is set
    hook.trickling.set()

    def batch(jobs: int = 4) -> None:
        ids = [failing_train(deck, project) for _ in range(jobs)]
        assert engine.run_until_idle(60)
        keep_serving(engine, 0.3)  # the rounds in which their alerts are found
        assert {deck.job(i).status for i in ids} == {"failed"}

    alert = deck.alerts.add(project, hook.url("/hang"), "failed")
    batch(1)  # its notice starts the courier, whose first try hangs
    serve_until(engine, lambda: hook.bodies("/hang"), what="the first try")
    batch()  # while the courier's try hangs
    # Waiting for the webhook in the engine would have held these jobs until the try ended.
    assert hook.open == 1 and deck.alerts.log(project, alert.id) == []
    assert len(hook.bodies("/hang")) == 1  # one try at a time, and it still hangs
    deck.alerts.remove(alert.id)
    batch()
    assert hook.open == 1 and deck.alerts.log(project, alert.id) == []
    # The answer stops coming: the try gives up 5 s later, and that is recorded; the notice
    # is not lost.
    hook.trickling.clear()
    serve_until(
        engine,
        lambda: any(d.error == "no answer within 5s" for d in deck.alerts.log(project, alert.id)),
        timeout=30,
        what="the timeout recorded",
    )


def test_the_url_is_masked_in_lists_errors_and_refusals(
    deck: Deck, project: str, home: Path, capsys
) -> None:
    url = "https://bot:pa55w0rd@hooks.example.com:8443/services/T1/XYZSECRET?token=QQQ"
    shown = "https://***@hooks.example.com:8443/***"
    added = ok(
        cli_in(capsys, home, "alert", "add", project, "--webhook", url, "--on", "failed,missed")
    )
    assert shown in added.out
    for argv in (["alert", "list", project], ["alert", "list", project, "--json"]):
        result = ok(cli_in(capsys, home, *argv))
        assert shown in result.out
        for secret in ("pa55w0rd", "XYZSECRET", "QQQ", "services", "bot:"):
            assert secret not in result.out + result.err
    line = refused(add_alert(capsys, home, project, "ftp://files.example.com/XYZSECRET"))
    assert line == (
        "error: webhook ftp://files.example.com/***: only http and https URLs are allowed"
    )
    line = refused(add_alert(capsys, home, project, "https://h.example.com/XYZ SECRET"))
    assert "SECRET" not in line and "https://h.example.com/***" in line


def test_alert_test_sends_a_sample_and_a_dead_webhook_is_said_masked(
    deck: Deck, project: str, hook: Webhook, home: Path, capsys
) -> None:
    live = deck.alerts.add(project, hook.url("/t/KEY1"), "failed,drift:warn")
    result = ok(cli_in(capsys, home, "alert", "test", live.id))
    assert f"delivered to http://127.0.0.1:{hook.port}/***" in result.out
    [body] = hook.bodies("/t/KEY1")
    assert set(body) == BODY_KEYS and body["event"] == "test" and body["project"] == "proj"
    # Nothing listens on this port: three tries, each said, none showing the URL's path.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    dead = deck.alerts.add(project, f"http://127.0.0.1:{dead_port}/t/KEY2?x=KEY3", "failed")
    result = cli_in(capsys, home, "alert", "test", dead.id)
    assert result.code == 1 and "Traceback" not in result.err
    assert [ln.split(":")[0] for ln in result.err.splitlines()[:3]] == ["try 1", "try 2", "try 3"]
    assert "not delivered" in result.err and "KEY2" not in result.err and "KEY3" not in result.err
    listed = {a.id: a for a in deck.alerts.list(project)}
    assert listed[live.id].last_outcome == "delivered"
    assert listed[dead.id].last_outcome == "not delivered"


def test_refusals_say_one_line_and_change_nothing(
    deck: Deck, engine: Engine, project: str, home: Path, capsys
) -> None:
    version = approved_version(deck, engine, project)
    dep = deploy(deck, engine, version)
    deck.add_project("other", deck.project(project).repo)
    url = "https://hooks.example.com/x"
    cases = {
        ("nope", "--webhook", url, "--on", "failed"): "unknown project 'nope'",
        (project, "--webhook", url, "--on", "exploded"): "unknown event 'exploded'",
        (project, "--webhook", url, "--on", "metric:f1<abc"): "is not a finite number",
        (project, "--webhook", url, "--on", "metric:f1<nan"): "is not a finite number",
        (project, "--webhook", url, "--on", "metric:f1"): "is not a metric threshold",
        (project, "--webhook", url, "--on", ""): "--on needs events",
        (project, "--webhook", url, "--on", "failed,,drift"): "empty event",
        (project, "--webhook", "hooks.example.com/x", "--on", "failed"): "only http and https",
        (project, "--webhook", "http:///x", "--on", "failed"): "has no host",
        # an empty label, one over 63 characters: refused when added, not at each delivery
        (project, "--webhook", "http://a..b/x", "--on", "failed"): "not a name DNS can look",
        (project, "--webhook", f"http://{'a' * 64}.io/", "--on", "failed"): "not a name DNS",
        (project, "--webhook", "", "--on", "failed"): "--webhook needs a URL",
        ("other", "--deployment", dep, "--webhook", url, "--on", "failed"): "is not in project",
        (
            project,
            "--deployment",
            "dep-nothere",
            "--webhook",
            url,
            "--on",
            "failed",
        ): "unknown deployment",
        (project, "--webhook", url, "--on", "failed", "--format", "xml"): "invalid choice",
    }
    for argv, says in cases.items():
        line = refused(cli_in(capsys, home, "alert", "add", *argv))
        assert says in line, (argv, line)
    assert deck.alerts.list(project, include_removed=True) == []
    assert deck.alerts.list("other", include_removed=True) == []
    kept = deck.alerts.add(project, url, "failed")
    assert "unknown alert" in refused(cli_in(capsys, home, "alert", "remove", "al-000000"))
    ok(cli_in(capsys, home, "alert", "remove", kept.id))
    assert "already removed" in refused(cli_in(capsys, home, "alert", "remove", kept.id))
    assert "was removed" in refused(cli_in(capsys, home, "alert", "test", kept.id))
    [gone] = deck.alerts.list(project, include_removed=True)
    assert gone.removed_at is not None and deck.alerts.list(project) == []
    assert json.loads(ok(cli_in(capsys, home, "alert", "list", project, "--json")).out) == []


def test_a_schedule_missed_while_no_engine_ran_is_told(home: Path, repo: Path, hook: Webhook):
    clock = FakeClock(utc(2026, 3, 2, 12, 0))
    fdeck = next(scheduling_deck(home, repo, clock))
    engine = Engine(fdeck, workers=2, poll=0.05)
    try:
        version = approved_version(fdeck, engine, "proj")
        dep = deploy(fdeck, engine, version, "0 * * * *")
        fdeck.alerts.add("proj", hook.url("/missed"), "missed", deployment=dep)
        engine.shutdown()
        clock.set(utc(2026, 3, 2, 18, 30))  # no engine from 12:00 on: 13:00..17:00 missed
        engine = Engine(fdeck, workers=2, poll=0.05)
        serve_until(engine, lambda: hook.bodies("/missed"), what="the missed alert")
        assert engine.run_until_idle(30)
        keep_serving(engine, 0.5)
        [body] = hook.bodies("/missed")
        assert set(body) == BODY_KEYS
        assert (body["event"], body["deployment"], body["project"]) == ("missed", dep, "proj")
        assert body["details"]["kind"] == "schedule_missed"
        assert body["details"]["count"] == 5
        assert body["details"]["first"] == "2026-03-02T13:00:00.000Z"
        assert body["at"] == "2026-03-02T18:30:00.000Z"
        assert "5 fire time(s) missed" in body["summary"]
        kinds = [e.kind for e in fdeck.deployment_events(dep)]
        assert "alert_delivered" in kinds
    finally:
        engine.shutdown()
        fdeck.close()


def test_an_alert_not_yet_delivered_when_the_engine_stops_is_delivered_by_the_next(
    deck: Deck, engine: Engine, project: str, hook: Webhook
) -> None:
    alert = deck.alerts.add(project, hook.url("/later"), "failed")
    hook.answers = [503]
    job = failing_train(deck, project)
    assert engine.run_until_idle(30)
    serve_until(engine, lambda: deck.alerts.log(project, alert.id), what="the first try")
    engine.shutdown()  # during the back-off before the second try
    assert [(d.attempt, d.status_code, d.final) for d in deck.alerts.log(project)] == [
        (1, 503, False)
    ]
    nobody = deck.train(project, "scripted", "train", {"lines": 1, "fail": "while none ran"})
    # No engine serves: a command's own engine (no lease) runs the job and delivers nothing.
    foreground = Engine(deck, only_job=nobody.id, lease=False)
    try:
        foreground.run_until_idle(30)
    finally:
        foreground.shutdown()
    assert deck.job(nobody.id).status == "failed"
    assert len(hook.bodies("/later")) == 1
    fresh = Engine(deck, workers=1, poll=0.05)
    try:
        serve_until(fresh, lambda: len(hook.bodies("/later")) == 3, what="both delivered")
        keep_serving(fresh, 1.0)
    finally:
        fresh.shutdown()
    jobs = [b["job"] for b in hook.bodies("/later")]
    assert sorted(jobs) == sorted([job, job, nobody.id])
    tries = {(d.job, d.attempt, d.outcome) for d in deck.alerts.log(project)}
    assert tries == {(job, 1, "error"), (job, 2, "delivered"), (nobody.id, 1, "delivered")}


def test_an_engine_that_exits_when_idle_tells_the_alerts_of_what_it_ran_first(
    deck: Deck, project: str, repo: Path, hook: Webhook, home: Path, capsys
) -> None:
    """``engine --exit-when-idle`` (a script's engine) is idle once nothing is queued or
    running and the alerts of what it ran are told: a webhook that failed once gets its
    retry before the engine exits, rather than from the next engine, whenever that runs."""
    add_fast_stages(repo)
    ok(add_alert(capsys, home, project, hook.url()))
    hook.answers = [500]  # the first try fails; the retry (a second later) is delivered
    bad = failing_train(deck, project, "no data today")
    done = subprocess.run(
        [sys.executable, "-m", "tui.entry", "engine", "--exit-when-idle", "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert deck.job(bad).status == "failed"
    assert [b["job"] for b in hook.bodies()] == [bad, bad]  # told before it exited
    log = ok(cli_in(capsys, home, "alert", "log", project, "--json")).json()
    assert [(x["attempt"], x["outcome"], x["final"]) for x in log] == [
        (1, "error", False),
        (2, "delivered", True),
    ]


def test_a_chat_gets_the_text_of_a_job_inert(
    deck: Deck, engine: Engine, project: str, hook: Webhook, home: Path, capsys
) -> None:
    """What a job writes in its error reaches a chat as text: no mention of the whole
    channel, no link of its own, no escape sequence; the JSON body keeps it exact."""
    for fmt in ("slack", "teams", "json"):
        path = f"/{fmt}"
        ok(add_alert(capsys, home, project, hook.url(path), "--format", fmt))
    error = (
        "<!channel> see <https://evil.example|the fix> & [this](https://evil.example) \x1b]0;x\x07"
    )
    bad = failing_train(deck, project, error)
    assert engine.run_until_idle(30)
    serve_until(
        engine, lambda: all(hook.bodies(f"/{f}") for f in ("slack", "teams", "json")), what="alerts"
    )
    [chat] = hook.bodies("/slack")
    slack = "&lt;!channel&gt; see &lt;https://evil.example|the fix&gt; &amp; "
    assert slack + "[this](https://evil.example) ^[]0;x^G" in chat["text"]
    assert "<" not in chat["text"] and "\x1b" not in chat["text"]
    assert chat["mrkdwn"] is False  # *bold* and _italics_ shown as typed
    # Teams reads Markdown: no link made of [text](url) there either.
    [teams] = hook.bodies("/teams")
    assert set(teams) == {"text"}
    markdown = "\\[this\\]\\(https://evil.example\\) ^\\[\\]0;x^G"
    assert slack.replace("!", "\\!").replace("|", "\\|") + markdown in teams["text"]
    [body] = hook.bodies("/json")
    assert body["job"] == bad and error in body["details"]["error"]
