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
