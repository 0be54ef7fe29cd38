"""Shared fixtures: a fresh data home, a Deck on it, tiny model repositories, the real CLI.

The data home's database is the test's backend: every test that uses ``home`` (and so
``deck``, ``cli``, ``project``) runs on SQLite and on PostgreSQL. PostgreSQL runs where
``$MODELDECK_TEST_PG`` names a server (``postgresql://postgres@127.0.0.1:5432/postgres``):
the run makes a template database with the schema, and each test gets a fresh copy of it,
dropped after the test. Without the variable those cases skip; with it, an unreachable
server fails them. A module or test marked ``sqlite_only`` runs on SQLite alone, one marked
``postgres_only`` on PostgreSQL alone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.engine import Engine
from core.service import Deck

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "MODELDECK_TEST_PG"
BACKENDS = ("sqlite", "postgres")

# The CLI and engine processes the tests start may keep their bytecode: with it forbidden
# (some shells set this), every one of them compiles core/ again, about 0.1 s each.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# A test's database is its backend's (the ``home`` fixture sets it), never the shell's.
os.environ.pop("MODELDECK_DB", None)

SKLEARN_TRAINING = """
import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression


def train(context):
    frame = pd.read_csv(context.dataset.path)
    target = context.dataset.target
    x, y = frame.drop(columns=[target]), frame[target]
    print(f"training on {len(frame)} rows, C={context.hyperparameters['C']}")
    model = LogisticRegression(C=float(context.hyperparameters["C"]), max_iter=500).fit(x, y)
    context.progress(0.5, "fitted")
    joblib.dump(model, context.model_dir / "model.joblib")
    context.record_metrics({"train_accuracy": float(model.score(x, y))})
"""

# A stdlib-only model whose behaviour the hyperparameters choose: fast to start, for engine tests.
SCRIPTED_TRAINING = """
import sys
import time


def train(context):
    hp = context.hyperparameters
    for i in range(int(hp.get("lines", 3))):
        print(f"line {i}")
    if hp.get("stderr"):
        print("to stderr", file=sys.stderr)
    if hp.get("sleep"):
        print("sleeping", flush=True)
        time.sleep(float(hp["sleep"]))
    if hp.get("ignore_term"):
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(float(hp.get("ignore_term")))
    if hp.get("fail"):
        raise RuntimeError(hp["fail"])
    (context.model_dir / "weights.txt").write_text("42")
    context.record_metrics({"loss": 0.5})
"""


def write_model(repo: Path, name: str, training: str, **files: str) -> Path:
    folder = repo / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training.py").write_text(textwrap.dedent(training))
    for filename, text in files.items():
        (folder / filename).write_text(text)
    return folder


def write_csv(path: Path, rows: int = 60, target: bool = True) -> Path:
    """A small separable two-class data set written without any library."""
    lines = ["x1,x2" + (",label" if target else "")]
    for i in range(rows):
        cls = i % 2
        x1 = cls * 2.0 + (i % 7) * 0.1
        x2 = -cls * 1.5 + (i % 5) * 0.1
        lines.append(f"{x1:.2f},{x2:.2f}" + (f",{cls}" if target else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): runs on SQLite alone (what it checks is SQLite's own)"
    )
    config.addinivalue_line(
        "markers", "postgres_only(reason): runs on PostgreSQL alone (what it checks is its own)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test whose fixtures reach the database runs once per backend."""
    if "backend" in metafunc.fixturenames:
        # The TUI reads the same frozen views from the Deck on either backend; its suites
        # (snapshots, key handling) stay on SQLite, the store's suites run on both.
        tui = ROOT / "tests" / "tui"
        only = metafunc.definition.get_closest_marker("sqlite_only") or (
            tui in Path(metafunc.definition.path).parents
        )
        backends = ["sqlite"] if only else list(BACKENDS)
        if metafunc.definition.get_closest_marker("postgres_only"):
            backends = ["postgres"]
        metafunc.parametrize("backend", backends, scope="function")


