"""A team on one database: who is asking (the authenticated user), who may approve in a
project (approvers, four eyes) and what ran when (``history``).

On SQLite the authenticated user is the operating-system login, one per machine session: two
people are played by two stores on the same data home whose identity (``Store.actor``) is
theirs; the rule is the service's and the engine's, the database is real. The PostgreSQL
cases with real roles are at the end of the file."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import Result, ok, refused
from deploy_support import add_fast_stages

from core.cli import main
from core.clock import FakeClock, iso
from core.engine import Engine
from core.errors import ModelDeckError, permission_refusal
from core.service import Deck
from core.store import Store

LOGIN = pwd.getpwuid(os.getuid()).pw_name


def authenticated() -> tuple[str, str]:
    """Who the test's database authenticates, and how: the role of a PostgreSQL URL in
    ``$MODELDECK_DB`` (the backend the ``home`` fixture chose), else this process's login."""
    url = os.environ.get("MODELDECK_DB") or ""
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        return str(make_url(url).username), "database"
    return LOGIN, "os"


START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def run(home: Path, *args: str, capfd: pytest.CaptureFixture[str]) -> Result:
    """``modeldeck ARGS --home HOME`` in this process (the real CLI, its own Deck)."""
    capfd.readouterr()
    code = main([*args, "--home", str(home)])
    captured = capfd.readouterr()
    return Result(code, captured.out, captured.err)


def deck_as(home: Path, who: str, clock: FakeClock | None = None) -> Deck:
    """A Deck on ``home`` whose store authenticates ``who`` (another person's session)."""
    store = Store(home, clock=clock)
    store.actor = lambda: who  # type: ignore[method-assign]
    return Deck(store=store)


def settle(deck: Deck) -> None:
    engine = Engine(deck, workers=2)
    try:
        assert engine.run_until_idle(60)
    finally:
        engine.shutdown()  # its fork server too: none left behind


@dataclass
class Team:
    home: Path
    clock: FakeClock
    trainer: Deck
    reviewer: Deck
    version: str
    evaluation: str


@pytest.fixture
def team(home: Path, repo: Path, project: str) -> Iterator[Team]:
    """trainer1 trains and evaluates a version of ``scripted`` in project ``proj``."""
    add_fast_stages(repo)
    clock = FakeClock(START)
    trainer = deck_as(home, "trainer1", clock)
    reviewer = deck_as(home, "reviewer1", clock)
    trained = trainer.train(project, "scripted", "train", {"lines": 1})
    settle(trainer)
    version = trainer.job(trained.id).version
    assert version
    clock.advance(minutes=5)
    evaluation = trainer.evaluate(version, "test")
    settle(trainer)
    assert trainer.job(evaluation.id).status == "completed"
    try:
        yield Team(home, clock, trainer, reviewer, version, evaluation.id)
    finally:
        trainer.close()
        reviewer.close()


# -- who is asking --------------------------------------------------------------------------


