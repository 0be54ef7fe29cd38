"""Monitoring in a job's own process: a version's baseline (training, or an imported
version's first statistics or evaluation) and a batch prediction's drift against it.

Imported by the runner only for the jobs that need it (numpy and pyarrow are heavy; pandas
and scikit-learn only to compute metrics).
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
import pyarrow as pa
import pyarrow.compute as pc

from core.monitoring import drift as maths
from core.monitoring.profile import floats, profile, profile_file, table_batches
from core.monitoring.reuse import ignored_columns
from core.runner import say

PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
MAX_CLASSES = 20  # integer predictions with at most this many values are classes
# predict(output_dir): the version's predictions of the job's dataset into
# ``output_dir/predictions.csv``, the way its batch predictions make them.
Predict = Callable[[Path], None]


def _total_rows(ctx: Any) -> int | None:
    rows = (ctx.result.get("dataset_file") or {}).get("rows")
    return rows if isinstance(rows, int) and rows > 0 else None


def dataset_statistics(
    ctx: Any, reference: dict[str, Any] | None = None, quiet: bool = False
) -> dict[str, Any]:
    """The job's dataset profiled (``profile.profile_file``): ``{"statistics": the
    compute_stats record, "profile": everything}``; ``quiet``: nothing in the log and no
    progress (a baseline or a drift check is a step after the job's own work, not its
    progress)."""
    ds = ctx.dataset
    total = _total_rows(ctx)
    if not quiet:
        print(f"computing statistics of {ds.name}" + (f": {total} rows" if total else ""))

    def progress(rows: int) -> None:
        if total and not quiet:
            ctx.progress(min(1.0, rows / total), f"{rows} rows read")

    prof = profile_file(ds.path, reference=reference, progress=progress)
    if not quiet:
        print(f"statistics computed for {len(prof['columns'])} columns of {prof['rows']} rows")
    return {
        "statistics": {"rows": prof["rows"], "dataset": ds.name, "columns": prof["columns"]},
        "profile": prof,
    }


def _read_predictions(path: Path) -> pa.Table | None:
    """The prediction and class-probability columns of a predictions file (None without a
    ``prediction`` column, or without rows)."""
    import pyarrow.csv as pcsv

    if not path.is_file():
        return None
    reader = pcsv.open_csv(path)
    names = reader.schema.names
    reader.close()
    if PREDICTION not in names:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        say(
            f"modeldeck: {path.name} has no {PREDICTION!r} column ({shown}): no prediction "
            "drift or performance is measured"
        )
        return None
    wanted = [c for c in names if c == PREDICTION or c.startswith(PROBA_PREFIX)]
    try:
        table = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(include_columns=wanted, strings_can_be_null=True),
        )
    except pa.ArrowInvalid:  # types that change down the file: the predictions as text
        table = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                include_columns=wanted, column_types={PREDICTION: pa.string()}
            ),
        )
    return table if table.num_rows else None


def _is_number(arr: pa.ChunkedArray) -> bool:
    return pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)


def prediction_kind(task: str | None, values: pa.ChunkedArray) -> str:
    """``categorical`` (classes) or ``numeric``: as the model's task says, else text and
    booleans are classes, and so are whole numbers with at most MAX_CLASSES values."""
    if task in ("classification", "regression"):
        return "categorical" if task == "classification" else "numeric"
    if not _is_number(values):
        return "categorical"
    ok = floats(values)
    ok = ok[~np.isnan(ok)]
    whole = bool(len(ok)) and bool(np.all(np.mod(ok, 1) == 0))
    return "categorical" if whole and len(np.unique(ok)) <= MAX_CLASSES else "numeric"


def _prediction_profile(
    values: pa.ChunkedArray, kind: str, reference: dict[str, Any] | None
) -> dict[str, Any]:
    if kind == "categorical":
        arr = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    elif _is_number(values):
        arr = pc.cast(values, pa.float64())
    else:  # text where numbers were: what parses as a number, the rest missing
        arr = pa.chunked_array(
            [pa.array(_floats(values.to_pylist()), type=pa.float64())], type=pa.float64()
        )
    table = pa.table({PREDICTION: arr})
    ref = {PREDICTION: reference} if reference is not None else None
    texts = [PREDICTION] if kind == "categorical" else []
    return profile(table_batches(table), reference=ref, text_columns=texts)


def _floats(values: list[Any]) -> list[float | None]:
    out: list[float | None] = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(None)
    return out


def _predict(predict: Predict, job_dir: Path) -> pa.Table | None:
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
    stats = dataset_statistics(ctx, quiet=True)
    prof = stats["profile"]
    names = list(prof["columns"])
    ignored = ignored_columns(ctx, names)
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
        out["prediction"] = prediction_distribution(ctx, predict)
    return out


def prediction_distribution(ctx: Any, predict: Predict) -> dict[str, Any] | None:
    """The distribution of the version's predictions on the job's dataset (None when it
    made none: said in the log)."""
    try:
        frame = _predict(predict, ctx.output_dir.parent)
    except Exception as exc:  # the baseline goes on without the prediction distribution
        say(f"modeldeck: baseline: no predictions ({type(exc).__name__}: {exc})")
        return None
    if frame is None:
        return None
    kind = prediction_kind(ctx.task, frame[PREDICTION])
    pp = _prediction_profile(frame[PREDICTION], kind, None)
    return {"kind": kind, "stats": pp["columns"][PREDICTION], "sample": pp["kept"].get(PREDICTION)}


def _metrics(ctx: Any, frame: pa.Table, kind: str) -> dict[str, Any]:
    """The model's metrics on the scored data, when it carries the target column."""
    import pandas as pd

    from core.builtin import metrics_of

    ds = ctx.dataset
    path = Path(ds.path)
    if path.suffix.lower() in (".parquet", ".pq"):
        y = pd.read_parquet(path, columns=[ds.target])[ds.target]
    else:
        y = pd.read_csv(path, usecols=[ds.target])[ds.target]
    if len(y) != frame.num_rows:
        print(
            f"modeldeck: no metrics: {frame.num_rows} predictions for {len(y)} rows of {ds.name}",
            flush=True,
        )
        return {}
    proba_cols = [c for c in frame.column_names if c.startswith(PROBA_PREFIX)]
    keep = y.notna().to_numpy()
    pred = frame.column(PREDICTION).to_pandas().to_numpy()[keep]
    y = y[keep]
    if kind == "categorical" and pd.api.types.is_numeric_dtype(y):
        pred = pd.to_numeric(pd.Series(pred), errors="coerce").to_numpy()
    elif kind == "categorical":
        y = y.astype(str)
        pred = pd.Series(pred).astype(str).to_numpy()

    def proba() -> Any:
        return np.column_stack([frame.column(c).to_numpy() for c in proba_cols])[keep]

    result = metrics_of(y, pred, kind == "categorical", proba if len(proba_cols) > 1 else None)
    result.pop("confusion_matrix", None)
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in result.items()}


