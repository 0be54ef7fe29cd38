"""Hostile and wrong input: names that are paths, ids that are patterns, numbers that are not
JSON, bytes that are not UTF-8, downloads without end. Each is refused with one `error:` line
(or, for what a job meets, fails the job with a clear error) and harms nothing."""

from __future__ import annotations

import http.server
import json
import math
import os
import pickle
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import SCRIPTED_TRAINING, Result, ok, write_model
from test_refusals import SCRIPTED_EVALUATION, run_jobs

from core.db import _dumps
from core.inputs import name_problem
from core.service import Deck

Cli = Callable[..., Result]


def refused(result: Result, *words: str) -> str:
    """The one `error:` line of a clean refusal (exit 2, nothing on stdout, no traceback)."""
    assert "Traceback" not in result.err, result.err
    assert result.code == 2, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert result.out == ""
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def many(cli: Cli, *commands: tuple[str, ...]) -> list[Result]:
    """Run independent commands a few at a time (each is a process of its own)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: cli(*args), commands))


def strict_json(text: str) -> object:
    """Parse as standard JSON: NaN and Infinity are not JSON."""

    def reject(constant: str) -> object:
        raise AssertionError(f"{constant} in JSON output: {text}")

    return json.loads(text, parse_constant=reject)


# -- item 1: names that are paths --------------------------------------------------------


def test_a_name_that_is_a_path_is_refused_and_other_artifacts_survive(
    deck: Deck, project: str, repo: Path, tmp_path: Path, cli: Cli
) -> None:
    from sklearn.dummy import DummyClassifier

    write_model(repo, "v1", SCRIPTED_TRAINING)
    trained = run_jobs(deck, *[lambda: deck.train("proj", "v1", "train")] * 2)
    dirs = [Path(deck.version_detail(j.version).artifact_dir) for j in trained]
    assert all((d / "weights.txt").is_file() for d in dirs)
    model_file = tmp_path / "model.pkl"  # a model that imports fine under a good name
    model_file.write_bytes(pickle.dumps(DummyClassifier().fit([[0], [1]], [0, 1])))
    before = [j.to_json() for j in deck.jobs()]

    names = (".", "..", "a/b", "a\\b", "x\x1b[2J", "new\nline")
    csv_file = str(repo / "data" / "train.csv")
    said = many(
        cli,
        *[("import", "proj", name, str(model_file)) for name in names],
        *[
            ("project", "add", name, "--repo", str(repo))
            for name in ("..", "a\\b", "rtl\u202eevil", "\u200bproj", "soft\u00adhyphen")
        ],
        *[("dataset", "add", "proj", name, csv_file) for name in (".", "a/b")],
    )
    assert all(refused(r, "name must be") for r in said)
    assert "model name '..' is a path" in said[1].err
    assert "model name 'x^[[2J' holds a control character" in said[4].err
    # A bidirectional override is a control; a zero-width space or a soft hyphen would make
    # a name that looks like another one.
    assert "project name 'rtl\\u202eevil' holds a control character" in said[8].err
    assert "project name '\\u200bproj' holds an invisible character" in said[9].err
    assert "project name 'soft\\u00adhyphen' holds an invisible character" in said[10].err
    # Joiners and the tags of flag emoji belong to text: kept.
    for name in (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "\U0001f3f4\U000e0067\U000e0062\U000e007f",
    ):
        assert name_problem(name) is None, name

    assert [j.to_json() for j in deck.jobs()] == before  # nothing was queued
    assert all((d / "weights.txt").read_text() == "42" for d in dirs)
    assert [p.name for p in deck.projects()] == ["proj"]
    assert [d.name for d in deck.datasets("proj")] == ["score", "test", "train"]


def test_a_new_version_never_removes_an_existing_folder(
    deck: Deck, project: str, home: Path
) -> None:
    """Artifact folders are named by ids; a folder already there (a crash's leftover, or
    another model's) is never removed to make room."""
    pid = deck.project("proj").id
    mid = next(m.id for m in deck.models("proj") if m.name == "scripted")
    # Where versions used to go, by name, and where a version of this model could go by id.
    for folder in (home / "artifacts" / pid / "scripted" / "v1", home / "artifacts" / pid / mid):
        folder.mkdir(parents=True)
        (folder / "keep.txt").write_text("mine")
    (job,) = run_jobs(deck, lambda: deck.train("proj", "scripted", "train"))
    detail = deck.version_detail(job.version)
    assert (Path(detail.artifact_dir) / "weights.txt").read_text() == "42"
    assert (home / "artifacts" / pid / "scripted" / "v1" / "keep.txt").read_text() == "mine"
    assert (home / "artifacts" / pid / mid / "keep.txt").read_text() == "mine"
    assert "scripted" not in Path(detail.artifact_dir).relative_to(home).parts


# -- item 10: downloads with bounds ------------------------------------------------------


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        try:
            if self.path == "/huge.pkl":  # says it is a terabyte, sends a little
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                self.wfile.write(b"\0" * 1000)
            elif self.path == "/trickle.pkl":  # a byte at a time, for ever
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100_000):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif self.path == "/fine.pkl":  # a real model, well within the limits
                self.send_response(200)
                self.send_header("Content-Length", str(len(self.server.fine)))  # type: ignore[attr-defined]
                self.end_headers()
                self.wfile.write(self.server.fine)  # type: ignore[attr-defined]
            elif self.path == "/missing.pkl":
                self.send_error(404)
            elif self.path == "/endless.pkl":  # no Content-Length, more than the limit
                self.send_response(200)
                self.end_headers()
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what it should do


