"""Monitoring in a job's own process: a version's baseline (training, or an imported
version's first statistics or evaluation) and a batch prediction's drift against it.

Imported by the runner only for the jobs that need it (numpy, pyarrow, pandas are heavy).
What it returns goes into the job's ``result.json``; the engine checks it and stores it
(``core.monitoring.record``).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core.monitoring import drift as maths
from core.monitoring.profile import profile, profile_file, table_batches

PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
MAX_CLASSES = 20  # integer predictions with at most this many values are classes
# predict(output_dir): the version's predictions of the job's dataset into
# ``output_dir/predictions.csv``, the way its batch predictions make them.
Predict = Callable[[Path], None]


def _total_rows(ctx: Any) -> int | None:
    rows = (ctx.result.get("dataset_file") or {}).get("rows")
    return rows if isinstance(rows, int) and rows > 0 else None


def dataset_statistics(ctx: Any, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's dataset profiled (``profile.profile_file``): ``{"statistics": the
    compute_stats record, "profile": everything}``."""
    ds = ctx.dataset
    total = _total_rows(ctx)
    print(f"computing statistics of {ds.name}" + (f": {total} rows" if total else ""), flush=True)

    def progress(rows: int) -> None:
        if total:
            ctx.progress(min(1.0, rows / total), f"{rows} rows read")

    prof = profile_file(ds.path, reference=reference, progress=progress)
    cols = prof["columns"]
    print(f"statistics computed for {len(cols)} columns of {prof['rows']} rows", flush=True)
    return {
        "statistics": {"rows": prof["rows"], "dataset": ds.name, "columns": cols},
        "profile": prof,
    }


def _ignored(ctx: Any, columns: list[str]) -> list[str]:
    """The columns that are no features: the target, and the id column (the dataset's, else
    one named ``id``)."""
    ds = ctx.dataset
    out = [ds.target] if ds.target else []
    for name in (getattr(ds, "id_column", None), "id"):
        if name and name in columns and name != ds.target:
            out.append(name)
            break
    return out


def _read_predictions(path: Path) -> pd.DataFrame | None:
    """The prediction and class-probability columns of a predictions file (None without a
    ``prediction`` column)."""
    if not path.is_file():
        return None
    header = pd.read_csv(path, nrows=0).columns
    if PREDICTION not in header:
        return None
    wanted = [c for c in header if c == PREDICTION or str(c).startswith(PROBA_PREFIX)]
    return pd.read_csv(path, usecols=wanted)


def prediction_kind(task: str | None, values: pd.Series) -> str:
    """``categorical`` (classes) or ``numeric``: as the model's task says, else text and
    booleans are classes, and so are whole numbers with at most MAX_CLASSES values."""
    if task in ("classification", "regression"):
        return "categorical" if task == "classification" else "numeric"
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "categorical"
    ok = values.dropna()
    whole = bool(len(ok)) and bool(np.all(np.mod(ok.to_numpy(dtype=float), 1) == 0))
    return "categorical" if whole and ok.nunique() <= MAX_CLASSES else "numeric"


def _prediction_profile(
    values: pd.Series, kind: str, reference: dict[str, Any] | None
) -> dict[str, Any]:
    if kind == "categorical":
        arr = pa.array(values.astype("string"), type=pa.string())
    else:
        arr = pa.array(pd.to_numeric(values, errors="coerce"), type=pa.float64())
    table = pa.table({PREDICTION: arr})
    ref = {PREDICTION: reference} if reference is not None else None
    texts = [PREDICTION] if kind == "categorical" else []
    return profile(table_batches(table), reference=ref, text_columns=texts)


