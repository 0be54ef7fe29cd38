"""The job-kinds registry (core/kinds.py): every job type has a whole entry, and the entry
says what the engine, the runner, the CLI and the TUI really do with a job of that type."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPTED_TRAINING, write_csv, write_model
from deploy_support import add_fast_stages
from sqlalchemy import text

from core import runner
from core.engine import Engine
from core.errors import ModelDeckError
from core.events import JOB_PROCESS_KINDS, DeploymentEventKind, JobEventKind
from core.kinds import ENGINE_PARAMS, IMPORT_FORMATS, KINDS, rerun
from core.lifecycle import RULES, JobStatus, JobType
from core.service import IMPORT_FORMATS as DECK_IMPORT_FORMATS
from core.service import Deck
from core.text import local
from core.views import JobView
from tui.tabs.deployments import DeploymentsPane
from tui.tabs.models import ModelsPane

# -- the entries --------------------------------------------------------------------------


def test_every_job_type_has_an_entry_and_nothing_else_does() -> None:
    """Adding a member to JobType without an entry in KINDS fails here."""
    missing = sorted(t.value for t in JobType if t not in KINDS)
    assert missing == [], f"job types without an entry in core.kinds.KINDS: {missing}"
    assert set(KINDS) == set(JobType)
    assert all(kind.type is t for t, kind in KINDS.items())


@pytest.mark.parametrize("job_type", list(JobType), ids=lambda t: t.value)
def test_each_entry_is_complete(job_type: JobType) -> None:
    kind = KINDS[job_type]
    assert kind.rule is RULES[job_type]  # one lifecycle table: RULES
    if kind.runs_code:
        assert kind.apply_result is not None and kind.apply_inline is None
        assert kind.spec is not None and kind.runner is not None
        assert kind.spec.entry or kind.spec.builtin  # it runs something
    else:
        assert kind.apply_inline is not None and kind.apply_result is None
        assert kind.spec is None and kind.runner is None
    assert callable(getattr(Deck, kind.submit, None)), kind.submit
    assert len(set(kind.params)) == len(kind.params)
    assert not set(kind.params) & set(ENGINE_PARAMS)
    assert callable(kind.check_params) and callable(kind.rerun) and callable(kind.summary)
    verb = kind.verb
    assert verb.key and verb.action and verb.label and verb.binding.startswith(f"{verb.pane}.")


def test_the_runners_table_and_the_registry_agree() -> None:
    """The runner keeps its own table (it imports nothing of modeldeck's): the same kinds
    run code in both, each through the function its entry names."""
    assert set(runner.RUNNERS) == {t.value for t, k in KINDS.items() if k.runs_code}
    for t, kind in KINDS.items():
        if kind.runner is not None:
            assert getattr(runner, kind.runner) is runner.RUNNERS[t.value], t


def test_a_kind_that_runs_no_code_has_no_runner() -> None:
    with pytest.raises(ValueError, match="job type 'approve' runs no code"):
        runner.run({"type": "approve", "code_dir": None}, None)  # type: ignore[arg-type]


PANES: dict[str, Any] = {"models": ModelsPane, "deployments": DeploymentsPane}


@pytest.mark.parametrize("job_type", list(JobType), ids=lambda t: t.value)
def test_each_verb_is_the_key_the_tui_shows(job_type: JobType) -> None:
    verb = KINDS[job_type].verb
    pane = PANES[verb.pane]
    bindings = {b.id: b for b in pane.BINDINGS}
    assert verb.binding in bindings, f"{pane.__name__} has no binding {verb.binding}"
    b = bindings[verb.binding]
    assert (b.key, b.action, b.description) == (verb.key, verb.action, verb.label)
    assert callable(getattr(pane, f"action_{verb.action}", None))


def test_the_import_formats_are_the_decks() -> None:
    assert IMPORT_FORMATS == DECK_IMPORT_FORMATS  # one tuple, re-exported


# -- checks of parameters: the same refusals as the Deck's verbs -----------------------------


def _refusal(call: Callable[[], Any]) -> str:
    with pytest.raises(ModelDeckError) as info:
        call()
    return str(info.value)


def test_params_checks_refuse_what_the_verbs_refuse_in_the_same_words(
    deck: Deck, project: str, repo: Path
) -> None:
    model_file = repo / "data" / "train.csv"  # any existing file: refused on its format
    cases: list[tuple[Callable[[], Any], JobType, dict[str, Any]]] = [
        (lambda: deck.approve("v-none", "  "), JobType.approve, {"reason": "  "}),
        (lambda: deck.reject("v-none", ""), JobType.reject, {"reason": ""}),
        (
            lambda: deck.deploy("v-none", "score", "every day"),
            JobType.deploy,
            {"schedule": "every day", "timezone": "UTC"},
        ),
        (
            lambda: deck.deploy("v-none", "score", "0 3 * * *", "Mars/Olympus"),
            JobType.deploy,
            {"schedule": "0 3 * * *", "timezone": "Mars/Olympus"},
        ),
        (
            lambda: deck.import_model(project, "m", "ftp://example.com/m.joblib"),
            JobType.import_,
            {"model": "m", "source": "ftp://example.com/m.joblib", "format": "joblib"},
        ),
        (
            lambda: deck.import_model(project, "m", str(model_file), "zip"),
            JobType.import_,
            {"model": "m", "source": str(model_file), "format": "zip"},
        ),
    ]
    for verb, job_type, params in cases:
        said = _refusal(verb)
        with pytest.raises(ModelDeckError) as info:
            KINDS[job_type].check(params)
        assert str(info.value) == said, (job_type, params)


def test_a_parameter_no_kind_stores_is_refused() -> None:
    said = _refusal(lambda: KINDS[JobType.evaluate].check({"reason": "why not"}))
    assert said == "evaluate jobs take no parameter 'reason'"
    KINDS[JobType.evaluate].check({"dataset_file": {"sha256": "0" * 64}})  # the engine's own


# -- every kind through the engine --------------------------------------------------------


@dataclass
class Tour:
    """A data home where a job of every kind ran (``jobs``: by a name, all completed)."""

    deck: Deck
    repo: Path
    jobs: dict[str, JobView] = field(default_factory=dict)

    def run(self, name: str, submit: Callable[[], JobView], engine: Engine) -> JobView:
        job = submit()
        assert engine.run_until_idle(60)
        final = self.deck.job(job.id)
        assert final.status == JobStatus.completed.value, final
        self.jobs[name] = final
        return final


def _model_file(path: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x = [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    joblib.dump(LogisticRegression().fit(x, [0, 1, 0, 1]), path)
    return path


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    """Two trainings (the first rejected, the second approved, deployed twice, one of them
    retired), evaluations, statistics, a batch prediction and two imports."""
    tmp = tmp_path_factory.mktemp("tour")
    repo = tmp / "repo"
    write_model(repo, "scripted", SCRIPTED_TRAINING)
    add_fast_stages(repo)
    (repo / "data").mkdir()
    write_csv(repo / "data" / "train.csv")
    write_csv(repo / "data" / "test.csv", rows=40)
    write_csv(repo / "data" / "score.csv", rows=20, target=False)
    deck = Deck(home=tmp / "home")
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "test", repo / "data" / "test.csv", target="label")
    deck.add_dataset("proj", "score", repo / "data" / "score.csv")
    t = Tour(deck, repo)
    engine = Engine(deck, workers=1)
    try:
        v1 = t.run("train", lambda: deck.train("proj", "scripted", "train", {"lines": 1}), engine)
        t.run("evaluate", lambda: deck.evaluate(v1.version or "", "test"), engine)
        t.run("compute_stats", lambda: deck.compute_stats(v1.version or "", "train"), engine)
        t.run("reject", lambda: deck.reject(v1.version or "", "not good"), engine)
        v2 = t.run("train 2", lambda: deck.train("proj", "scripted", "train"), engine)
        version = v2.version or ""
        t.run("evaluate 2", lambda: deck.evaluate(version, "test"), engine)
        t.run("approve", lambda: deck.approve(version, "good enough"), engine)
        dep = t.run("deploy", lambda: deck.deploy(version, "score", "0 3 * * *"), engine)
        t.run("batch_predict", lambda: deck.predict(dep.deployment or ""), engine)
        other = t.run("deploy 2", lambda: deck.deploy(version, "test"), engine)
        t.run("retire", lambda: deck.retire(other.deployment or "", "one is enough"), engine)
        source = str(_model_file(tmp / "model.joblib"))
        t.run("import", lambda: deck.import_model("proj", "byom", source), engine)
        t.run("import again", lambda: deck.import_model("proj", "byom", source, again=True), engine)
        yield t
    finally:
        engine.shutdown()
        deck.close()


def test_the_tour_ran_a_job_of_every_kind(tour: Tour) -> None:
    assert {JobType(j.type) for j in tour.jobs.values()} == set(JobType)


def test_each_job_stores_only_the_params_its_kind_names(tour: Tour) -> None:
    for name, job in tour.jobs.items():
        kind = KINDS[JobType(job.type)]
        assert set(job.params) <= set(kind.params) | set(ENGINE_PARAMS), name
        kind.check(job.params)  # what a verb stored passes its kind's checks


def test_spec_flags_are_what_the_engine_and_the_runner_did(tour: Tour) -> None:
    deck = tour.deck
    for name, job in tour.jobs.items():
        kind = KINDS[JobType(job.type)]
        if kind.spec is None:
            continue
        spec = json.loads((deck.job_dir(job.id) / "spec.json").read_text())
        artifacts = deck.version_detail(job.version).artifact_dir if job.version else None
        # The staging folder is the new version's files until the job ends: then it moves.
        assert (spec["model_dir"] != artifacts) == kind.spec.staging, name
        if kind.spec.code == "none":
            assert (spec["code_dir"], spec["code_source"]) == (None, "builtin"), name
        elif kind.spec.code == "repository":
            folder = str(tour.repo / "models" / "scripted")
            assert (spec["code_dir"], spec["code_source"]) == (folder, "repository"), name
        else:  # the version's own copy of its code
            folder = str(Path(artifacts or "") / runner.CODE_COPY)
            assert (spec["code_dir"], spec["code_source"]) == (folder, "version"), name
        used = [e for e in deck.events(job.id) if e.kind == "code_used"]
        assert len(used) == 1, name
        # The scripted model has every file it can have: its own code runs where it can.
        expected = kind.spec.entry if kind.spec.runs_model_code else kind.spec.builtin
        assert used[0].details["entry"] == expected, name


def test_each_summary_says_what_the_job_did(tour: Tour) -> None:
    deck, jobs = tour.deck, tour.jobs

    def summary(name: str) -> list[str]:
        job = jobs[name]
        return KINDS[JobType(job.type)].summary(deck, job)

    v1, v2 = jobs["train"].version, jobs["train 2"].version
    assert summary("train") == [f"version {v1} (scripted v1, rejected)"]
    assert summary("train 2") == [f"version {v2} (scripted v2, deployed)"]
    assert summary("evaluate") == [f"version {v1} is rejected: accuracy=1.0000 on test"]
    assert summary("compute_stats") == []
    evaluation = jobs["evaluate"]
    assert summary("reject") == [
        f"version {v1} rejected on evaluation {evaluation.id} of test "
        f"({local(evaluation.finished_at)})"
    ]
    deployed = summary("deploy")
    assert len(deployed) == 1
    dep = jobs["deploy"].deployment
    assert re.fullmatch(
        rf"deployment {dep} active, next run \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \S+( \(no engine\))?",
        deployed[0],
    ), deployed
    assert summary("deploy 2") == [f"deployment {jobs['deploy 2'].deployment} active"]
    predicted = jobs["batch_predict"]
    assert summary("batch_predict") == [
        *(f"output: {p}" for p in predicted.outputs),
        "no summary (the scorer wrote none)",
    ]
    assert predicted.outputs
    assert summary("retire") == []
    assert summary("import") == [f"version {jobs['import'].version} (byom v1, imported)"]


# What a rerun of each job of the tour is refused with, now (the rest are queued again).
RERUN_REFUSED = {
    "reject": "cannot reject a version that is rejected",
    "approve": "cannot approve a version that is deployed",
    "deploy": "an identical deployment is active",
    "retire": "cannot retire deployment",
    "import": "is identical to",
}


def _outcome(call: Callable[[], JobView]) -> JobView | str:
    try:
        return call()
    except ModelDeckError as exc:
        return str(exc)


def _inputs(job: JobView) -> tuple[Any, ...]:
    params = {k: v for k, v in job.params.items() if k not in ENGINE_PARAMS}
    return (job.type, job.project, job.model, job.version, job.dataset, params, job.trigger)


def test_rerun_queues_the_same_inputs_or_is_refused_as_the_deck_is(tour: Tour) -> None:
    deck = tour.deck
    for name, job in tour.jobs.items():
        mine = _outcome(lambda job=job: rerun(deck, job))
        if name in RERUN_REFUSED:
            assert isinstance(mine, str) and RERUN_REFUSED[name] in mine, (name, mine)
            assert _outcome(lambda job=job: deck.rerun(job.id)) == mine, name
            continue
        assert isinstance(mine, JobView), (name, mine)
        assert mine.status == JobStatus.queued.value
        expected = _inputs(job)
        if job.type in (JobType.train.value, JobType.import_.value):
            expected = (*expected[:3], None, *expected[4:])  # a new version, when it runs
        assert _inputs(mine) == expected, name
        if job.type != JobType.deploy.value:
            assert mine.deployment == job.deployment, name


def test_a_deployment_with_no_schedule_runs_again(tour: Tour) -> None:
    """Its job stores the default time zone; given back alone, the verb refused it
    ("--timezone goes with --schedule")."""
    again = rerun(tour.deck, tour.jobs["deploy 2"])
    assert again.type == JobType.deploy.value
    assert again.params == {"schedule": None, "timezone": "UTC"}


# -- event kinds ----------------------------------------------------------------------------

CORE = Path(__file__).resolve().parent.parent / "core"


def _core_source() -> str:
    return "\n".join(p.read_text() for p in sorted(CORE.rglob("*.py")))


def test_every_event_kind_the_tour_wrote_is_in_its_enum(tour: Tour) -> None:
    with tour.deck.reader() as s:
        job_kinds = {k for (k,) in s.exec(text("SELECT DISTINCT kind FROM job_event"))}
        dep_kinds = {k for (k,) in s.exec(text("SELECT DISTINCT kind FROM deployment_event"))}
    assert job_kinds - set(JobEventKind) == set()
    assert dep_kinds - set(DeploymentEventKind) == set()
    assert {"created", "started", "completed", "code_used", "version_created"} <= job_kinds
    assert {"created", "retired"} <= dep_kinds


def test_no_event_is_written_with_a_bare_string_kind() -> None:
    """Every ``add_event`` / ``add_deployment_event`` call, the functions' and the job row's
    method alike, names its kind by the enum: no argument is the text of a kind."""
    kinds = {k.value for k in JobEventKind} | {k.value for k in DeploymentEventKind}
    calls, bare = 0, []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in ("add_event", "add_deployment_event"):
                continue
            calls += 1
            given = [*node.args, *(k.value for k in node.keywords)]
            if any(isinstance(a, ast.Constant) and a.value in kinds for a in given):
                bare.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert calls > 30  # the walk found the calls
    assert bare == []


def test_the_job_process_writes_only_its_own_kinds() -> None:
    """The runner is standard library only and writes kinds as text: they are the enum's."""
    runner = (CORE / "runner.py").read_text()
    written = set(re.findall(r"\"kind\": \"(\w+)\"", runner))
    assert written == {k.value for k in JOB_PROCESS_KINDS}


def test_every_event_kind_is_written_somewhere() -> None:
    source = _core_source()
    by_status = {s.value for s in JobStatus} | {"approved", "rejected"}  # JobEventKind(value)
    for enum in (JobEventKind, DeploymentEventKind):
        for member in enum:
            named = f"{enum.__name__}.{member.name}" in source
            assert named or member.value in by_status or member in JOB_PROCESS_KINDS, member
