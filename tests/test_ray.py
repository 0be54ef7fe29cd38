"""Jobs on a Ray cluster: a real local Ray head (started once for the module, small, stopped
after), real model code, the real engine and CLI. Skipped where the ``ray`` extra is not
installed; under CI (``$CI`` set) a missing extra fails instead."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.engine import Engine
from core.engine.ray_executor import ray_installed
from core.service import Deck
from core.views import JobView
from tests.conftest import ROOT, SCRIPTED_TRAINING, write_model
from tests.deploy_support import EVALUATION, TICKER, wait_final, wait_for
from tests.ray_support import start_head, stop_head

if not ray_installed():
    if os.environ.get("CI"):
        pytest.fail("the 'ray' extra is not installed (CI installs it: uv sync --extra ray)")
    pytest.skip("the 'ray' extra is not installed (uv sync --extra ray)", allow_module_level=True)

# The head's start (tens of seconds on a busy machine) counts toward the first test's time.
pytestmark = pytest.mark.timeout(300)

ON_RAY = {"model.json": json.dumps({"executor": "ray", "task": "classification"})}

# Scores every row 1, written as predictions.csv: the runner's contract, nothing built in.
SCORING = """
def score(context):
    import csv
    with open(context.dataset.path) as fh:
        rows = list(csv.DictReader(fh))
    with open(context.output_dir / "predictions.csv", "w") as out:
        out.write("row,prediction\\n")
        out.writelines(f"{i},1\\n" for i in range(len(rows)))
    print(f"scored {len(rows)} rows")
"""

# Prints, then waits for SIGTERM; its handler says so and exits cleanly.
GRACEFUL = """
import signal
import sys
import time


def train(context):
    def on_term(sig, frame):
        print("handler: got SIGTERM, saving and leaving", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, on_term)
    print("waiting for a stop", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head on this machine with 2 CPUs and small memory; its dashboard's URL."""
    temp = Path(tempfile.mkdtemp(prefix="mdray", dir="/tmp"))  # short: Ray's socket paths
    try:
        url, _ = start_head(temp)
        yield url
    finally:
        stop_head()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    write_model(repo, "clf", _CLF, **ON_RAY, **{"evaluation.py": EVALUATION, "scoring.py": SCORING})
    write_model(repo, "scripted", SCRIPTED_TRAINING, **ON_RAY)
    write_model(repo, "graceful", GRACEFUL, **ON_RAY)
    write_model(repo, "ticker", TICKER, **ON_RAY)
    write_model(
        repo,
        "greedy",
        SCRIPTED_TRAINING,
        **{"model.json": json.dumps({"executor": "ray", "resources": {"num_cpus": 64}})},
    )
    data = repo / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    (data / "score.csv").write_text("x\n" + "".join(f"{i}\n" for i in range(7)))
    return repo


_CLF = """
import json


def train(context):
    print(f"training on {context.dataset.name} with C={context.hyperparameters.get('C', 1)}")
    context.progress(0.5, "half way")
    (context.model_dir / "weights.json").write_text(json.dumps({"w": 0.5}))
    context.record_metrics({"train_accuracy": 0.9})
"""


@pytest.fixture
def ray_deck(home: Path, ray_repo: Path) -> Iterator[Deck]:
    d = Deck(home=home)
    d.add_project("p", ray_repo)
    d.add_dataset("p", "train", ray_repo / "data" / "train.csv", target="label")
    d.add_dataset("p", "score", ray_repo / "data" / "score.csv")
    yield d
    d.close()


@pytest.fixture
def engine(ray_deck: Deck, ray_head: str) -> Iterator[Engine]:
    e = Engine(ray_deck, workers=4, grace=1.0, executor_options={"ray_address": ray_head})
    e.start()
    yield e
    e.shutdown()


def kinds(deck: Deck, job_id: str) -> list[str]:
    return [e.kind for e in deck.events(job_id)]


def log_has(deck: Deck, job_id: str, text: str, timeout: float = 60) -> None:
    wait_for(lambda: text in deck.read_log(job_id, 0, 10_000), timeout, f"{text!r} in the log")


def final(deck: Deck, job_id: str, timeout: float = 90):
    return wait_final(deck, job_id, timeout=timeout)


def test_train_evaluate_and_batch_predict_run_on_ray(
    ray_deck: Deck, engine: Engine, ray_head: str
) -> None:
    deck = ray_deck
    trained = final(deck, deck.train("p", "clf", "train", {"C": 2}).id)
    assert trained.status == "completed", trained
    assert trained.executor == "ray"
    assert trained.submission_id == f"modeldeck-{trained.id}"
    assert "training on train with C=2" in deck.read_log(trained.id)
    started = next(e for e in deck.events(trained.id) if e.kind == "started")
    assert started.details["submission_id"] == trained.submission_id
    assert {"progress", "metrics_recorded", "version_created"} <= set(kinds(deck, trained.id))
    version = deck.version_detail(trained.version)
    # The new version's files are in the artifact folder, its code copy too.
    assert json.loads((Path(version.artifact_dir) / "weights.json").read_text()) == {"w": 0.5}
    assert (Path(version.artifact_dir) / "code" / "model.json").exists()

    evaluated = final(deck, deck.evaluate(trained.version, "train").id)
    assert evaluated.status == "completed", evaluated
    assert evaluated.executor == "ray"  # the version's own model.json says so
    assert deck.version(trained.version).status == "evaluated"

    deck.approve(trained.version, "fine")  # runs no code: in the engine, on any executor
    wait_for(lambda: deck.version(trained.version).status == "approved", 30, "approval")
    dep = final(deck, deck.deploy(trained.version, "score").id)
    assert dep.status == "completed", dep
    predicted = final(deck, deck.predict(dep.deployment).id)
    assert predicted.status == "completed", predicted
    assert predicted.executor == "ray"
    assert "scored 7 rows" in deck.read_log(predicted.id)
    rows = (deck.store.job_dir(predicted.id) / "output" / "predictions.csv").read_text()
    assert rows.splitlines()[0] == "row,prediction" and len(rows.splitlines()) == 8

    # The Ray side saw the same jobs, by the same submission ids.
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head)
    for job in (trained, evaluated, predicted):
        assert str(client.get_job_status(job.submission_id).value) == "SUCCEEDED"