def _predict(predict: Predict, job_dir: Path) -> pd.DataFrame | None:
    out = job_dir / "baseline-predictions"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        predict(out)
        return _read_predictions(out / "predictions.csv")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def baseline(ctx: Any, predict: Predict | None, features: list[str] | None) -> dict[str, Any]:
    """A version's baseline on the job's dataset: its statistics, a sample of each numeric
    column and the distribution of the version's predictions on it (when it can predict)."""
    stats = dataset_statistics(ctx)
    prof = stats["profile"]
    names = list(prof["columns"])
    ignored = _ignored(ctx, names)
    feats = [f for f in (features or names) if f not in ignored]
    out: dict[str, Any] = {
        "dataset": ctx.dataset.name,
        "rows": prof["rows"],
        "features": feats,
        "ignored": ignored,
        "statistics": stats["statistics"],
        "samples": {k: v for k, v in prof["kept"].items() if k in feats},
        "prediction": None,
    }
    if predict is not None:
        print(f"modeldeck: baseline: the version's predictions on {ctx.dataset.name}", flush=True)
        try:
            frame = _predict(predict, ctx.output_dir.parent)
        except Exception as exc:  # the baseline goes on without the prediction distribution
            frame = None
            print(f"modeldeck: baseline: no predictions ({type(exc).__name__}: {exc})", flush=True)
        if frame is not None:
            kind = prediction_kind(ctx.task, frame[PREDICTION])
            pp = _prediction_profile(frame[PREDICTION], kind, None)
            out["prediction"] = {
                "kind": kind,
                "stats": pp["columns"][PREDICTION],
                "sample": pp["kept"].get(PREDICTION),
            }
    print(
        f"modeldeck: baseline of {len(feats)} features on {prof['rows']} rows"
        + (", with the predictions' distribution" if out["prediction"] else ""),
        flush=True,
    )
    return out


def _metrics(ctx: Any, frame: pd.DataFrame, kind: str) -> dict[str, Any]:
    """The model's metrics on the scored data, when it carries the target column."""
    from core.builtin import metrics_of

    ds = ctx.dataset
    path = Path(ds.path)
    if path.suffix.lower() in (".parquet", ".pq"):
        y = pd.read_parquet(path, columns=[ds.target])[ds.target]
    else:
        y = pd.read_csv(path, usecols=[ds.target])[ds.target]
    if len(y) != len(frame):
        print(
            f"modeldeck: no metrics: {len(frame)} predictions for {len(y)} rows of {ds.name}",
            flush=True,
        )
        return {}
    proba_cols = [c for c in frame.columns if str(c).startswith(PROBA_PREFIX)]
    keep = y.notna().to_numpy()
    pred = frame[PREDICTION].to_numpy()[keep]
    y = y[keep]
    if kind == "categorical" and pd.api.types.is_numeric_dtype(y):
        pred = pd.to_numeric(pd.Series(pred), errors="coerce").to_numpy()
    proba = (lambda: frame[proba_cols].to_numpy()[keep]) if len(proba_cols) > 1 else None
    result = metrics_of(y, pred, kind == "categorical", proba)
    result.pop("confusion_matrix", None)
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in result.items()}


def batch_drift(ctx: Any, reference: dict[str, Any]) -> dict[str, Any]:
    """A batch prediction's drift against its version's baseline (``reference``, as the
    engine's spec gives it), and the model's metrics when the scored data has the target."""
    stats = dataset_statistics(ctx, reference=reference.get("columns") or {})
    prof = stats["profile"]
    base = {"columns": reference.get("columns") or {}, "samples": reference.get("samples") or {}}
    features = [str(f) for f in reference.get("features") or []]
    ignored = _ignored(ctx, list(prof["columns"])) + list(reference.get("ignored") or [])
    out: dict[str, Any] = {
        "baseline": reference.get("id"),
        "scored_rows": prof["rows"],
        "features": maths.compare(base, prof, features, ignored),
        "prediction": None,
        "metrics": {},
    }
    frame = _read_predictions(ctx.output_dir / "predictions.csv")
    pred_ref = reference.get("prediction")
    if frame is not None and isinstance(pred_ref, dict):
        kind = pred_ref.get("kind", "numeric")
        pp = _prediction_profile(frame[PREDICTION], kind, pred_ref.get("stats"))
        out["prediction"] = maths.compare_column(
            PREDICTION,
            pred_ref.get("stats") or {},
            pp["columns"][PREDICTION],
            pred_ref.get("sample"),
            pp["samples"].get(PREDICTION),
        )
    if frame is not None and ctx.dataset.target and ctx.dataset.target in prof["columns"]:
        kind = (pred_ref or {}).get("kind") or prediction_kind(ctx.task, frame[PREDICTION])
        try:
            out["metrics"] = _metrics(ctx, frame, kind)
        except Exception as exc:
            print(f"modeldeck: no metrics: {type(exc).__name__}: {exc}", flush=True)
    worst = sorted(
        (f for f in out["features"] if f.get("psi") is not None),
        key=lambda f: -f["psi"],
    )[:3]
    shown = ", ".join(f"{f['name']} {f['psi']:.3f}" for f in worst)
    print(f"modeldeck: drift against the baseline: PSI {shown or '-'}", flush=True)
    return out