@pytest.fixture
def hostile_server() -> Iterator[str]:
    from sklearn.dummy import DummyClassifier

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    server.fine = pickle.dumps(DummyClassifier().fit([[0], [1]], [0, 1]))  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_imports_over_http_have_a_size_and_a_time_limit(
    deck: Deck, project: str, cli: Cli, hostile_server: str
) -> None:
    env = {"MODELDECK_IMPORT_MAX_BYTES": "1000000", "MODELDECK_IMPORT_TIMEOUT": "2"}
    errors = {}
    for name in ("huge", "trickle", "endless"):
        started = time.monotonic()
        result = cli("import", "proj", name, f"{hostile_server}/{name}.pkl", env=env, timeout=60)
        took = time.monotonic() - started
        assert result.code == 1, result.err
        assert "import failed" in result.err
        job = deck.job(result.out.splitlines()[0])
        assert job.status == "failed" and job.version is None
        errors[name] = job.error
        assert took < 30, (name, took)  # a 2 s limit (the trickle alone would take hours)
    assert "Content-Length" in errors["huge"] and "1000000" in errors["huge"]
    assert "2 s" in errors["trickle"] and "MODELDECK_IMPORT_TIMEOUT" in errors["trickle"]
    assert "1000000 bytes" in errors["endless"]
    assert "MODELDECK_IMPORT_MAX_BYTES" in errors["endless"]
    # A server that answers 404, or none at all: one line each, no traceback in the log.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on
    nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    secret = nobody.replace("http://", "http://ana:s3cret@")
    for name, url, shown, why in (
        ("missing", f"{hostile_server}/missing.pkl", None, "HTTP 404 Not Found"),
        ("nobody", f"{nobody}/m.pkl", None, "Connection refused"),
        ("idna", "http://a..b/m.pkl", None, "label"),  # a host name IDNA refuses
        ("token", f"{secret}/m.pkl", nobody.replace("//", "//***@") + "/m.pkl", "refused"),
    ):
        result = cli("import", "proj", name, url, env=env, timeout=60)
        assert result.code == 1, result.err
        job = deck.job(result.out.splitlines()[0])
        assert job.error.startswith(f"could not download {shown or url}: "), job.error
        assert why in job.error, job.error
        log = deck.log_path(job.id).read_text()
        assert "Traceback" not in log and f"error: {job.error}" in log
        assert "Traceback" not in result.err and "s3cret" not in log + job.error
    closed.close()
    # A URL no download could use is refused before it is queued; the scheme in any case.
    jobs = len(deck.jobs())
    said = refused(cli("import", "proj", "m", "http://[::1/m.pkl"), "cannot download")
    assert "http://[::1/m.pkl" in said
    assert len(deck.jobs()) == jobs
    assert deck.versions("proj") == []
    assert not list((deck.artifacts_dir / ".staging").glob("*/*"))  # nothing half-downloaded
    fine = ok(cli("import", "proj", "fine", f"{hostile_server}/fine.pkl", "--json", env=env))
    assert fine.json()["status"] == "completed"
    assert deck.version(fine.json()["version"]).source["class"] == "DummyClassifier"
    upper = hostile_server.replace("http://", "HTTP://")  # a scheme in capitals is one too
    loud = ok(cli("import", "proj", "upper", f"{upper}/fine.pkl", "--json", env=env))
    assert loud.json()["status"] == "completed"


def test_bad_import_limits_fail_the_job_clearly(
    deck: Deck, project: str, cli: Cli, hostile_server: str
) -> None:
    env = {"MODELDECK_IMPORT_MAX_BYTES": "lots"}
    result = cli("import", "proj", "m", f"{hostile_server}/huge.pkl", env=env, timeout=40)
    assert result.code == 1
    assert "MODELDECK_IMPORT_MAX_BYTES" in deck.job(result.out.splitlines()[0]).error


