"""Built-in job code: evaluator, scorer, statistics and BYOM import.

Imported only inside a job's own process (pandas and scikit-learn are heavy), never by the
engine, the CLI or the TUI.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import first_line
from core.text import without_userinfo

MODEL_FILES = ("model.joblib", "model.pkl", "model.pickle", "model.onnx")
MAX_BYTES_ENV = "MODELDECK_IMPORT_MAX_BYTES"
TIMEOUT_ENV = "MODELDECK_IMPORT_TIMEOUT"
DEFAULT_IMPORT_MAX_BYTES = 1 << 30
DEFAULT_IMPORT_TIMEOUT = 600.0


class BuiltinError(Exception):
    """A failure the built-in code expects (no model file, a dataset it cannot read): the
    job fails with this one line, no traceback."""

    one_line = True  # the runner prints "error: <message>" instead of a traceback


def read_dataset(path: Path) -> pd.DataFrame:
    """The dataset file as a frame; a file that is gone or not a readable table fails the
    job in one line."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except OSError as exc:  # gone, unreadable
        raise BuiltinError(
            f"cannot read the dataset file {path}: {exc.strerror or first_line(exc)}"
        ) from None
    except ValueError as exc:  # pandas' and pyarrow's parse errors, an undecodable file
        raise BuiltinError(
            f"the dataset file {path} is not a readable table: {first_line(exc)[:200]}"
        ) from None


def split_xy(frame: pd.DataFrame, target: str | None) -> tuple[pd.DataFrame, pd.Series | None]:
    if target and target in frame.columns:
        return frame.drop(columns=[target]), frame[target]
    return frame, None


class ModelFileError(BuiltinError, ValueError):
    """A model file that cannot be used: the job fails with this one line, no traceback."""

    one_line = True  # the runner prints "error: <message>" instead of a traceback


class OnnxModel:
    """An ONNX graph behind the same ``predict`` as a scikit-learn estimator."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelFileError(
                "ONNX models need onnxruntime: install it with `uv sync --extra onnx`"
            ) from None
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, frame: Any) -> np.ndarray:
        data = np.asarray(frame, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input_name: data})[0]).ravel()


def load_model_file(path: Path, fmt: str) -> Any:
    if fmt == "onnx":
        try:
            return OnnxModel(path)
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(
                f"{path.name} is not a readable onnx file of a model: "
                f"{type(exc).__name__}: {str(exc).strip()[:200]}"
            ) from None
    try:
        if fmt == "joblib":
            import joblib

            model = joblib.load(path)
        else:
            with open(path, "rb") as fh:
                model = pickle.load(fh)
    except Exception as exc:
        # A corrupt or truncated file fails deep inside the unpickler (KeyError: 110,
        # UnpicklingError, EOFError, ...): say what the file is not, and why, in one line.
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ModelFileError(
            f"{path.name} is not a readable {fmt} file of a model "
            f"(corrupt, truncated or another format): {why[:200]}"
        ) from None
    if not callable(getattr(model, "predict", None)):
        raise ModelFileError(f"the object in {path.name} ({type(model).__name__}) has no predict()")
    return model


def _format_of(path: Path) -> str:
    return {".joblib": "joblib", ".onnx": "onnx"}.get(path.suffix, "pickle")


def load_model(model_dir: Path) -> Any:
    """The estimator a version keeps in its model dir (``model.joblib``, ``.pkl`` or ``.onnx``)."""
    for name in MODEL_FILES:
        path = model_dir / name
        if path.is_file():
            return load_model_file(path, _format_of(path))
    raise ModelFileError(
        f"no model file in {model_dir}: save the estimator as model.joblib "
        "(or give the model its own evaluation.py / scoring.py)"
    )


def align(model: Any, x: pd.DataFrame) -> pd.DataFrame:
    """The columns in the order the estimator was fitted with (scikit-learn refuses another
    order), when it knows their names and the frame has them all."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return x
    names = [str(n) for n in names]
    missing = [n for n in names if n not in set(map(str, x.columns))]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise BuiltinError(
            f"the dataset lacks {len(missing)} column(s) the model was fitted with: {shown}"
        )
    return x[names]


