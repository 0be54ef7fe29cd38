"""The job's own process: runs the user's code for one job. Standard library only.

Forked by the fork server (``core.forkserver``), or started in a new interpreter (``boot()``,
or by path: ``python core/runner.py JOB_DIR``) by the engine, with stdout and stderr already
pointing at the job's log file. It reads ``spec.json`` from JOB_DIR, appends
progress and metrics to ``events.jsonl`` there, and writes ``result.json`` last, so the
outcome survives the engine that started it.
"""

from __future__ import annotations

import _thread
import hashlib
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 0.1
# Audit events raised just before a new process starts writing to our log file directly.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.exec", "os.spawn"}
)


# How long the processes a job leaves behind get between SIGTERM and SIGKILL (spec "grace").
CLEANUP_GRACE = 2.0
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
# Helper processes that multiprocessing (and joblib's loky) start once per process.
TRACKERS = ("multiprocessing.resource_tracker", "joblib.externals.loky.backend.resource_tracker")


# A version keeps its own copy of the model folder's code, in ``<its artifacts>/code``;
# its later jobs run that copy. Left out of the copy: these folders, and files over the limit.
CODE_COPY = "code"
CODE_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})
CODE_FILE_LIMIT = 16 * 1024 * 1024
PREDICTIONS_FILE = "predictions.csv"


class Stopped(BaseException):
    """Raised in the job's main thread when a stop (SIGTERM) arrives."""


class JobError(Exception):
    """A failure modeldeck explains in one line: the log and the job's error say it, no
    traceback."""

    one_line = True


class DatasetRef:
    def __init__(
        self, name: str, path: str, target: str | None, id_column: str | None = None
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.target = target
        self.id_column = id_column  # a column that identifies rows (not a feature), or None

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, path={str(self.path)!r}, target={self.target!r})"


class Context:
    """What a job's code is given: inputs, where to write, and ways to report."""

    def __init__(self, spec: dict[str, Any], events: io.TextIOBase) -> None:
        self.job_id: str = spec["job_id"]
        self.job_type: str = spec["type"]
        self.version: str | None = spec.get("version")
        self.hyperparameters: dict[str, Any] = dict(spec.get("hyperparameters") or {})
        ds = spec.get("dataset")
        self.dataset = (
            DatasetRef(ds["name"], ds["path"], ds.get("target"), ds.get("id_column"))
            if ds
            else None
        )
        self.model_dir = Path(spec["model_dir"]) if spec.get("model_dir") else None
        self.output_dir = Path(spec["output_dir"])
        self.task: str | None = spec.get("task")
        self.params: dict[str, Any] = dict(spec.get("params") or {})
        self.metrics: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self._events = events

    def _emit(self, record: dict[str, Any]) -> None:
        record["at"] = time.time()
        self._events.write(json.dumps(record, default=str) + "\n")
        self._events.flush()

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far along the job is (0.0 .. 1.0), as a ``progress`` event."""
        fraction = min(1.0, max(0.0, float(fraction)))
        self._emit({"kind": "progress", "fraction": fraction, "message": str(message)})

    def record_metrics(self, mapping: dict[str, Any]) -> None:
        """Record numeric metrics on the version this job makes or evaluates."""
        clean: dict[str, Any] = {}
        for key, value in dict(mapping).items():
            try:
                clean[str(key)] = _metric_value(key, value)
            except TypeError as exc:  # one bad value costs that metric, not the run
                shown = _excerpt(value)
                say(f"modeldeck: metric {str(key)!r} skipped: {exc}: {shown}")
                self._emit(
                    {
                        "kind": "metric_skipped",
                        "metric": str(key),
                        "reason": str(exc),
                        "value": shown,
                    }
                )
        if not clean:
            return
        self.metrics.update(clean)
        self._emit({"kind": "metrics_recorded", "metrics": clean})


def _new_line() -> str:
    """``"\\n"`` when the log does not end a line (the job's last output had no newline),
    else ``""``: what goes before a line of modeldeck's own, so it is never glued on."""
    try:
        sys.stdout.flush()
        size = os.fstat(1)
        if not stat.S_ISREG(size.st_mode) or size.st_size == 0:
            return ""  # not a file (nothing to read back), or nothing written yet
        fd = os.open("/proc/self/fd/1", os.O_RDONLY)
        try:
            return "" if os.pread(fd, 1, size.st_size - 1) == b"\n" else "\n"
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return ""


def say(line: str) -> None:
    """A line of modeldeck's own in the job's log, on a line of its own."""
    print(_new_line() + line, flush=True)


def _excerpt(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a user's object whose repr fails
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:79] + "…"


def _metric_value(key: Any, value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError(f"metric {key!r} must be a number, not a bool")
    if isinstance(value, int | float):
        # NaN and infinities are not JSON: they are recorded as null (no value).
        return value if not (isinstance(value, float) and not math.isfinite(value)) else None
    if hasattr(value, "item"):  # numpy scalars
        return _metric_value(key, value.item())
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):
        seq = value.tolist() if hasattr(value, "tolist") else value
        return [_metric_value(key, v) for v in seq]
    raise TypeError(f"metric {key!r} must be a number, not {type(value).__name__}")


def dataset_file(path: Path) -> dict[str, Any]:
    """What a job read: the dataset file's sha256 and size, and its rows and columns (a
    CSV's counted as modeldeck counts them on registration: blank lines are no rows; a
    Parquet file's from its metadata, when pyarrow is there)."""
    import csv
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    info: dict[str, Any] = {"sha256": digest.hexdigest(), "size": size}
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq  # not at import: the runner is standard library only

            meta = pq.ParquetFile(path)
            info["rows"] = int(meta.metadata.num_rows)
            info["columns"] = len(meta.schema_arrow.names)
        else:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader, None) or []
                info["rows"] = sum(1 for row in reader if row)
                info["columns"] = len(header)
    except Exception:  # unreadable as a table: the job's own reading will say why
        pass
    return info


