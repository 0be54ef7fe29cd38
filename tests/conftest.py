"""Shared fixtures: a fresh data home, a Deck on it, tiny model repositories, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.service import Deck

ROOT = Path(__file__).resolve().parent.parent

# The CLI and engine processes the tests start may keep their bytecode: with it forbidden
# (some shells set this), every one of them compiles core/ again, about 0.1 s each.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

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


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def deck(home: Path) -> Iterator[Deck]:
    d = Deck(home=home)
    yield d
    d.close()


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
def cli(home: Path) -> Callable[..., Result]:
    """Run the real ``modeldeck`` command in a subprocess against the test's data home."""

    def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        full_env = dict(os.environ, MODELDECK_HOME=str(home), **(env or {}))
        full_env.pop("MODELDECK_DB", None)
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