def _is_classifier(model: Any, task: str | None, y: pd.Series | None) -> bool:
    if task:
        return task == "classification"
    if getattr(model, "_estimator_type", None) == "classifier" or hasattr(model, "predict_proba"):
        return True
    if y is not None:
        return not pd.api.types.is_float_dtype(y)
    return False


def evaluate(context: Any) -> dict[str, Any]:
    """Classification: accuracy, precision, recall, F1, ROC AUC, confusion matrix; regression:
    MAE, RMSE, R2."""
    ds = context.dataset
    frame = read_dataset(ds.path)
    if not ds.target or ds.target not in frame.columns:
        raise BuiltinError(f"dataset {ds.name!r} has no target column to evaluate against")
    x, y = split_xy(frame, ds.target)
    model = load_model(context.model_dir)
    x = align(model, _features(model, x, id_column(frame, ds, model)))
    print(f"evaluating on {ds.name}: {len(frame)} rows, target {ds.target!r}")
    pred = model.predict(x)
    classifier = _is_classifier(model, context.task, y)

    def proba() -> Any:
        return model.predict_proba(x) if hasattr(model, "predict_proba") else None

    result = metrics_of(y, pred, classifier, proba)
    for key, value in result.items():
        if key != "confusion_matrix":
            print(f"  {key:<10} {value:.4f}")
    context.record_metrics(result)
    return {}


def metrics_of(y: Any, pred: Any, classifier: bool, proba: Any = None) -> dict[str, Any]:
    """The evaluation metrics of predictions against the truth. Classification: accuracy,
    precision, recall, F1, ROC AUC (when ``proba()`` gives the class probabilities, in the
    order of the sorted classes) and the confusion matrix; regression: MAE, RMSE, R2."""
    from sklearn import metrics as m

    y = pd.Series(np.asarray(y).ravel())
    if classifier:
        labels = sorted(pd.unique(pd.concat([y, pd.Series(np.asarray(pred).ravel())])).tolist())
        avg = "binary" if len(labels) == 2 else "macro"
        pos = labels[-1] if avg == "binary" else 1
        result: dict[str, Any] = {
            "accuracy": m.accuracy_score(y, pred),
            "precision": m.precision_score(y, pred, average=avg, pos_label=pos, zero_division=0),
            "recall": m.recall_score(y, pred, average=avg, pos_label=pos, zero_division=0),
            "f1": m.f1_score(y, pred, average=avg, pos_label=pos, zero_division=0),
        }
        if proba is not None and y.nunique() > 1:
            try:
                p = proba()
                if p is not None:
                    p = np.asarray(p)
                    if p.shape[1] == 2:
                        result["roc_auc"] = m.roc_auc_score(y, p[:, 1])
                    else:
                        result["roc_auc"] = m.roc_auc_score(y, p, multi_class="ovr")
            except ValueError as exc:
                print(f"warning: ROC AUC not computed: {exc}")
        result["confusion_matrix"] = m.confusion_matrix(y, pred, labels=labels).tolist()
        return result
    return {
        "mae": m.mean_absolute_error(y, pred),
        "rmse": float(np.sqrt(m.mean_squared_error(y, pred))),
        "r2": m.r2_score(y, pred),
    }


def id_column(frame: pd.DataFrame, ds: Any, model: Any = None) -> str | None:
    """The column that identifies rows: the dataset's ``id_column``, else one named
    ``id``; None when the frame has neither."""
    named = getattr(ds, "id_column", None)
    for name in (named, "id"):
        if name and name in frame.columns and name != ds.target:
            return str(name)
    return None


def _features(model: Any, x: pd.DataFrame, ident: str | None) -> pd.DataFrame:
    """The frame without the id column, unless the model was fitted on it."""
    names = getattr(model, "feature_names_in_", None)
    if ident is None or (names is not None and ident in [str(n) for n in names]):
        return x
    return x.drop(columns=[ident])


