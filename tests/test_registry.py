"""Registry housekeeping through the real CLI: BYOM import errors and duplicates, archived
projects and datasets, deployments, retire reasons, dataset hashes, dirty diffs and
predictions you can see."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

Cli = Callable[..., Result]


def ok(result: Result) -> Result:
    assert result.code == 0, (result.code, result.out, result.err)
    return result


def refused(result: Result) -> str:
    """The one-line error of a refused command."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


def run_job(cli: Cli, *args: str) -> dict[str, Any]:
    result = ok(cli(*args, "--json"))
    job = result.json()
    assert isinstance(job, dict) and job["status"] == "completed", job
    return job


def estimator_file(path: Path, c: float = 1.0) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x = [[i % 2 * 2.0 + (i % 7) * 0.1, -(i % 2) * 1.5 + (i % 5) * 0.1] for i in range(40)]
    y = [i % 2 for i in range(40)]
    joblib.dump(LogisticRegression(C=c).fit(x, y), path)
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- item 10: BYOM import errors ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_corrupt_byom_file_fails_in_one_line_and_its_job_keeps_the_model_name(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    ok(cli("project", "add", "proj", "--repo", str(repo)))
    bad = tmp_path / "broken.joblib"
    bad.write_bytes(b"not a model at all, just text\n" * 10)  # joblib reads 'n': KeyError 110

    result = cli("import", "proj", "churn-byom", str(bad))
    assert result.code == 1
    job_id = result.out.splitlines()[0]
    assert "Traceback" not in result.out + result.err
    summary = result.err.strip().splitlines()[-1]
    assert summary.startswith("import failed")
    assert "is not a readable joblib file of a model" in summary

    job = ok(cli("job", job_id, "--json")).json()
    assert job["error"].startswith("model.joblib is not a readable joblib file of a model")
    assert "\n" not in job["error"]
    assert job["model"] == "churn-byom"  # the model never came to exist; its name stays
    [listed] = ok(cli("jobs", "proj", "--json")).json()
    assert listed["model"] == "churn-byom"
    assert "churn-byom" in ok(cli("jobs", "proj")).out
    assert "Traceback" not in ok(cli("logs", job_id)).out


@pytest.mark.timeout(120)
def test_importing_an_identical_file_again_is_refused_unless_again(
    cli: Cli, repo: Path, tmp_path: Path, served: tuple[Path, str]
) -> None:
    ok(cli("project", "add", "proj", "--repo", str(repo)))
    first = estimator_file(tmp_path / "model.joblib")
    run_job(cli, "import", "proj", "byom", str(first))

    jobs_before = ok(cli("jobs", "proj", "--json")).json()
    line = refused(cli("import", "proj", "byom", str(first)))
    assert "identical to byom v1" in line and "--again" in line
    assert ok(cli("jobs", "proj", "--json")).json() == jobs_before  # nothing queued

    # Downloaded, it is known only when it is in: the job fails and keeps nothing.
    folder, base = served
    (folder / "copy.joblib").write_bytes(first.read_bytes())
    result = cli("import", "proj", "byom", f"{base}/copy.joblib", "--json")
    assert result.code == 1
    assert "identical to byom v1" in result.json()["error"]
    assert [v["number"] for v in ok(cli("versions", "proj", "--json")).json()] == [1]

    again = run_job(cli, "import", "proj", "byom", str(first), "--again")
    v2 = ok(cli("version", again["version"], "--json")).json()["version"]
    assert v2["number"] == 2
    other = estimator_file(tmp_path / "other.joblib", c=0.01)
    run_job(cli, "import", "proj", "byom", str(other))  # a different file needs no --again