def test_a_stopped_ray_job_runs_its_sigterm_handler_and_ends_cancelled(
    ray_deck: Deck, engine: Engine
) -> None:
    deck = ray_deck
    job = deck.train("p", "graceful", "train").id
    log_has(deck, job, "waiting for a stop")  # tailed from Ray while it runs
    deck.stop(job)
    done = final(deck, job)
    assert done.status == "cancelled", done
    log = deck.read_log(job)
    assert "handler: got SIGTERM, saving and leaving" in log
    signals = [e for e in deck.events(job) if e.kind == "signal_sent"]
    assert [e.details["signal"] for e in signals] == ["SIGTERM"]
    assert "ray job modeldeck-" in signals[0].message
    assert kinds(deck, job)[-1] == "cancelled"
    assert "stop_requested" in kinds(deck, job)


def test_a_ray_job_ignoring_sigterm_is_killed_after_the_grace(
    ray_deck: Deck, engine: Engine
) -> None:
    deck = ray_deck
    job = deck.train("p", "scripted", "train", {"lines": 1, "ignore_term": 120}).id
    log_has(deck, job, "ignoring SIGTERM")
    deck.stop(job)
    done = final(deck, job)  # (within 90 s: before its 120 s sleep could end)
    assert done.status == "cancelled", done
    signals = [e.details["signal"] for e in deck.events(job) if e.kind == "signal_sent"]
    assert signals == ["SIGTERM", "SIGKILL"]
    ended = next(e for e in deck.events(job) if e.kind == "cancelled")
    assert ended.details["stopped_by"] == "SIGKILL"  # killed, not left to sleep its 120 s


def test_a_job_asking_more_cpus_than_the_cluster_has_waits_and_can_be_stopped(
    ray_deck: Deck, engine: Engine
) -> None:
    deck = ray_deck
    job = deck.train("p", "greedy", "train").id
    waiting = wait_for(
        lambda: [e for e in deck.events(job) if e.kind == "executor_waiting"], 60, "the wait"
    )[0]
    assert "queued on Ray" in waiting.message and "num_cpus=64" in waiting.message
    assert "waiting for resources" in waiting.message  # Ray's own why
    assert deck.job(job).status == "running"
    assert deck.job(job).resources == {"num_cpus": 64}
    header = job_screen_header(deck.job(job))
    assert "executor ray" in header
    assert f"submission modeldeck-{job} resources num_cpus=64" in header
    deck.stop(job)
    done = final(deck, job)
    assert done.status == "cancelled", done
    assert "line 0" not in deck.read_log(job)  # its code never ran