def prediction_summary(pred: Any, classifier: bool) -> dict[str, Any]:
    """Class counts (most frequent first) or the mean and quantiles of the predictions."""
    from core.predictions import MOST_CLASSES, QUANTILES

    values = pd.Series(np.asarray(pred).ravel())
    if classifier:
        counts = values.astype(str).value_counts()
        top = counts.head(MOST_CLASSES)
        return {
            "kind": "classes",
            "rows": len(values),
            "counts": {str(k): int(v) for k, v in top.items()},
            "other": int(counts.iloc[MOST_CLASSES:].sum()),
        }
    numbers = pd.to_numeric(values, errors="coerce").dropna().astype(float)

    def num(x: Any) -> float | None:
        x = float(x)
        return x if math.isfinite(x) else None

    empty = numbers.empty
    return {
        "kind": "numbers",
        "rows": len(values),
        "mean": None if empty else num(numbers.mean()),
        "std": None if len(numbers) < 2 else num(numbers.std(ddof=1)),
        "min": None if empty else num(numbers.min()),
        "max": None if empty else num(numbers.max()),
        "quantiles": {q: None if empty else num(numbers.quantile(float(q))) for q in QUANTILES},
    }


def score(context: Any) -> None:
    """Predict every row of the deployment's dataset into ``predictions.csv``: the id
    column when the dataset has one (else the row number), the prediction, and the class
    probabilities when the model gives them. A summary goes to the log and the job."""
    from core.predictions import PREDICTIONS_FILE, summary_text

    ds = context.dataset
    frame = read_dataset(ds.path)
    x, _ = split_xy(frame, ds.target)
    model = load_model(context.model_dir)
    ident = id_column(frame, ds, model)
    x = align(model, _features(model, x, ident))
    print(f"scoring {len(frame)} rows of {ds.name}" + (f" (ids from {ident!r})" if ident else ""))
    # An empty batch (its file has the header only: no new data this time) has no
    # predictions, and is no error: models refuse to predict zero rows, so they are not asked.
    pred = model.predict(x) if len(x) else np.array([])
    first = {ident: frame[ident].to_numpy()} if ident else {"row": np.arange(len(frame))}
    out = pd.DataFrame({**first, "prediction": pred})
    classes = getattr(model, "classes_", None)
    if hasattr(model, "predict_proba") and (len(x) or classes is not None):
        proba = model.predict_proba(x) if len(x) else np.empty((0, len(classes)))
        classes = classes if classes is not None else range(proba.shape[1])
        for i, cls in enumerate(classes):
            out[f"proba_{cls}"] = proba[:, i]
    path = context.output_dir / PREDICTIONS_FILE
    out.to_csv(path, index=False)
    summary = prediction_summary(pred, _is_classifier(model, context.task, None))
    context.result["predictions"] = summary
    context.progress(1.0, f"wrote {len(out)} predictions")
    print(f"wrote {path}")
    print(summary_text(summary))


def compute_stats(context: Any) -> dict[str, Any]:
    """Per-column statistics (``core.monitoring.profile``: read in chunks, bounded memory):
    count and missing; numeric summaries, histogram and decile bins; categorical top values."""
    from core.monitoring.jobside import dataset_statistics

    return dataset_statistics(context)["statistics"]


class ImportLimitError(BuiltinError):
    """A download went over the import size or time limit. (Not an OSError: httpx would
    take it for a network error of its own.)"""


class DownloadError(BuiltinError):
    """A download that failed: refused, unreachable, an HTTP error status."""