# -- item 11: folder names that are not UTF-8 --------------------------------------------


def test_model_folders_with_unusable_names_are_skipped_with_a_warning(
    deck: Deck, project: str, repo: Path, cli: Cli
) -> None:
    models = os.fsencode(repo / "models")
    for raw in (b"caf\xe9", b"evil\x1b]0;title\x07"):
        os.mkdir(models + b"/" + raw)
        with open(models + b"/" + raw + b"/training.py", "w") as fh:
            fh.write(SCRIPTED_TRAINING)

    with open(models + b"/scripted/notes-\xff.txt", "w") as fh:  # a file in a good folder
        fh.write("bytes in its name are not UTF-8")
    for args in (("projects",), ("models", "proj")):
        result = ok(cli(*args))
        assert "warning: " in result.err
        assert "caf\\xe9" in result.err  # named, its bytes shown
        assert "evil^[]0;title^G" in result.err  # named, no escape sequence reaches the terminal
        assert "\x1b" not in result.err
    trained = ok(cli("train", "proj", "scripted", "--dataset", "train", "--json"))
    assert trained.json()["status"] == "completed"
    assert "caf\\xe9" in trained.err
    names = [m["name"] for m in ok(cli("models", "proj", "--json")).json()]
    assert names == ["clf", "scripted"]


async def test_the_tui_lists_projects_despite_an_unusable_model_folder(
    deck: Deck, project: str, repo: Path
) -> None:
    from tui.app import ModelDeckApp
    from tui.widgets import DeckTable

    os.mkdir(os.fsencode(repo / "models") + b"/caf\xe9")
    with open(os.fsencode(repo / "models") + b"/caf\xe9/training.py", "w") as fh:
        fh.write(SCRIPTED_TRAINING)
    app = ModelDeckApp(deck, project=None, poll=0.25)
    async with app.run_test(size=(120, 40)) as pilot:

        def rows() -> list[list[str]]:
            table = app.screen.query_one("#projects", DeckTable)
            return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

        deadline = time.monotonic() + 15
        while not rows() and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert [r[:1] for r in rows()] == [["proj"]]
        assert "2" in rows()[0]  # its two good models are counted
    assert any("caf\\xe9" in w for w in deck.warnings)


# -- item 12: ids are not patterns -------------------------------------------------------


def test_wildcards_in_an_id_prefix_match_nothing(deck: Deck, project: str, cli: Cli) -> None:
    queued = deck.train("proj", "scripted", "train").id  # no engine: it stays queued
    refs = ("______________", "j-%", queued[:6] + "_")
    results = many(
        cli,
        *[("stop", ref) for ref in refs],
        *[("job", ref) for ref in refs],
        ("version", "v-%%"),
        ("retire", "dep-%"),
        ("job", queued[:8], "--json"),
    )
    assert all(refused(r, "unknown job") for r in results[: 2 * len(refs)])
    refused(results[-3], "unknown version")
    refused(results[-2], "unknown deployment")
    assert ok(results[-1]).json()["id"] == queued  # a real prefix still works
    assert deck.job(queued).status == "queued"
    # The jobs filter's text is text too.
    assert deck.jobs(text="%") == [] and deck.count_jobs(text="%") == 0
    assert deck.jobs(text="r_i") == []
    assert [j.id for j in deck.jobs(text="rai")] == [queued]


# -- item 13: numbers that are not JSON --------------------------------------------------

INFINITE_METRICS = """
def train(context):
    (context.model_dir / "weights.txt").write_text("1")
    print("lr is", repr(context.hyperparameters["lr"]))
    context.record_metrics({"loss": float("inf"), "gain": float("-inf"), "nan": float("nan"),
                            "ok": 0.5, "curve": [1.0, float("inf")]})
"""