class PgServer:
    """The PostgreSQL server of the run: a template database with the schema, and a fresh
    database copied from it for each test.

    Copying and dropping a database take a second or so of the server's time each: a thread
    keeps the next databases ready and another drops the used ones, while tests run."""

    READY = 2  # databases made ahead of the tests that will take them

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        self.url = make_url(url).set(drivername="postgresql")
        self.prefix = f"modeldeck_test_{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self._numbers = itertools.count(1)
        self._dsn = self.url.render_as_string(hide_password=False)
        try:
            self.admin = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            pytest.fail(f"{PG_ENV}={url} is set but the server does not answer: {exc}")
        self._drop_all()  # left over by a run of this pid that was killed
        self.admin.execute(f'CREATE DATABASE "{self.template}"')
        from core.db import make_engine, migrate

        engine = make_engine(self.db_url(self.template))
        migrate(engine)
        engine.dispose()
        self._ready: queue.Queue[str | BaseException] = queue.Queue(self.READY)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._make, daemon=True),
            threading.Thread(target=self._drop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def db_url(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def _make(self) -> None:
        import psycopg

        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                name = f"{self.prefix}_{next(self._numbers)}"
                try:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                except psycopg.Error as exc:
                    self._ready.put(exc)
                    return
                self._ready.put(name)

    def _drop(self) -> None:
        import psycopg

        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while (name := self._used.get()) is not None:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def fresh(self) -> str:
        """A new database with the schema: its URL."""
        name = self._ready.get(timeout=120)
        if isinstance(name, BaseException):
            raise name
        return self.db_url(name)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self._used.put(make_url(url).database)

    def _drop_all(self) -> None:
        names = self.admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{self.prefix}_%",)
        ).fetchall()
        for (name,) in sorted(names, key=lambda row: row[0] == self.template):
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self._stop.set()
        while self._threads[0].is_alive():  # unblock a maker waiting to hand one over
            with contextlib.suppress(queue.Empty):
                self._ready.get(timeout=0.1)
        self._used.put(None)
        self._threads[1].join()
        self._drop_all()
        self.admin.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI"):
        pytest.fail(f"{PG_ENV} is not set: CI runs the PostgreSQL cases (.ci/run sets it)")
    if not url:
        pytest.skip(
            f"PostgreSQL cases need a server: set {PG_ENV}=postgresql://USER@HOST:PORT/postgres"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail(f"{PG_ENV} is set but psycopg is missing: uv sync --extra postgres")
    server = PgServer(url)
    yield server
    server.close()


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The test's database: None for the data home's SQLite file, else a fresh PostgreSQL
    database (dropped after the test)."""
    if backend == "sqlite":
        yield None
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.fresh()
    yield url
    server.drop(url)


@pytest.fixture
def home(tmp_path: Path, db_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data home; its database is the test's backend (``$MODELDECK_DB``, which the
    Decks, engines and commands the test starts all read)."""
    h = tmp_path / "home"
    h.mkdir()
    if db_url is None:
        monkeypatch.delenv("MODELDECK_DB", raising=False)
    else:
        monkeypatch.setenv("MODELDECK_DB", db_url)
    return h


@pytest.fixture
def deck(home: Path) -> Iterator[Deck]:
    d = Deck(home=home)
    yield d
    d.close()


@pytest.fixture
def new_engine() -> Iterator[Callable[..., Engine]]:
    """``Engine(...)`` for the test, each one shut down when the test ends (its fork servers
    and courier with it), whether the test passed or not. Request it after the Deck the
    engines serve, so that they are shut down before it closes."""
    made: list[Engine] = []

    def make(*args: Any, **kwargs: Any) -> Engine:
        engine = Engine(*args, **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in reversed(made):
        engine.shutdown()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A model repository with a scikit-learn model, a scripted stdlib model and data."""
    r = tmp_path / "repo"
    write_model(
        r,
        "clf",
        SKLEARN_TRAINING,
        **{
            "config.json": json.dumps({"hyperparameters": {"C": 1.0}}),
            "model.json": json.dumps({"task": "classification"}),
        },
    )
    write_model(r, "scripted", SCRIPTED_TRAINING)
    data = r / "data"
    data.mkdir()
    write_csv(data / "train.csv")
    write_csv(data / "test.csv", rows=40)
    write_csv(data / "score.csv", rows=20, target=False)
    return r


@pytest.fixture
def project(deck: Deck, repo: Path) -> str:
    deck.add_project("proj", repo)
    deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
    deck.add_dataset("proj", "test", repo / "data" / "test.csv", target="label")
    deck.add_dataset("proj", "score", repo / "data" / "score.csv")
    return "proj"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture
def cli(home: Path, db_url: str | None) -> Callable[..., Result]:
    """Run the real ``modeldeck`` command in a subprocess against the test's data home (and
    its database: ``$MODELDECK_DB``)."""

    def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        full_env = dict(os.environ, MODELDECK_HOME=str(home))
        full_env.pop("MODELDECK_DB", None)
        if db_url is not None:
            full_env["MODELDECK_DB"] = db_url
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "tui.entry", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=ROOT,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def ok(result: Result) -> Result:
    """A command that succeeded, without a traceback."""
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err, result.err
    return result


def refused(result: Result) -> str:
    """The one-line error of a refused command (exit 2)."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]