def batch_drift(ctx: Any, reference: dict[str, Any]) -> dict[str, Any] | None:
    """A batch prediction's drift against its version's baseline (``reference``, as the
    engine's spec gives it), and the model's metrics when the scored data has the target.
    None for a batch without rows (its file has the header only): there is nothing to
    compare, and no drift run is kept (PSI on no data would read as the worst drift)."""
    stats = dataset_statistics(ctx, reference=reference.get("columns") or {}, quiet=True)
    prof = stats["profile"]
    if not prof["rows"]:
        say("modeldeck: no drift: the batch has no rows to compare with the baseline")
        return None
    base = {"columns": reference.get("columns") or {}, "samples": reference.get("samples") or {}}
    features = [str(f) for f in reference.get("features") or []]
    ignored = ignored_columns(ctx, list(prof["columns"])) + list(reference.get("ignored") or [])
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
            say(f"modeldeck: no metrics: {type(exc).__name__}: {exc}")
    worst = sorted(
        (f for f in out["features"] if f.get("psi") is not None),
        key=lambda f: -f["psi"],
    )[:3]
    shown = ", ".join(f"{f['name']} {f['psi']:.3f}" for f in worst)
    changes = []  # what no PSI measures, and the engine judges all the same
    for change, said in (("missing", "missing"), ("new", "new"), ("type", "of another type")):
        names = [f["name"] for f in out["features"] if f.get("changed") == change]
        if names:
            changes.append(f"{said}: {', '.join(names)}")
    line = f"PSI {shown or '-'}" + "".join(f"; {c}" for c in changes)
    say(f"modeldeck: drift against the baseline: {line}")
    return out