@pytest.mark.sqlite_only(reason="reads the SQLite file with sqlite3")
def test_infinite_metrics_and_nan_overrides_stay_valid_json(
    deck: Deck, project: str, repo: Path, home: Path, cli: Cli
) -> None:
    write_model(repo, "wild", INFINITE_METRICS)
    result = ok(
        cli(
            "train",
            "proj",
            "wild",
            "--dataset",
            "train",
            "--json",
            "--set",
            "lr=NaN",
            "--set",
            "big=Infinity",
            "--set",
            "huge=1e999",
            "--set",
            "neg=-Infinity",
        )
    )
    job = strict_json(result.out)
    assert job["status"] == "completed"
    assert job["params"]["overrides"] == {
        "lr": "NaN",
        "big": "Infinity",
        "huge": "1e999",
        "neg": "-Infinity",
    }
    assert "lr is 'NaN'" in ok(cli("logs", job["id"])).out
    version = strict_json(ok(cli("version", job["version"], "--json")).out)
    assert version["version"]["metrics"] == {
        "loss": None,
        "gain": None,
        "nan": None,
        "ok": 0.5,
        "curve": [1.0, None],
    }
    # On screen too: null, as stored (it read None).
    shown = ok(cli("version", job["version"])).out
    assert "loss=null  gain=null  nan=null  ok=0.5000  curve=[1.0000, null]" in shown
    strict_json(ok(cli("events", job["id"], "--json")).out)
    strict_json(ok(cli("versions", "proj", "--json")).out)
    with sqlite3.connect(home / "modeldeck.db") as db:
        # json_extract refuses text that is not JSON: every JSON column must parse.
        for table, column in (
            ("job", "params"),
            ("metrics_record", "metrics"),
            ("job_event", "details"),
            ("model_version", "hyperparameters"),
        ):
            db.execute(f"SELECT json_extract({column}, '$') FROM {table}").fetchall()
        assert db.execute("SELECT json_extract(metrics, '$.loss') FROM metrics_record").fetchall()


def test_the_database_never_stores_nan_or_infinity() -> None:
    stored = _dumps({"a": math.inf, "b": [math.nan, -math.inf, 1.5], "c": {"d": math.nan}})
    assert strict_json(stored) == {"a": None, "b": [None, None, 1.5], "c": {"d": None}}


# -- item 14: tracebacks instead of `error:` ----------------------------------------------


def test_deep_values_huge_numbers_and_bytes_that_are_not_utf8_are_refused(
    deck: Deck, project: str, repo: Path, tmp_path: Path, cli: Cli
) -> None:
    odd_csv = os.fsencode(tmp_path) + b"/caf\xe9.csv"
    with open(odd_csv, "wb") as fh:
        fh.write((repo / "data" / "train.csv").read_bytes())
    odd_repo = os.fsencode(tmp_path) + b"/r\xe9po"
    os.mkdir(odd_repo)
    with open(os.fsencode(tmp_path) + b"/caf\xe9.pkl", "wb") as fh:
        fh.write(pickle.dumps([]))
    (repo / "models" / "scripted" / "evaluation.py").write_text(SCRIPTED_EVALUATION)
    (trained,) = run_jobs(deck, lambda: deck.train("proj", "scripted", "train"))
    run_jobs(deck, lambda: deck.evaluate(trained.version, "test"))
    train = ("train", "proj", "scripted", "--dataset", "train")
    bad = "caf\udce9"  # the bytes b"caf\xe9" on the command line
    csv_file = str(repo / "data" / "train.csv")
    expected = {
        (*train, "--set", "x=" + "[" * 50_000 + "]" * 50_000): ("--set x", "too deeply"),
        (*train, "--set", "x=" + "[" * 200 + "]" * 200): ("--set x", "too deeply"),
        (*train, "--set", "C=0.5", "--set", "C=0.7"): ("--set C is given twice",),
        ("jobs", "--limit", str(10**20)): ("--limit", "from 1 to"),
        # past what the column holds (2^31 - 1 on PostgreSQL, 2^63 - 1 on SQLite)
        ("version", "scripted:2147483648"): ("unknown version 'scripted:2147483648'",),
        ("approve", f"proj/scripted:{10**20}", "--reason", "ok"): ("unknown version",),
        ("project", "add", bad, "--repo", str(repo)): ("UTF-8", "caf\\xe9"),
        ("project", "add", "odd", "--repo", os.fsdecode(odd_repo)): ("UTF-8", "r\\xe9po"),
        ("models", bad): ("UTF-8",),
        ("train", bad, "scripted", "--dataset", "train"): ("UTF-8",),
        ("train", "proj", "scripted", "--dataset", bad): ("UTF-8",),
        ("dataset", "add", "proj", bad, csv_file): ("UTF-8",),
        ("dataset", "add", "proj", "odd", os.fsdecode(odd_csv)): ("UTF-8", "caf\\xe9.csv"),
        ("job", "j-" + bad): ("UTF-8",),
        ("approve", trained.version, "--reason", bad): ("reason", "UTF-8"),
        (*train, "--set", f"x={bad}"): ("--set x", "UTF-8"),
        ("import", "proj", "m", os.fsdecode(tmp_path) + f"/{bad}.pkl"): ("source", "UTF-8"),
        ("projects", "--home", os.fsdecode(odd_repo)): ("data home", "UTF-8", "r\\xe9po"),
        ("projects", "--home", csv_file): ("cannot use", "as the data home"),
    }
    results = many(cli, *expected)
    for (args, words), result in zip(expected.items(), results, strict=True):
        assert refused(result, *words), args[:3]
    assert [p.name for p in deck.projects()] == ["proj"]
    assert [d.name for d in deck.datasets("proj")] == ["score", "test", "train"]
    assert [j.type for j in deck.jobs()] == ["evaluate", "train"]
    assert deck.version(trained.version).status == "evaluated"