ENGINE = [sys.executable, "-m", "tui.entry", "engine", "--executor", "ray", "--grace", "1"]


def job_screen_header(job: JobView) -> str:
    """The TUI job screen's header of ``job``, as text."""
    from rich.console import Console

    from tui.screens.job import job_header

    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
    console.print(job_header(job, datetime.now(UTC), {}))
    return "\n".join(" ".join(line.split()) for line in console.export_text().splitlines())


def _engine_process(home: Path, address: str, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MODELDECK_HOME=str(home))
    return subprocess.Popen(
        [*ENGINE, "--ray-address", address, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_an_engine_killed_while_a_ray_job_runs_reattaches_and_the_log_is_whole(
    ray_deck: Deck, ray_head: str, home: Path
) -> None:
    deck = ray_deck
    first = _engine_process(home, ray_head)
    second = None
    try:
        job = deck.train("p", "ticker", "train", {"lines": 40, "every": 0.25}).id
        log_has(deck, job, "tick 3")
        first.kill()  # kill -9: no goodbye, the lease and the job are left as they were
        first.wait(10)
        second = _engine_process(home, ray_head, "--exit-when-idle")
        done = final(deck, job)
        assert done.status == "completed", done
        assert second.wait(30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    ticks = [line for line in deck.read_log(job) if line.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(40)]  # every line, once, in order
    back = [e for e in deck.events(job) if e.kind == "reattached"]
    assert len(back) == 1 and back[0].details["submission_id"] == f"modeldeck-{job}"


class Link:
    """A TCP link on 127.0.0.1 to the cluster's dashboard that can be cut, as a network
    would be."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.up = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.up:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        self.server.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass


def test_a_ray_job_whose_cluster_stays_unreachable_is_lost(ray_deck: Deck, ray_head: str) -> None:
    deck = ray_deck
    link = Link(ray_head)
    options = {"ray_address": link.url, "ray_lost_after": 2.0}
    e = Engine(deck, workers=2, grace=1.0, executor_options=options)
    e.start()
    try:
        job = deck.train("p", "ticker", "train", {"lines": 400, "every": 0.25}).id
        log_has(deck, job, "tick 1")
        link.cut()
        done = final(deck, job)
    finally:
        e.shutdown()
        from ray.job_submission import JobSubmissionClient

        JobSubmissionClient(ray_head).stop_job(f"modeldeck-{job}")
    assert done.status == "failed" and done.error == "lost", done
    assert any("has not answered" in line for line in deck.read_log(job))


def test_the_engine_refuses_ray_without_an_address(cli: Callable[..., object]) -> None:
    from tests.conftest import refused

    env = {"MODELDECK_RAY_ADDRESS": ""}
    line = refused(cli("engine", "--executor", "ray", env=env))  # type: ignore[arg-type]
    assert "no Ray cluster address" in line and "--ray-address" in line


def test_the_engine_names_the_extra_when_ray_is_missing(home: Path) -> None:
    # This interpreter with ray made unimportable, as it is without the extra.
    code = (
        "import sys; sys.modules['ray'] = None; from tui.entry import main; "
        "sys.argv = ['modeldeck', 'engine', '--executor', 'ray', '--ray-address', "
        "'http://127.0.0.1:9']; sys.exit(main())"
    )
    env = dict(os.environ, MODELDECK_HOME=str(home))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc
    assert proc.stderr.strip().splitlines() == [
        "error: the Ray executor needs the 'ray' extra: uv sync --extra ray "
        "(or pip install 'modeldeck[ray]')"
    ]


def test_a_local_job_notes_that_it_ignores_its_resources(deck: Deck, tmp_path: Path) -> None:
    repo = tmp_path / "local-repo"
    asks = {"resources": {"num_cpus": 4, "memory_gb": 8}}
    write_model(repo, "m", SCRIPTED_TRAINING, **{"model.json": json.dumps(asks)})
    (repo / "train.csv").write_text("x,label\n1,0\n2,1\n")
    deck.add_project("loc", repo)
    deck.add_dataset("loc", "train", repo / "train.csv", target="label")
    e = Engine(deck, workers=1)
    try:
        done = wait_final(deck, deck.train("loc", "m", "train").id, engine=e)
    finally:
        e.shutdown()
    assert done.status == "completed" and done.executor == "local", done
    note = [ev for ev in deck.events(done.id) if ev.kind == "resources_ignored"]
    assert len(note) == 1 and note[0].details["resources"] == asks["resources"]
    assert "ignored" in note[0].message
