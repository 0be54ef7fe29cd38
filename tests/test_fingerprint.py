"""What a training job records of the code: its fingerprint (the git commit, +dirty, else a hash
of the model folder) and its requirements."""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.service import code_fingerprint


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_git_checkout_gives_the_commit_and_marks_local_changes(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "training.py").write_text("def train(context):\n    pass\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert code_fingerprint(tmp_path, model) == f"git:{head}"
    (model / "training.py").write_text("def train(context):\n    print(1)\n")
    assert code_fingerprint(tmp_path, model) == f"git:{head}+dirty"


def test_bytecode_is_no_local_change(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    (model / "__pycache__").mkdir(parents=True)
    (model / "training.py").write_text("def train(context):\n    pass\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    (model / "__pycache__" / "training.cpython-311.pyc").write_bytes(b"\x00")
    (model / "helpers.pyc").write_bytes(b"\x00")
    assert code_fingerprint(tmp_path, model) == f"git:{_git(tmp_path, 'rev-parse', 'HEAD')}"


def test_trainings_leave_no_bytecode_in_a_clean_checkout(deck, project: str, repo: Path) -> None:
    """The second training of a committed model is as clean as the first: its code (and a
    module it imports) leaves no __pycache__ in the repository."""
    from core.engine import Engine

    model = repo / "models" / "scripted"
    training = model / "training.py"
    training.write_text("import helpers\n" + training.read_text())
    (model / "helpers.py").write_text("VALUE = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    head = _git(repo, "rev-parse", "HEAD")
    for _ in range(2):
        job = deck.train(project, "scripted", "train")
        engine = Engine(deck, workers=1)
        try:
            assert engine.run_until_idle(60)
        finally:
            engine.shutdown()
        assert deck.job(job.id).status == "completed"
        assert deck.job(job.id).params["code_fingerprint"] == f"git:{head}"
    assert not list(repo.rglob("__pycache__")) and not list(repo.rglob("*.pyc"))


def test_plain_folder_gives_a_hash_that_follows_the_code(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "training.py").write_text("a")
    first = code_fingerprint(tmp_path, model)
    assert first.startswith("sha256:")
    assert code_fingerprint(tmp_path, model) == first
    (model / "training.py").write_text("b")
    assert code_fingerprint(tmp_path, model) != first


def test_training_records_the_requirements(deck, project: str, repo: Path) -> None:
    (repo / "models" / "scripted" / "requirements.txt").write_text(
        "# pinned for the demo\nscikit-learn>=1.4\n\npandas==2.2.3\n"
    )
    job = deck.train(project, "scripted", "train")
    assert deck.job(job.id).params["requirements"] == ["scikit-learn>=1.4", "pandas==2.2.3"]