# -- item 15: wrong input accepted --------------------------------------------------------


def test_wrong_values_are_refused(deck: Deck, project: str, tmp_path: Path, cli: Cli) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_bytes(random.Random(7).randbytes(4000))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5,6\n")
    open_quote = tmp_path / "open.csv"  # pandas: "EOF inside string starting at row 1"
    open_quote.write_text('a,b\n"1,2\n3,4\n')
    nul = tmp_path / "nul.csv"
    nul.write_text("a,b\n1,2\n3,\x004\n")
    lenient = tmp_path / "lenient.csv"  # a quote inside a field: pandas reads it, as we do
    lenient.write_text('a,b\n"1"x,2\n3,4\n')
    twice = tmp_path / "twice.csv"
    twice.write_text("a,a,label\n1,2,0\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]),
        tmp_path / "twice.parquet",
    )
    unnamed = tmp_path / "unnamed.csv"  # pandas names them Unnamed: 2 and Unnamed: 3
    unnamed.write_text("a,b,,\n1,2,3,4\n")
    (tmp_path / "dir.csv").mkdir()
    os.mkfifo(tmp_path / "fifo.csv")
    six = "0 6 * * *"
    deploy = ("deploy", "v-any", "--dataset", "score")
    idle = ("engine", "--exit-when-idle", "--grace")  # without the fix, it would run and exit 0
    expected = {
        ("dataset", "add", "proj", "junk", str(junk)): ("junk.csv", "not UTF-8 text"),
        ("dataset", "add", "proj", "ragged", str(ragged)): ("ragged.csv", "row 2 has 4"),
        ("dataset", "add", "proj", "open", str(open_quote)): ("field is never closed",),
        ("dataset", "add", "proj", "nul", str(nul)): ("nul.csv", "row 2 holds a NUL"),
        ("dataset", "add", "proj", "twice", str(twice)): ("column 'a' twice",),
        ("dataset", "add", "proj", "pq", str(tmp_path / "twice.parquet")): ("column 'a' twice",),
        # what is there, but not what is asked for, is not said to be missing
        ("dataset", "add", "proj", "d", str(tmp_path / "dir.csv")): ("is not a regular file",),
        ("dataset", "add", "proj", "f", str(tmp_path / "fifo.csv")): ("is not a regular file",),
        ("dataset", "add", "proj", "g", str(tmp_path / "gone.csv")): ("gone.csv' does not exist",),
        ("project", "add", "p2", "--repo", str(ragged)): ("ragged.csv' is not a folder",),
        (*deploy, "--schedule", ""): ("--schedule", "empty"),
        (*deploy, "--schedule", "   "): ("--schedule", "empty"),
        (*deploy, "--schedule", six, "--timezone", ""): ("--timezone", "empty"),
        ("schedule", "dep-any", "--cron", ""): ("--cron", "empty"),
        ("schedule", "dep-any", "--timezone", " "): ("--timezone", "empty"),
        (*deploy, "--schedule", six, "--timezone", "localtime"): ("this host's setting",),
        ("approve", "v-any", "--reason", "x" * 10_001): ("at most 10,000 characters",),
        ("retire", "dep-any", "--reason", "x" * 10_001): ("at most 10,000 characters",),
        **{
            (*idle, grace): ("--grace", "from 0 to 604,800")
            for grace in ("-1", "nan", "inf", "x", "1e308", "604801")
        },
        ("dataset", "add", "proj", "t", str(tmp_path / "ok.csv"), "--target", ""): (
            "--target",
            "empty",
        ),
    }
    results = many(cli, *expected)
    for (args, words), result in zip(expected.items(), results, strict=True):
        assert refused(result, *words), args[:3]
    ok(cli(*idle, "0"))
    assert [d.name for d in deck.datasets("proj")] == ["score", "test", "train"]
    ok(cli("dataset", "add", "proj", "unnamed", str(unnamed)))
    assert "2 rows" in ok(cli("dataset", "add", "proj", "lenient", str(lenient))).out