def _limit(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BuiltinError(f"{name} must be a positive number, not {raw!r}")
    return value


def import_limits() -> tuple[int, float]:
    """The most bytes an import may download and the most seconds it may take, from
    ``$MODELDECK_IMPORT_MAX_BYTES`` and ``$MODELDECK_IMPORT_TIMEOUT`` (the engine's
    environment; defaults 1 GiB and 600 s)."""
    size = _limit(MAX_BYTES_ENV, DEFAULT_IMPORT_MAX_BYTES)
    return int(size), _limit(TIMEOUT_ENV, DEFAULT_IMPORT_TIMEOUT)


@contextlib.contextmanager
def _time_limit(seconds: float, message: str) -> Iterator[None]:
    """Raise ImportLimitError when ``seconds`` pass, even in the middle of a blocking read
    (a server may send a byte just before each read would time out). Only the main thread
    gets signals: elsewhere the caller checks the time between chunks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(_sig: int, _frame: Any) -> None:
        raise ImportLimitError(message)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _download(source: str, dest: Path, digest: Any) -> None:
    import httpx

    max_bytes, timeout = import_limits()
    too_big = f"more than {max_bytes} bytes (the limit, {MAX_BYTES_ENV})"
    too_slow = f"the download took more than {timeout:g} s (the limit, {TIMEOUT_ENV})"
    shown = without_userinfo(source)  # a token in the URL stays out of the log and the error
    print(f"downloading {shown} (at most {max_bytes} bytes in {timeout:g} s)")
    deadline = time.monotonic() + timeout
    try:
        with (
            _time_limit(timeout, too_slow),
            httpx.stream("GET", source, follow_redirects=True, timeout=min(60.0, timeout)) as r,
        ):
            r.raise_for_status()
            length = r.headers.get("content-length", "").strip()
            if length.isdigit() and int(length) > max_bytes:
                raise ImportLimitError(f"the server announces Content-Length {length}: {too_big}")
            size = 0
            with open(dest, "wb") as fh:
                for chunk in r.iter_bytes(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ImportLimitError(f"the download is {too_big}")
                    if time.monotonic() > deadline:
                        raise ImportLimitError(too_slow)
                    digest.update(chunk)
                    fh.write(chunk)
    except httpx.HTTPStatusError as exc:
        answer = exc.response
        raise DownloadError(
            f"could not download {shown}: HTTP {answer.status_code} {answer.reason_phrase}"
        ) from None
    # Refused, unreachable, timed out, a broken answer; a URL httpx cannot use (a bad port,
    # a host name IDNA refuses).
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise DownloadError(f"could not download {shown}: {first_line(exc)}") from None


def _fetch(source: str, dest: Path) -> str:
    """Copy or download ``source`` to ``dest``; its sha256. A download is bounded in size
    and time (see ``import_limits``); what it left is removed when it fails."""
    digest = hashlib.sha256()
    if source.lower().startswith(("http://", "https://")):
        try:
            _download(source, dest, digest)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
    else:
        print(f"copying {source}")
        try:
            src = open(source, "rb")  # noqa: SIM115  (closed below)
        except OSError as exc:  # gone since the import was asked for, unreadable
            raise BuiltinError(f"cannot read {source}: {exc.strerror or first_line(exc)}") from None
        with src, open(dest, "wb") as fh:
            while chunk := src.read(1 << 16):
                digest.update(chunk)
                fh.write(chunk)
    return digest.hexdigest()


def import_model(context: Any) -> dict[str, Any]:
    """Store a BYOM file in the version's model dir and check that it loads."""
    source = context.params["source"]
    fmt = context.params["format"]
    ext = {"joblib": "joblib", "pickle": "pkl", "onnx": "onnx"}[fmt]
    dest = context.model_dir / f"model.{ext}"
    sha = _fetch(source, dest)
    size = dest.stat().st_size
    print(f"stored {size} bytes, sha256 {sha}")
    model = load_model_file(dest, fmt)
    kind = type(model).__name__
    print(f"loaded {kind}: ok")
    names = getattr(model, "feature_names_in_", None)
    features = [str(n) for n in names] if names is not None else None
    return {
        "sha256": sha,
        "size": size,
        "format": fmt,
        "source": source,
        "class": kind,
        "features": features,
    }