def test_whoami_is_the_login_of_the_process_not_what_the_environment_says(
    home: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    who, via = authenticated()
    shown = json.loads(ok(run(home, "whoami", "--json", capfd=capfd)).out)
    assert shown == {"user": who, "via": via}
    how = "operating-system login" if via == "os" else "role the database server authenticated"
    assert ok(run(home, "whoami", capfd=capfd)).out.startswith(f"{who} (the {how}")


def test_every_job_and_stop_records_the_authenticated_user(
    deck: Deck, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    who = authenticated()[0]
    job = deck.train(project, "scripted", "train", {})
    assert job.actor == who
    assert deck.events(job.id)[0].details["actor"] == who
    stopped = deck.stop(job.id)
    assert stopped.status == "cancelled"
    asked = [e for e in deck.events(job.id) if e.kind == "stop_requested"]
    assert asked[0].details["by"] == who


# -- who may approve ------------------------------------------------------------------------


def test_project_set_and_show(
    deck: Deck, project: str, home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    who = authenticated()[0]
    shown = json.loads(ok(run(home, "project", "show", "proj", "--json", capfd=capfd)).out)
    assert (shown["approvers"], shown["four_eyes"]) == ([], False)  # today's behaviour
    said = ok(run(home, "project", "set", "proj", "--four-eyes", capfd=capfd))
    assert said.out.strip() == "project proj: four eyes; approvers anyone"
    names = f"ana,{who},ana"
    named = ok(run(home, "project", "set", "proj", "--approvers", names, capfd=capfd))
    # Nobody here can be ana (no such role, or login on SQLite): kept, and said.
    database = authenticated()[1] == "database"
    where = "login role on this database server" if database else "login on this host"
    unknown_ana = f"warning: ana is no {where}: nobody can approve or reject as ana until it is"
    assert named.err.splitlines() == [unknown_ana]
    # A role nobody logs in as (PostgreSQL's own group role pg_monitor) is no one either.
    group = run(home, "project", "set", "proj", "--approvers", f"pg_monitor,{who}", capfd=capfd)
    assert ok(group).err.startswith(f"warning: pg_monitor is no {where}: ")
    ok(run(home, "project", "set", "proj", "--approvers", names, capfd=capfd))
    shown = json.loads(ok(run(home, "projects", "--json", capfd=capfd)).out)[0]
    assert (shown["approvers"], shown["four_eyes"]) == (["ana", who], True)
    text = ok(run(home, "project", "show", "proj", capfd=capfd)).out
    assert f"approvers   ana, {who}" in text and "four eyes   required" in text
    # Refusals change nothing.
    for args, message in (
        (["project", "set", "proj"], "nothing to set"),
        (["project", "set", "proj", "--approvers", "ana,b o"], "approver name 'b o'"),
        (["project", "set", "nope", "--four-eyes"], "unknown project 'nope'"),
    ):
        assert message in refused(run(home, *args, capfd=capfd))
    assert deck.team.rules(project).approvers == ["ana", who]
    ok(run(home, "project", "set", "proj", "--approvers", "", "--no-four-eyes", capfd=capfd))
    rules = deck.team.rules(project)
    assert (rules.approvers, rules.four_eyes) == ([], False)
    # Every change is on the project's timeline, with who made it.
    changes = [e for e in deck.history.timeline(project) if e.kind == "rules"]
    assert [(e.by, e.text) for e in changes] == [
        (who, "set four eyes; approvers anyone"),
        (who, f"set four eyes; approvers ana, {who}"),
        (who, f"set four eyes; approvers pg_monitor, {who}"),
        (who, f"set four eyes; approvers ana, {who}"),
        (who, "set no four eyes; approvers anyone"),
    ]
    # Handing the rules to others is allowed, and said: the setter cannot change them again.
    handed = ok(run(home, "project", "set", "proj", "--approvers", "ana", capfd=capfd))
    assert handed.err.splitlines() == [
        unknown_ana,
        f"warning: you ({who}) are not among its approvers: from now on only they can change "
        "its approvers or four eyes",
    ]
    assert "only ana may" in refused(
        run(home, "project", "set", "proj", "--four-eyes", capfd=capfd)
    )


def test_four_eyes_refuse_the_trainer_and_keep_the_reviewer(team: Team) -> None:
    t, r = team.trainer, team.reviewer
    t.team.set_rules("proj", four_eyes=True)
    jobs_before = t.count_jobs("proj")
    for verb in (t.approve, t.reject):
        with pytest.raises(ModelDeckError) as refusal:
            verb(team.version, "mine is great")
        word = "approve" if verb == t.approve else "reject"
        assert str(refusal.value) == (
            f"trainer1 trained {team.version} and may not {word} it "
            "(four eyes are required in project proj)"
        )
    # Nothing changed: no job, the version still evaluated, no decision recorded.
    assert t.count_jobs("proj") == jobs_before
    assert t.version(team.version).status == "evaluated"
    assert t.version(team.version).approval is None
    job = r.approve(team.version, "checked the holdout")
    assert job.actor == "reviewer1"
    settle(r)
    assert r.job(job.id).status == "completed"
    approval = r.version(team.version).approval
    assert (approval.decision, approval.by) == ("approved", "reviewer1")
    assert [e.job_id for e in approval.evaluations] == [team.evaluation]


def test_only_the_approvers_may_decide(team: Team) -> None:
    t, r = team.trainer, team.reviewer
    rules = r.team.set_rules("proj", approvers=["alice", "reviewer1"])
    assert rules.approvers == ["alice", "reviewer1"]
    with pytest.raises(ModelDeckError) as refusal:
        t.reject(team.version, "no")
    assert str(refusal.value) == (
        f"trainer1 may not reject {team.version} "
        "(only alice, reviewer1 may approve or reject in project proj)"
    )
    # Without four eyes an approver may decide on their own version; the trainer is no
    # approver, so the rule of approvers alone refuses them.
    job = r.reject(team.version, "worse than v0")
    settle(r)
    assert r.job(job.id).status == "completed"
    assert r.version(team.version).approval.by == "reviewer1"
    # Nor may anyone but an approver change who may approve (nothing changes).
    with pytest.raises(ModelDeckError) as refusal:
        t.team.set_rules("proj", approvers=[])
    assert str(refusal.value) == (
        "trainer1 may not change who may approve in project proj (only alice, reviewer1 may)"
    )
    assert t.team.rules("proj").approvers == ["alice", "reviewer1"]
    assert r.team.set_rules("proj", approvers=[]).approvers == []


def test_a_decision_queued_before_the_rules_changed_fails_when_it_runs(team: Team) -> None:
    """The engine asks the same rule again when the decision runs, with the job's actor."""
    r = team.reviewer
    job = r.approve(team.version, "looks right")
    team.trainer.team.set_rules("proj", approvers=["alice"])
    settle(r)
    done = r.job(job.id)
    assert done.status == "failed"
    assert done.error == (
        f"reviewer1 may not approve {team.version} "
        "(only alice may approve or reject in project proj)"
    )
    assert r.version(team.version).status == "evaluated"
    assert r.version(team.version).approval is None


def test_the_cli_refuses_the_trainer_in_one_line(
    deck: Deck, project: str, repo: Path, home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    add_fast_stages(repo)
    who = authenticated()[0]
    trained = json.loads(
        ok(run(home, "train", "proj", "scripted", "--dataset", "train", "--json", capfd=capfd)).out
    )
    assert trained["actor"] == who
    version = trained["version"]
    ok(run(home, "evaluate", version, "--dataset", "test", capfd=capfd))
    ok(run(home, "project", "set", "proj", "--four-eyes", capfd=capfd))
    line = refused(run(home, "approve", version, "--reason", "mine", capfd=capfd))
    assert line == (
        f"error: {who} trained {version} and may not approve it "
        "(four eyes are required in project proj)"
    )
    assert deck.version(version).status == "evaluated"
    ok(run(home, "project", "set", "proj", "--no-four-eyes", capfd=capfd))
    ok(run(home, "approve", version, "--reason", "alone on this box", capfd=capfd))
    assert deck.version(version).approval.by == who


# -- what ran when --------------------------------------------------------------------------


@pytest.fixture
def lived(team: Team) -> Team:
    """reviewer1 approves; deployer ``ops1`` deploys at +10 min; retired at +60 min."""
    clock, r = team.clock, team.reviewer
    clock.advance(minutes=2)
    r.approve(team.version, "beats the baseline")
    settle(r)
    clock.advance(minutes=8)
    ops = deck_as(team.home, "ops1", clock)
    try:
        ops.deploy(team.version, "score", "0 6 * * *", "Europe/Paris")
        settle(ops)
        clock.advance(minutes=10)
        ops.set_schedule(ops.deployments("proj")[0].id, "0 7 * * *")  # an hour later from then
        clock.advance(minutes=40)
        ops.retire(ops.deployments("proj")[0].id, "replaced")
        settle(ops)
    finally:
        ops.close()
    return team


def test_history_at_a_moment_shows_where_the_deployment_came_from(
    lived: Team, repo: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home, version = lived.home, lived.version
    deployed = START + timedelta(minutes=5 + 2 + 8)
    during = iso(deployed + timedelta(minutes=20))
    shown = json.loads(ok(run(home, "history", "proj", "--at", during, "--json", capfd=capfd)).out)
    assert len(shown) == 1
    d = shown[0]
    detail = lived.reviewer.version_detail(version)
    sha = hashlib.sha256((repo / "data" / "train.csv").read_bytes()).hexdigest()
    assert (d["version"], d["model"], d["scores"]) == (version, "scripted", "score")
    assert (d["deployed_by"], d["deployed_at"]) == ("ops1", iso(deployed))
    assert d["trained"]["by"] == "trainer1" and d["trained"]["how"] == "trained"
    assert d["trained"]["dataset"] == "train" and d["trained"]["dataset_sha256"] == sha
    assert d["trained"]["code_fingerprint"] == detail.version.code_fingerprint
    assert d["trained"]["code_fingerprint"]
    approval = d["approval"]
    assert (approval["by"], approval["reason"]) == ("reviewer1", "beats the baseline")
    assert [e["job_id"] for e in approval["evaluations"]] == [lived.evaluation]
    assert approval["evaluations"][0]["metrics"] == {"accuracy": 1.0}
    assert (d["retired_by"], d["retire_reason"]) == ("ops1", "replaced")  # later on
    # Its schedule as it was then: 06:00 before the change at +10 minutes, 07:00 after it.
    assert (d["schedule"], d["timezone"]) == ("0 7 * * *", "Europe/Paris")
    early = iso(deployed + timedelta(minutes=5))
    [before] = json.loads(
        ok(run(home, "history", "proj", "--at", early, "--json", capfd=capfd)).out
    )
    assert (before["schedule"], before["timezone"]) == ("0 6 * * *", "Europe/Paris")
    # The same moment with an offset, and without a zone (UTC), give the same answer.
    paris = (deployed + timedelta(minutes=20)).astimezone(
        datetime.fromisoformat("2026-03-02T00:00+01:00").tzinfo
    )
    for at in (paris.isoformat(), during.rstrip("Z")):
        again = json.loads(ok(run(home, "history", "proj", "--at", at, "--json", capfd=capfd)).out)
        assert again == shown
    # Before it was deployed, and after it was retired: nothing active.
    for at in (iso(deployed - timedelta(seconds=1)), iso(deployed + timedelta(minutes=51))):
        assert (
            json.loads(ok(run(home, "history", "proj", "--at", at, "--json", capfd=capfd)).out)
            == []
        )
    text = ok(run(home, "history", "proj", "--at", during, capfd=capfd)).out
    assert "approved" in text and "by reviewer1: beats the baseline" in text
    assert f"on {lived.evaluation} of test: accuracy=1.0000" in text
    assert "deployed" in text and "by ops1" in text
    assert f"by trainer1 on train (job {d['trained']['job_id']})" in text  # what trained it
    assert refused(run(home, "history", "proj", "--at", "last tuesday", capfd=capfd)).startswith(
        "error: --at takes an ISO 8601 time"
    )


def test_history_timeline(lived: Team, capfd: pytest.CaptureFixture[str]) -> None:
    lived.clock.advance(minutes=1)
    lived.trainer.team.set_rules("proj", four_eyes=True)
    shown = json.loads(ok(run(lived.home, "history", "proj", "--json", capfd=capfd)).out)
    assert [(e["kind"], e["by"], e["version"]) for e in shown] == [
        ("approved", "reviewer1", lived.version),
        ("deployed", "ops1", lived.version),
        ("retired", "ops1", lived.version),
        ("rules", "trainer1", None),
    ]
    assert [e["text"] for e in shown] == [
        "beats the baseline",
        "scores score, schedule 0 6 * * * (Europe/Paris)",
        "replaced",
        "set four eyes; approvers anyone",
    ]
    assert shown[0]["at"] == iso(START + timedelta(minutes=7))
    assert all(e["at"].endswith("Z") and len(e["at"]) == 24 for e in shown)
    text = ok(run(lived.home, "history", "proj", capfd=capfd)).out.splitlines()
    assert text[0].split() == ["TIME", "WHAT", "VERSION", "BY", "WHY", "DEPLOYMENT"]
    assert "approved  scripted v1  reviewer1  beats the baseline" in text[1]


# -- PostgreSQL: real roles --------------------------------------------------------------------

APPEND_ONLY = (
    "approval",
    "job_event",
    "deployment_event",
    "project_event",
    "metrics_record",
    "statistics_record",
    "log_chunk",
)


def team_grants(database: str, group: str = "modeldeck_users") -> list[str]:
    """The statements README.md shows: a group role that may use the schema but never change
    or remove a row of the append-only tables, and the team's login roles in it."""
    return [
        f"DO $$ BEGIN CREATE ROLE {group} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f'GRANT CONNECT ON DATABASE "{database}" TO {group}',
        f"GRANT USAGE ON SCHEMA public TO {group}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {group}",
        f"REVOKE UPDATE, DELETE ON {', '.join(APPEND_ONLY)} FROM {group}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {group}",
        *(
            f"DO $$ BEGIN CREATE ROLE {who} LOGIN IN ROLE {group}; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            for who in ("trainer1", "reviewer1")
        ),
        *(f"GRANT {group} TO {who}" for who in ("trainer1", "reviewer1")),
    ]


@dataclass
class PgDatabase:
    url: Any  # the database's URL (SQLAlchemy's), as its owner (the admin role)
    admin: Any  # psycopg connection to the database, as its owner

    def as_role(self, role: str) -> str:
        """The URL of the database for ``role`` (trust authentication: no password)."""
        return self.url.set(username=role, password=None).render_as_string(hide_password=False)


@pytest.fixture
def pg_database(pg_server: Any) -> Iterator[PgDatabase]:
    """A fresh PostgreSQL database of the run's server (``$MODELDECK_TEST_PG``), its schema
    owned by the server's admin role, the team's roles granted as README.md says; dropped
    afterwards. The roles are the server's and stay (they own nothing)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(pg_server.fresh())
    admin = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
    for statement in team_grants(str(url.database)):
        admin.execute(statement)
    try:
        yield PgDatabase(url, admin)
    finally:
        admin.close()
        pg_server.drop(url.render_as_string(hide_password=False))


def trained_and_evaluated(deck: Deck, repo: Path) -> tuple[str, str]:
    """Project churn (its train and test datasets) with a version that ``deck``'s user
    trained and evaluated, both jobs completed: the training job's id and the version's."""
    deck.add_project("churn", repo)
    deck.add_dataset("churn", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("churn", "test", repo / "data" / "test.csv", target="label")
    trained = deck.train("churn", "scripted", "train", {"lines": 1})
    settle(deck)
    version = deck.job(trained.id).version
    assert version
    evaluated = deck.evaluate(version, "test")
    settle(deck)
    assert deck.job(evaluated.id).status == "completed"
    return trained.id, version


def test_four_eyes_with_real_roles_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, repo: Path
) -> None:
    add_fast_stages(repo)
    trainer = Deck(home=tmp_path / "trainer", db=pg_database.as_role("trainer1"))
    reviewer = Deck(home=tmp_path / "reviewer", db=pg_database.as_role("reviewer1"))
    try:
        assert trainer.team.whoami().to_json() == {"user": "trainer1", "via": "database"}
        trained, version = trained_and_evaluated(trainer, repo)
        assert trainer.job(trained).actor == "trainer1"
        reviewer.team.set_rules("churn", four_eyes=True)
        with pytest.raises(ModelDeckError) as refusal:
            trainer.approve(version, "mine is great")
        assert str(refusal.value) == (
            f"trainer1 trained {version} and may not approve it "
            "(four eyes are required in project churn)"
        )
        assert trainer.version(version).status == "evaluated"
        # Acting as the group role (SET ROLE in the URL's options) is still trainer1.
        switched = pg_database.as_role("trainer1") + "?options=-c%20role%3Dmodeldeck_users"
        disguised = Deck(home=tmp_path / "trainer", db=switched)
        try:
            assert disguised.team.whoami().to_json() == {"user": "trainer1", "via": "database"}
            with pytest.raises(ModelDeckError, match=r"^trainer1 trained "):
                disguised.approve(version, "as the group")
        finally:
            disguised.close()
        assert trainer.version(version).status == "evaluated"
        approved = reviewer.approve(version, "checked on the holdout")
        assert approved.actor == "reviewer1"
        settle(reviewer)
        assert reviewer.job(approved.id).status == "completed"
        approval = reviewer.version(version).approval
        assert (approval.decision, approval.by) == ("approved", "reviewer1")
        assert [e.by for e in reviewer.history.timeline("churn") if e.kind != "rules"] == [
            "reviewer1"
        ]
    finally:
        trainer.close()
        reviewer.close()


def test_a_member_cannot_forge_a_decision_with_sql_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, repo: Path
) -> None:
    """Engines write decisions for the users whose jobs they run, so members may insert
    approvals and set versions' statuses; the server still holds a member who bypasses
    modeldeck to what the CLI checks. An engine under another member's role still records
    the reviewer's decision in the reviewer's name."""
    import psycopg

    add_fast_stages(repo)
    trainer = Deck(home=tmp_path / "trainer", db=pg_database.as_role("trainer1"))
    reviewer = Deck(home=tmp_path / "reviewer", db=pg_database.as_role("reviewer1"))
    try:
        trained, version = trained_and_evaluated(trainer, repo)
        reviewer.team.set_rules("churn", four_eyes=True)
        url = pg_database.url.set(drivername="postgresql", username="trainer1")
        with psycopg.connect(url.render_as_string(False), autocommit=True) as member:
            refused_ = pytest.raises(psycopg.errors.InsufficientPrivilege)

            def approval(job_id: str, by: str) -> None:
                member.execute(
                    "INSERT INTO approval (version_id, job_id, decision, reason, by, at) "
                    "VALUES (%s, %s, 'approved', 'forged', %s, now())",
                    (version, job_id, by),
                )

            def job(job_id: str, actor: str) -> None:
                """A queued approve job of ``actor``: the training's row, changed."""
                member.execute(
                    "INSERT INTO job SELECT (jsonb_populate_record(NULL::job, to_jsonb(j) "
                    "|| jsonb_build_object('id', %s::text, 'type', 'approve', 'status', "
                    "'queued', 'version_id', %s::text, 'actor', %s::text))).* "
                    "FROM job j WHERE id = %s",
                    (job_id, version, actor, trained),
                )

            with refused_ as in_their_name:  # a job in the reviewer's name
                job("j-forged-as-reviewer", "reviewer1")
            assert "trainer1 may not make a job in the name of reviewer1" in str(
                in_their_name.value
            )
            with refused_ as no_job:  # an approval in the reviewer's name, no job of theirs
                approval(trained, "reviewer1")
            assert "record of its own approve or reject job" in str(no_job.value)
            job("j-forged-own", "trainer1")  # their own job: theirs to make
            with refused_ as own:  # ... but four eyes hold on the server too
                approval("j-forged-own", "trainer1")
            assert "four eyes are required in project churn" in str(own.value)
            with refused_ as status:  # no approval on record: no approved status
                member.execute("UPDATE model_version SET status = 'approved'")
            assert f"version {version} is approved only with its approval" in str(status.value)
            with refused_ as skipped:  # nor deployed without being approved first
                member.execute("UPDATE model_version SET status = 'deployed'")
            assert "becomes deployed only from approved or deployed, not from evaluated" in str(
                skipped.value
            )
            trainer.add_project("lax", repo)  # a project without rules
            lax = "(SELECT id FROM project WHERE name = 'lax')"
            # Not by taking the version away from its maker or out of its project's rules,
            for move in (
                "UPDATE model_version SET job_id = NULL",
                f"UPDATE model SET project_id = {lax}",
            ):
                with refused_ as moved:
                    member.execute(move)
                assert "and what made it are kept" in str(moved.value)
            # nor by an approve job of this version filed under the lax project.
            member.execute(f"UPDATE job SET project_id = {lax} WHERE id = 'j-forged-own'")
            with refused_ as elsewhere:
                approval("j-forged-own", "trainer1")
            assert "record of its own approve or reject job" in str(elsewhere.value)
            member.execute("DELETE FROM job WHERE id = 'j-forged-own'")
        assert trainer.version(version).status == "evaluated"
        assert pg_database.admin.execute("SELECT count(*) FROM approval").fetchone() == (0,)
        # Through modeldeck: reviewer1 decides, an engine under trainer1's role records it.
        approved = reviewer.approve(version, "checked on the holdout")
        settle(trainer)
        assert trainer.job(approved.id).status == "completed"
        approval_ = trainer.version(version).approval
        assert (trainer.version(version).status, approval_.by) == ("approved", "reviewer1")
    finally:
        trainer.close()
        reviewer.close()


def test_a_member_cannot_forge_a_deployment_with_sql_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, repo: Path
) -> None:
    """Engines make deployments for the users whose deploy jobs they run, so members may
    insert them; the server still refuses a deployment of a version nobody approved, one
    that is not its own deploy job's, a second one of a job, and moving or reviving one."""
    import psycopg

    add_fast_stages(repo)
    trainer = Deck(home=tmp_path / "trainer", db=pg_database.as_role("trainer1"))
    reviewer = Deck(home=tmp_path / "reviewer", db=pg_database.as_role("reviewer1"))
    try:
        trained, version = trained_and_evaluated(trainer, repo)
        trainer.add_dataset("churn", "score", repo / "data" / "score.csv")
        url = pg_database.url.set(drivername="postgresql", username="trainer1")
        with psycopg.connect(url.render_as_string(False), autocommit=True) as member:
            refused_ = pytest.raises(psycopg.errors.InsufficientPrivilege)
            score = "(SELECT id FROM dataset WHERE name = 'score')"

            def deploy_job(job_id: str) -> None:
                """A deploy job of trainer1's (theirs to make) on the score dataset."""
                member.execute(
                    "INSERT INTO job SELECT (jsonb_populate_record(NULL::job, to_jsonb(j) "
                    "|| jsonb_build_object('id', %s::text, 'type', 'deploy', 'status', "
                    "'running', 'version_id', %s::text, 'dataset_id', "
                    f"{score}))).* FROM job j WHERE id = %s",
                    (job_id, version, trained),
                )

            def deployment(dep_id: str, job_id: str | None, dataset: str = score) -> None:
                member.execute(
                    "INSERT INTO deployment (id, project_id, version_id, dataset_id, status, "
                    "timezone, paused, grace_seconds, created_at, job_id) SELECT %s, "
                    f"project_id, %s, {dataset}, 'active', 'UTC', false, 3600, now(), %s "
                    "FROM job WHERE id = %s",
                    (dep_id, version, job_id, trained),
                )

            deploy_job("j-forged-deploy")
            with refused_ as unapproved:  # its own deploy job, but nobody approved it
                deployment("dep-forged", "j-forged-deploy")
            assert f"version {version} is evaluated, not approved" in str(unapproved.value)
            with refused_ as no_job:  # no deploy job at all: the training's id
                deployment("dep-forged", trained)
            assert "made active by its own deploy job" in str(no_job.value)
            member.execute("DELETE FROM job WHERE id = 'j-forged-deploy'")
        assert pg_database.admin.execute("SELECT count(*) FROM deployment").fetchone() == (0,)
        # Through modeldeck: approved by the reviewer, deployed by the trainer, an engine
        # under the trainer's role makes the deployment.
        reviewer.approve(version, "checked")
        settle(trainer)
        deployed = trainer.deploy(version, "score")
        settle(trainer)
        assert trainer.job(deployed.id).status == "completed"
        [active] = trainer.deployments("churn")
        with psycopg.connect(url.render_as_string(False), autocommit=True) as member:
            with refused_ as again:  # a second deployment of the same deploy job
                deployment("dep-second", deployed.id)
            assert f"job {deployed.id} has made its deployment already" in str(again.value)
            test = "(SELECT id FROM dataset WHERE name = 'test')"
            with refused_ as moved:
                member.execute(f"UPDATE deployment SET dataset_id = {test}")
            assert f"what deployment {active.id} serves is kept" in str(moved.value)
        trainer.retire(active.id, "replaced")
        settle(trainer)
        with psycopg.connect(url.render_as_string(False), autocommit=True) as member:
            with refused_ as revived:
                member.execute("UPDATE deployment SET status = 'active', retired_at = NULL")
            assert "a retired deployment stays retired" in str(revived.value)
        [retired] = trainer.deployments("churn")
        assert (retired.id, retired.status) == (active.id, "retired")
    finally:
        trainer.close()
        reviewer.close()


def test_approvals_and_events_are_append_only_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, repo: Path
) -> None:
    import psycopg

    add_fast_stages(repo)
    deck = Deck(home=tmp_path / "home", db=pg_database.as_role("reviewer1"))
    try:
        _, version = trained_and_evaluated(deck, repo)
        deck.add_dataset("churn", "score", repo / "data" / "score.csv")
        deck.team.set_rules("churn", approvers=["reviewer1"])
        deck.approve(version, "fine")
        settle(deck)
        deck.deploy(version, "score")
        settle(deck)
        assert deck.deployments("churn")[0].status == "active"
    finally:
        deck.close()
    tampering = {
        "approval": "UPDATE approval SET by = 'trainer1', reason = 'rubber stamp'",
        "job_event": "UPDATE job_event SET message = 'nothing happened'",
        "deployment_event": "DELETE FROM deployment_event",
        "project_event": "DELETE FROM project_event",
        "metrics_record": "UPDATE metrics_record SET metrics = '{}'",
        "statistics_record": "DELETE FROM statistics_record",
        "log_chunk": "UPDATE log_chunk SET data = ''::bytea",
    }
    counts = f"SELECT {', '.join(f'(SELECT count(*) FROM {t})' for t in tampering)}"
    before = pg_database.admin.execute(counts).fetchone()
    kept = pg_database.admin.execute("SELECT by, reason FROM approval").fetchall()
    assert kept == [("reviewer1", "fine")]
    # A team member's own connection: refused by the grants (and the triggers behind them).
    with psycopg.connect(
        pg_database.url.set(drivername="postgresql", username="reviewer1").render_as_string(False),
        autocommit=True,
    ) as member:
        for table, statement in tampering.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused_:
                member.execute(statement)
            assert table in str(refused_.value)
            said = str(permission_refusal(SimpleNamespace(orig=refused_.value)))
            assert said.startswith("the database refused this role: permission denied for ")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            member.execute("TRUNCATE approval")
    # Even the role that owns the tables: the triggers refuse it.
    for table, statement in tampering.items():
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused_:
            pg_database.admin.execute(statement)
        assert f"{table} is append-only" in str(refused_.value)
        # modeldeck's own rule: said as it is, without advice about grants
        said = str(permission_refusal(SimpleNamespace(orig=refused_.value)))
        assert said.startswith(f"{table} is append-only") and "GRANT" not in said
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg_database.admin.execute("TRUNCATE job_event")
    # Who made a job is kept: nobody rewrites it (the job's other columns change as it runs).
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="who made job"):
        pg_database.admin.execute("UPDATE job SET actor = 'trainer1'")
    pg_database.admin.execute("UPDATE job SET error = error")  # the rest as before
    assert {a for (a,) in pg_database.admin.execute("SELECT actor FROM job")} == {"reviewer1"}
    assert pg_database.admin.execute(counts).fetchone() == before
    assert pg_database.admin.execute("SELECT by, reason FROM approval").fetchall() == kept
    assert min(before) > 0  # every table had rows to protect


def test_the_rules_change_only_as_project_set_changes_them_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, repo: Path
) -> None:
    """A member's grants let them update the project table; they still cannot turn four eyes
    off or name other approvers by a direct UPDATE: not without being an approver, and not
    without the change on the project's timeline."""
    import psycopg

    trainer = Deck(home=tmp_path / "trainer", db=pg_database.as_role("trainer1"))
    reviewer = Deck(home=tmp_path / "reviewer", db=pg_database.as_role("reviewer1"))
    try:
        trainer.add_project("churn", repo)
        trainer.team.set_rules("churn", four_eyes=True)  # anyone may, while none are named

        def member(role: str) -> psycopg.Connection:
            url = pg_database.url.set(drivername="postgresql", username=role)
            return psycopg.connect(url.render_as_string(False), autocommit=True)

        unrecorded = pytest.raises(psycopg.errors.InsufficientPrivilege, match="timeline")
        with member("trainer1") as conn, unrecorded:  # though anyone may change them now
            conn.execute("UPDATE project SET four_eyes = false")
        reviewer.team.set_rules("churn", approvers=["reviewer1"])
        not_approver = pytest.raises(psycopg.errors.InsufficientPrivilege, match="only")
        with member("trainer1") as conn:  # not an approver: refused even with a record
            with not_approver, conn.transaction():
                conn.execute(
                    "INSERT INTO project_event (project_id, at, by, kind, message, details) "
                    "SELECT id, now(), 'trainer1', 'policy_changed', 'x', '{}' FROM project"
                )
                conn.execute("UPDATE project SET four_eyes = false, approvers = NULL")
            conn.execute("UPDATE project SET repo = repo")  # other columns: as before
        assert trainer.team.rules("churn").to_json() == reviewer.team.rules("churn").to_json()
        assert reviewer.team.rules("churn").four_eyes is True
        reviewer.team.set_rules("churn", approvers=[], four_eyes=False)  # through the app: fine
        assert trainer.team.rules("churn").four_eyes is False
    finally:
        trainer.close()
        reviewer.close()


def test_a_role_without_the_grants_is_refused_in_one_line_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A team member's login made before the README's GRANTs were run for it: one line that
    says what to do, not a traceback."""
    Deck(home=tmp_path / "owner", db=pg_database.url.render_as_string(False)).close()
    pg_database.admin.execute(
        "DO $$ BEGIN CREATE ROLE modeldeck_nogrants LOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    url = pg_database.as_role("modeldeck_nogrants")
    for args in (("whoami",), ("projects", "--json")):
        r = run(tmp_path / "new", *args, "--db", url, capfd=capfd)
        assert r.code == 2 and r.out == ""
        [line] = r.err.splitlines()
        assert line.startswith("error: the database refused this role: permission denied for "), (
            line
        )
        assert "GRANTs in the README" in line


def test_a_member_on_a_schema_behind_is_told_the_owner_upgrades_it_on_postgresql(
    pg_database: PgDatabase, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A member's newer modeldeck on a schema the owner has not upgraded yet: it cannot
    migrate it (the owner's tables), and says who can, not that grants are missing."""
    Deck(home=tmp_path / "owner", db=pg_database.url.render_as_string(False)).close()
    head = pg_database.admin.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    previous = f"{int(head) - 1:04d}"
    pg_database.admin.execute(f"UPDATE alembic_version SET version_num = '{previous}'")
    r = run(tmp_path / "member", "projects", "--db", pg_database.as_role("trainer1"), capfd=capfd)
    assert r.code == 2 and r.out == ""
    [line] = r.err.splitlines()
    assert line == (
        f"error: the database's schema is at revision {previous} and this modeldeck needs "
        f"{head}, but this role may not change it: the role that owns the tables runs "
        "`modeldeck db upgrade`"
    ), line


def test_history_at_a_time_it_printed_finds_what_happened_then(
    deck: Deck, project: str, repo: Path, new_engine: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """A deployment's time as history's JSON gives it (to the millisecond; kept to the
    microsecond): ``--at`` that time finds it active (it did not), and says the time as
    given; a year before 1000 is shown with its four digits."""
    from deploy_support import approved_version, deploy

    add_fast_stages(repo)
    engine = new_engine(deck, workers=1)
    deployment = deploy(deck, engine, approved_version(deck, engine, project))
    home = deck.store.home
    timeline = json.loads(ok(run(home, "history", project, "--json", capfd=capfd)).out)
    [at] = [e["at"] for e in timeline if e["kind"] == "deployed"]
    [active] = json.loads(ok(run(home, "history", project, "--at", at, "--json", capfd=capfd)).out)
    assert active["id"] == deployment
    text = ok(run(home, "history", project, "--at", at, capfd=capfd)).out.splitlines()[0]
    shown = datetime.fromisoformat(at).astimezone()
    assert f"{shown:%H:%M:%S}.{at[20:23]} " in text and text.endswith(": 1"), text
    before = iso(datetime.fromisoformat(at) - timedelta(milliseconds=1))
    assert (
        json.loads(ok(run(home, "history", project, "--at", before, "--json", capfd=capfd)).out)
        == []
    )
    early = ok(run(home, "history", project, "--at", "0002-03-04T00:00Z", capfd=capfd)).out
    assert early.startswith(f"deployments of {project} active at 0002-03-0"), early