def _load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"modeldeck_user_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _user_function(code_dir: str | None, filename: str, func: str) -> Any:
    if not code_dir:
        return None
    path = Path(code_dir) / filename
    if not path.is_file():
        return None
    module = _load_module(path, path.stem)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise AttributeError(f"{filename} defines no function {func}(context)")
    return fn


def _builtin() -> Any:
    from core import builtin  # heavy (pandas, scikit-learn): only for jobs that need it

    return builtin


def code_files(folder: Path) -> tuple[list[str], list[str]]:
    """The files of a model folder that are its code (relative paths, sorted), and those
    left out for their size. ``__pycache__``, ``.git`` and ``.ipynb_checkpoints`` folders
    are not looked into; symbolic links to folders are not followed."""
    kept: list[str] = []
    big: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in CODE_SKIPPED_DIRS]
        for name in files:
            path = Path(root) / name
            try:
                if not path.is_file():
                    continue  # a dangling link, a socket
                rel = str(path.relative_to(folder))
                (big if path.stat().st_size > CODE_FILE_LIMIT else kept).append(rel)
            except OSError:
                continue
    return sorted(kept), sorted(big)


def code_fingerprint(folder: Path, files: list[str]) -> str:
    """A sha256 of the files' names and bytes: the same for a folder and its copy."""
    digest = hashlib.sha256()
    for rel in files:
        digest.update(os.fsencode(rel) + b"\0")
        with open(folder / rel, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


def pin_code(folder: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Copy the model folder's code into a new version's files (``dest``). The copy is made
    even when it holds no file (all over the limit): it is the version's code all the same,
    and only a copy removed afterwards is gone."""
    files, big = code_files(folder)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / rel, target)
    for rel in big:
        print(
            f"modeldeck: {rel} not kept with the version's code: over "
            f"{CODE_FILE_LIMIT // (1024 * 1024)} MiB",
            flush=True,
        )
    if not files:
        why = f"{', '.join(big)} {'is' if len(big) == 1 else 'are'} over the limit" if big else ""
        print(
            "modeldeck: the version's copy of its code holds no file"
            + (f": {why}" if why else ": the model folder has none to copy"),
            flush=True,
        )
    return files, big


def _code_used(
    ctx: Context, spec: dict[str, Any], entry: str, pinned: tuple[list[str], list[str]] | None
) -> None:
    """Record which code the job runs: its folder and the fingerprint of its files."""
    code_dir = spec.get("code_dir")
    source = spec.get("code_source") or ("repository" if code_dir else "builtin")
    record: dict[str, Any] = {"kind": "code_used", "source": source, "entry": entry}
    if code_dir:
        files, big = pinned if pinned is not None else code_files(Path(code_dir))
        fingerprint = code_fingerprint(Path(code_dir), files)
        record.update(dir=code_dir, fingerprint=fingerprint, files=len(files), skipped=big)
        if pinned is not None:
            record["pinned"] = CODE_COPY  # in the new version's files
    ctx._emit(record)


def _entry(code_dir: str | None, filename: str, func: str, builtin: str) -> tuple[Any, str]:
    fn = _user_function(code_dir, filename, func)
    return (fn, f"{filename}:{func}") if fn is not None else (None, builtin)


def _write_returned_predictions(ctx: Context, returned: Any) -> None:
    """A ``score()`` that wrote no predictions.csv: what it returned (a DataFrame or a
    Series) becomes the file; nothing usable fails the job."""
    path = ctx.output_dir / PREDICTIONS_FILE
    if path.exists():
        return
    if returned is None:
        raise JobError(
            f"score() wrote no {PREDICTIONS_FILE} in context.output_dir and returned nothing"
        )
    if not hasattr(returned, "to_csv"):
        raise JobError(
            f"score() wrote no {PREDICTIONS_FILE} in context.output_dir and returned a "
            f"{type(returned).__name__}, not a DataFrame"
        )
    if hasattr(returned, "to_frame"):  # a Series: one column, named after it
        returned = returned.to_frame(
            name=returned.name if returned.name is not None else "prediction"
        )
    named = getattr(getattr(returned, "index", None), "name", None) is not None
    returned.to_csv(path, index=named)
    say(f"modeldeck: wrote {path} from what score() returned ({len(returned)} rows)")


def run_train(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> None:
    """The model's ``training.py:train`` (it has no built-in): a new version's files."""
    fn = _user_function(code_dir, "training.py", "train")
    if fn is None:
        raise FileNotFoundError(f"no training.py in {code_dir}")
    # The version keeps the code it was trained with; its later jobs run that copy.
    pinned = pin_code(Path(code_dir), Path(spec["model_dir"]) / CODE_COPY) if code_dir else None
    _code_used(ctx, spec, "training.py:train", pinned)
    _returned_metrics(ctx, fn(ctx))
    _monitoring(spec, ctx, code_dir)


def run_evaluate(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> None:
    """The model's ``evaluation.py:evaluate``, else the built-in evaluator."""
    fn, entry = _entry(code_dir, "evaluation.py", "evaluate", "built-in evaluator")
    _code_used(ctx, spec, entry, None)
    _returned_metrics(ctx, (fn or _builtin().evaluate)(ctx))
    _monitoring(spec, ctx, code_dir)


def run_batch_predict(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> None:
    """The model's ``scoring.py:score``, else the built-in scorer."""
    fn, entry = _entry(code_dir, "scoring.py", "score", "built-in scorer")
    _code_used(ctx, spec, entry, None)
    returned = (fn or _builtin().score)(ctx)
    if fn is not None:
        _write_returned_predictions(ctx, returned)
    _monitoring(spec, ctx, code_dir)


def run_compute_stats(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> None:
    """The built-in statistics of the job's dataset."""
    _code_used(ctx, spec, "built-in statistics", None)
    ctx.result["statistics"] = _builtin().compute_stats(ctx)
    _monitoring(spec, ctx, code_dir)


def run_import(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> None:
    """The built-in import of a model file."""
    _code_used(ctx, spec, "built-in import", None)
    ctx.result.update(_builtin().import_model(ctx))


def _returned_metrics(ctx: Context, returned: Any) -> None:
    """A ``train()`` or ``evaluate()`` may return its metrics instead of recording them."""
    if isinstance(returned, dict):
        ctx.record_metrics(returned)


# -- monitoring: a version's baseline, a batch prediction's drift (core.monitoring.jobside) --
# The engine's spec says what a job does besides its own work (``spec["monitoring"]``):
# ``{"baseline": true, "features": [...]}`` records the version's baseline on the job's
# dataset (a training; an imported version's first statistics or evaluation), ``{"compare":
# baseline}`` compares a batch prediction's data and predictions with the baseline. A failure
# there is said in the log and the job's result; the job's own work stands.


def _predictor(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> Callable[[Path], None]:
    """predict(output_dir): the version's predictions of the job's dataset, made as its batch
    predictions make them (its ``scoring.py:score``, else the built-in scorer)."""

    def predict(output_dir: Path) -> None:
        clone = Context(spec, ctx._events)
        clone.dataset, clone.model_dir, clone.output_dir = ctx.dataset, ctx.model_dir, output_dir
        clone.progress = lambda *a, **k: None  # type: ignore[method-assign]
        clone.record_metrics = lambda *a, **k: None  # type: ignore[method-assign]
        clone._emit = lambda record: None  # type: ignore[method-assign]
        fn = _user_function(code_dir, "scoring.py", "score")
        returned = (fn or _builtin().score)(clone)
        if fn is not None:
            _write_returned_predictions(clone, returned)

    return predict


# The files the built-in scorer loads a model from (``core.builtin.MODEL_FILES``).
MODEL_FILES = ("model.joblib", "model.pkl", "model.pickle", "model.onnx")


def _can_predict(code_dir: str | None, model_dir: Path | None) -> bool:
    """Whether the version can predict: its own ``scoring.py``, or a model file the built-in
    scorer loads (checked first: loading the scorer's libraries takes seconds)."""
    if code_dir and (Path(code_dir) / "scoring.py").is_file():
        return True
    return model_dir is not None and any((model_dir / n).is_file() for n in MODEL_FILES)


def _baseline(
    spec: dict[str, Any], ctx: Context, code_dir: str | None, wants: dict[str, Any]
) -> dict[str, Any]:
    """The version's baseline: the statistics of a baseline computed on the same file content
    reused (no numpy, no pyarrow), else computed; the predictions' distribution is the
    version's own either way (a model that can predict imports its libraries anyway)."""
    from core.monitoring import reuse  # standard library only

    predict = _predictor(spec, ctx, code_dir) if _can_predict(code_dir, ctx.model_dir) else None
    out = reuse.reused_baseline(ctx, wants)
    if out is not None:
        if predict is not None:
            from core.monitoring import jobside

            out["prediction"] = jobside.prediction_distribution(ctx, predict)
        return out
    from core.monitoring import jobside  # numpy, pandas, pyarrow: only when needed

    out = jobside.baseline(ctx, predict, wants.get("features"))
    out["sha256"] = reuse.unchanged_sha256(ctx)
    return out


def _monitoring(spec: dict[str, Any], ctx: Context, code_dir: str | None) -> None:
    wants = spec.get("monitoring") or {}
    if not isinstance(wants, dict) or not wants or ctx.dataset is None:
        return
    try:
        if isinstance(wants.get("compare"), dict):
            from core.monitoring import jobside  # numpy, pandas, pyarrow: only when needed

            ctx.result["drift"] = jobside.batch_drift(ctx, wants["compare"])
        elif wants.get("baseline"):
            ctx.result["baseline"] = _baseline(spec, ctx, code_dir, wants)
    except Exception as exc:
        line = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
        say(f"modeldeck: monitoring skipped: {line}")
        ctx.result["monitoring_error"] = line


Runner = Callable[[dict[str, Any], Context, str | None], None]

# What runs in a code job's process, by job type. ``core.kinds`` names these functions (this
# module imports nothing of modeldeck's, so it cannot read the registry); a test checks that
# the two agree.
RUNNERS: dict[str, Runner] = {
    "train": run_train,
    "evaluate": run_evaluate,
    "batch_predict": run_batch_predict,
    "compute_stats": run_compute_stats,
    "import": run_import,
}


def run(spec: dict[str, Any], ctx: Context) -> None:
    kind = spec["type"]
    code_dir = spec.get("code_dir")
    if code_dir and not Path(code_dir).is_dir():
        raise JobError(
            f"model code folder {code_dir} is gone (renamed or removed)"
            + ("" if kind == "train" else "; this version keeps no copy of its code")
        )
    if code_dir:
        sys.path.insert(0, code_dir)  # no bytecode is written there (see ``main``)
    runner = RUNNERS.get(kind)
    if runner is None:
        raise ValueError(f"job type {kind!r} runs no code")
    runner(spec, ctx, code_dir)


def exit_status(value: object) -> tuple[int, str]:
    """What ``sys.exit(value)`` (not 0 nor None) makes of a job: the process's exit status
    (0 to 255, as the system keeps it; a failure is never 0) and its one-line error."""
    if isinstance(value, int):
        code = value & 0xFF or 1
        if code == value:
            return code, f"exited with status {code}"
        return code, f"exited with status {code} (sys.exit({value}))"
    line = str(value).strip().splitlines()[0][:500] if str(value).strip() else ""
    return 1, line or "exited with status 1"


def _flusher(stream: io.TextIOBase, stop: threading.Event) -> None:
    # Block-buffered output keeps a chatty job fast; this bounds how stale the log can be.
    while not stop.wait(FLUSH_INTERVAL):
        try:
            stream.flush()
        except (ValueError, OSError):
            return


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def files_under(folder: Path) -> list[str]:
    """The files under ``folder`` (symbolic links to files too, not into folders), by their
    paths relative to it, sorted; none when there is no such folder."""
    found: list[str] = []
    for root, _dirs, names in os.walk(folder):
        rel = os.path.relpath(root, folder)
        for name in names:
            if os.path.isfile(os.path.join(root, name)):
                found.append(name if rel == "." else os.path.join(rel, name))
    return sorted(found)


def _same_pid(a: str, b: str) -> bool:
    """Whether two ``pid`` files' texts name the same process (pid and start time)."""
    try:
        x, y = a.split(), b.split()
        return int(x[0]) == int(y[0]) and [float(v) for v in x[1:2]] == [float(v) for v in y[1:2]]
    except (ValueError, IndexError):
        return False


def write_pid_file(job_dir: Path, pid: int, start: str) -> None:
    """Write ``pid`` (pid and kernel start time); one already naming the same process (the
    engine and the job's process both write it) is left as it is. A new file is made in
    place: a reader that comes between its making and its one write finds it empty, as if it
    were not there yet. One naming another process is replaced atomically (renaming over a
    file makes ext4 write the new file's data out first: milliseconds, but only then)."""
    text = f"{pid} {start}\n"
    final = job_dir / "pid"
    try:
        fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            if _same_pid(final.read_text(), text):
                return
        except OSError:
            pass
        tmp = job_dir / f"pid.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, final)
        return
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _write_pid(job_dir: Path) -> None:
    """Leave ``pid`` (pid and kernel start time) before any user code runs: an engine that
    died between claiming the job and recording the pid can still find this process."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            data = fh.read()
        start = data[data.rfind(b")") + 2 :].split()[19].decode()
    except (OSError, IndexError):
        start = ""
    write_pid_file(job_dir, os.getpid(), start)


def preload_statistics() -> None:
    """Import what a job computing monitoring statistics needs (numpy, pyarrow: a few tenths
    of a CPU second), in the statistics' fork server, so that its children inherit it."""
    try:
        from core.monitoring import jobside  # noqa: F401
    except Exception:  # a broken install: each job that needs them says so
        pass


def needs_statistics(spec: dict[str, Any]) -> bool:
    """Whether a job computes monitoring statistics: a baseline with no earlier one offered
    to reuse, or a batch prediction's drift."""
    wants = spec.get("monitoring")
    if not isinstance(wants, dict) or not spec.get("dataset"):
        return False
    return isinstance(wants.get("compare"), dict) or bool(
        wants.get("baseline") and not isinstance(wants.get("reuse"), dict)
    )


# -- the job's processes: find them and end them --------------------------------------------
# Used by the job's own process (the runner) when the user's code is done, and by the engine
# when the job's process ended or was killed without being able to clean up.


_LIBC: Any = None  # the C library, through ctypes


def become_subreaper() -> bool:
    """Make orphans among this process's descendants its children instead of init's, so a
    daemon that double-forks into a session of its own can still be found (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    global _LIBC
    try:
        if _LIBC is None:  # once in the fork server; its jobs inherit it (a dlopen each)
            import ctypes

            _LIBC = ctypes.CDLL(None, use_errno=True)
        return _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def process_table() -> dict[int, tuple[int, int, int, bool]]:
    """Every visible process: pid -> (ppid, process group, session, is a zombie)."""
    table: dict[int, tuple[int, int, int, bool]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
            fields = data[data.rfind(b")") + 2 :].split()
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]), fields[0] == b"Z")
        except (OSError, IndexError, ValueError):
            continue
    return table


def _names_job(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in b"\0" + fh.read()
    except OSError:
        return False


def job_processes(
    leader: int, job_id: str | None = None, *, tree: bool = True, ids: bool = True
) -> set[int]:
    """The live processes a job started, but not its leader (the runner) itself.

    That is: the leader's descendants (``tree``: while the leader lives, and it is a
    subreaper, its tree holds every orphan of its code); the members of its process group and
    session (``ids``: while those ids are still the job's); any process whose environment
    names the job (``job_id``: the engine gives every job ``MODELDECK_JOB_ID``, and children
    inherit it); and all their descendants.
    """
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    me = os.getpid()
    roots: set[int] = {leader} if tree else set()
    if ids:
        roots.update(p for p, (_, pgid, sid, _) in table.items() if leader in (pgid, sid))
    if job_id:
        marker = f"\0MODELDECK_JOB_ID={job_id}\0".encode()
        roots.update(p for p in table if p not in roots and p != me and _names_job(p, marker))
    found: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    found.discard(leader)
    found.discard(me)
    return {p for p in found if p in table and not table[p][3]}


def _reap_children() -> bool:
    """Collect our exited children; whether any child (running or not) is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _send(pids: set[int], sig: int, denied: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # e.g. a setuid program: not ours to end
            denied.add(pid)


def end_processes(
    find: Callable[[], set[int]],
    grace: float,
    reap: bool = False,
    subreaper: bool = False,
    settle: float = 0.0,
    limit: float = 10.0,
) -> set[int]:
    """End the processes ``find()`` returns, until it returns none: after ``settle`` seconds
    (for those about to end by themselves), SIGTERM; what is still there ``grace`` seconds
    after the start is stopped (SIGSTOP: no more forking), then killed.

    ``reap`` collects our own exited children meanwhile (only for the job's own process:
    the engine never reaps children it does not know); a ``subreaper`` with no child left
    has no descendant left either, so it need not look further. Gives up after ``limit``
    seconds. Returns every pid it signalled.
    """
    seen: set[int] = set()
    denied: set[int] = set()
    start = time.monotonic()
    pause = 0.002
    while True:
        if reap and not _reap_children() and subreaper:
            return seen
        left = find() - denied
        if not left:
            return seen
        if time.monotonic() - start < min(settle, grace):  # a moment to end by themselves
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            continue
        new = left - seen
        seen |= left
        if time.monotonic() - start >= grace:
            break
        _send(new, signal.SIGTERM, denied)
        _send(new, signal.SIGCONT, denied)  # a stopped process gets its SIGTERM now
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    end = start + grace + limit
    while left and time.monotonic() < end:
        frozen: set[int] = set()
        # Stop them all first, so that none forks while they are being killed.
        while left - frozen and time.monotonic() < end:
            _send(left - frozen, signal.SIGSTOP, denied)
            frozen |= left
            left = (find() | frozen) - denied
        seen |= frozen
        _send(frozen, signal.SIGKILL, denied)
        if reap:
            _reap_children()
        time.sleep(0.005)
        left = find() - denied
    if reap:
        _reap_children()
    return seen


def _exit_handlers() -> None:
    """What the interpreter does at exit, in its order, now (each runs once): libraries end
    the processes they started there (a process pool, joblib's workers); killing those
    workers under them instead can hang them."""
    import atexit

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()  # executors' exit hooks, then non-daemon threads are joined
    atexit._run_exitfuncs()
    # A resource tracker ignores SIGTERM and ends, unlinking what was leaked, when the pipe
    # from us closes: at our exit. Close it now, so it ends by itself instead of killed.
    for name in TRACKERS:
        tracker = getattr(sys.modules.get(name), "_resource_tracker", None)
        fd = getattr(tracker, "_fd", None)
        if isinstance(fd, int):
            try:
                os.close(fd)
            except OSError:
                pass
            tracker._fd = None


def main(argv: list[str]) -> int:
    job_dir = Path(argv[1])
    _write_pid(job_dir)
    # The user's modules are imported from their repository, or from a version's copy of its
    # code: no __pycache__ is left in either (in a checkout it would make the next training's
    # code fingerprint "+dirty"), nor by the Pythons the job starts.
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    # Orphans of the job's code (a double-forked daemon too) become ours, so we can end them.
    subreaper = become_subreaper()
    spec = json.loads((job_dir / "spec.json").read_text())
    # One stream for both, so stdout and stderr lines keep their order in the log.
    raw = open(1, "wb", closefd=False, buffering=65536)  # noqa: SIM115  (lives as long as the job)
    out = io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace")
    sys.stdout = sys.stderr = out
    stop_flush = threading.Event()
    # Not threading.Thread: its start() waits until the new thread runs, and a job that
    # just started waits milliseconds for a CPU on a busy machine. A bare thread dies with
    # the process as a daemon thread would, and is no thread the job's code could join.
    _thread.start_new_thread(_flusher, (out, stop_flush))

    def flush_before_spawn(event: str, _args: Any) -> None:
        # A child process (subprocess, os.system) writes to the log file itself: let the
        # lines we still buffer go first, or its output lands ahead of earlier prints.
        if event in SPAWN_EVENTS:
            try:
                out.flush()
            except (ValueError, OSError, RuntimeError):
                pass

    sys.addaudithook(flush_before_spawn)

    finishing = False

    def on_term(_sig: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not finishing:
            raise Stopped()

    signal.signal(signal.SIGTERM, on_term)
    # A process the job's code forks is not the runner: SIGTERM ends it as it would any
    # program, instead of raising Stopped (or being ignored) in the middle of its code.
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    started = time.time()
    result: dict[str, Any] = {"status": "failed", "error": None}
    code = 1
    with open(job_dir / "events.jsonl", "a", encoding="utf-8") as events:
        ctx = Context(spec, events)
        Path(spec["output_dir"]).mkdir(parents=True, exist_ok=True)
        if spec.get("model_dir"):
            Path(spec["model_dir"]).mkdir(parents=True, exist_ok=True)
        try:
            if ctx.dataset is not None:
                try:  # the file as this job reads it, recorded with the job
                    ctx.result["dataset_file"] = dataset_file(ctx.dataset.path)
                except OSError:
                    pass  # a missing file: the job's own reading says so
            run(spec, ctx)
            result["status"] = "completed"
            code = 0
        except Stopped:
            say("modeldeck: stop requested; the job was interrupted")
            result.update(status="cancelled", error="stopped")
            code = 143
        except BaseException as exc:  # the user's code may raise anything, SystemExit included
            if isinstance(exc, SystemExit) and exc.code in (0, None):
                result["status"] = "completed"
                code = 0
            elif isinstance(exc, SystemExit):
                # The code's own exit: its status is the job's (a message exits with 1, as
                # Python does), said in one line; no traceback of sys.exit().
                code, result["error"] = exit_status(exc.code)
                say(f"error: {result['error']}")
            elif getattr(exc, "one_line", False) is True:
                # A failure modeldeck explains itself (a corrupt model file): its one line,
                # not a traceback through the library that tripped over it.
                line = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
                result["error"] = line or type(exc).__name__
                say(f"error: {result['error']}")
            else:
                import traceback  # only a failing job pays for it (~3 ms of every start)

                print(_new_line(), end="")
                traceback.print_exc()
                line = traceback.format_exception_only(type(exc), exc)[-1].strip()
                result["error"] = line.splitlines()[0][:500] if line else type(exc).__name__
        try:
            _exit_handlers()
        except BaseException:  # a stop, or a handler's own error: the job's code has ended
            pass
        finishing = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # The job is over: nothing it started may outlive it.
        me = os.getpid()
        ended = end_processes(
            lambda: job_processes(me),
            float(spec.get("grace", CLEANUP_GRACE)),
            reap=True,
            subreaper=subreaper,
            settle=0.25,
        )
        if ended:
            say(f"modeldeck: ended {len(ended)} process(es) the job left running")
        try:
            out.flush()
        except (ValueError, OSError):
            pass
        stop_flush.set()
        result.update(
            metrics=ctx.metrics,
            outputs=files_under(ctx.output_dir),
            duration=time.time() - started,
            exit_code=code,
            **{k: v for k, v in ctx.result.items() if k not in result},
        )
        _write_json(job_dir / "result.json", result)
    return code


def job_path() -> None:
    """``sys.path`` as a job's process wants it, once ``core`` is imported by code that put
    the modeldeck root first (``core.engine.executor.boot_code``): that root last, so the
    user's ``import tests`` never finds ours (a job's code folder goes first when it runs)."""
    sys.path.append(sys.path.pop(0))


def boot() -> None:
    """The start of a new interpreter's job process (``python -c "...; boot()" JOB_DIR``,
    see ``core.engine.executor.boot_code``): as if started by path, but from this module's
    cached bytecode (a script started by path is compiled from source every time: ~10 ms)."""
    job_path()
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    # Started by path, Python put core/ first on sys.path: take it off, so the user's
    # `import schedule` or `import models` never finds ours, and make the package
    # importable for the built-in evaluators instead.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.append(str(here.parent))
    sys.exit(main(sys.argv))
