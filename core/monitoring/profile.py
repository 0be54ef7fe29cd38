"""Per-column statistics of a dataset, read in chunks (bounded memory), in a job's own process.

The same statistics as ``compute_stats`` always gave (count, missing; numeric: min, max, mean,
std, quantiles and a 10-bin histogram between min and max; categorical: unique count and the
top values with their frequencies), plus what monitoring needs:

- ``bins``: numeric columns' counts on **fixed edges** (the deciles of the data, or the edges
  given: a baseline's), categorical columns' counts of the top values (or those given) and
  ``(other)``. Scored data is binned on its baseline's bins.
- a uniform sample of each numeric column's values (``SAMPLE_ROWS`` rows at most: bottom-k
  sampling on a random key per row), for quantiles and the Kolmogorov-Smirnov statistic.
  Data with fewer rows than that is kept whole, so its quantiles and KS are exact.

A CSV is read with pyarrow's streaming reader (blocks of ``BLOCK_BYTES``); a column is numeric
when a small first block (``TYPES_BYTES``) makes it a number (read as floats), else text. A
file that does not read that way (a number column with text further down) is read whole with
pandas.
Numeric edges and quantiles come from the sample; counts, means and extremes are exact.
Infinities in a numeric column count as missing values.
"""

from __future__ import annotations

import math
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

# What np.quantile and the sample's random keys import on first use (~20 ms): imported with
# this module, once in the statistics' fork server, not in each job forked from it.
import numpy.ma
import numpy.random
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from core.monitoring.drift import KEPT_SAMPLE

HIST_BINS = 10  # the equal-width histogram between min and max (``histogram``)
DRIFT_BINS = 10  # quantile bins of a baseline (``bins``): deciles
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_VALUES = 10
SAMPLE_ROWS = 65_536  # rows sampled for quantiles and KS, per dataset
MAX_DISTINCT = 100_000  # distinct values counted per text column before pruning
BLOCK_BYTES = 16 << 20
TYPES_BYTES = 1 << 16  # the first block's size when guessing which columns are numbers
BATCH_ROWS = 131_072
OTHER = "(other)"

Batches = Callable[[], Iterator[pa.RecordBatch]]


def _csv_types(path: Path) -> dict[str, pa.DataType]:
    """The types of the columns a small first block makes numbers (read as floats, so that a
    missing value or a decimal further down still fits) or text. Given to the reader, they
    spare it guessing each block's types (a third of its time); the others are its own."""
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=TYPES_BYTES))
    schema = reader.schema
    reader.close()
    types: dict[str, pa.DataType] = {}
    for f in schema:
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            types[f.name] = pa.float64()
        elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            types[f.name] = pa.string()
    return types


def file_batches(path: Path, columns: list[str] | None = None) -> Batches:
    """A function giving a fresh iterator of the file's record batches (of ``columns``)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        def parquet() -> Iterator[pa.RecordBatch]:
            yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)

        return parquet

    types = _csv_types(path)

    def csv() -> Iterator[pa.RecordBatch]:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
            convert_options=pcsv.ConvertOptions(
                column_types=types, strings_can_be_null=True, include_columns=columns
            ),
        )
        yield from reader

    return csv


def _nan() -> pa.Scalar:
    """A float64 NaN, made from its bytes (``pa.scalar(float("nan"))`` imports pandas)."""
    data = pa.py_buffer(struct.pack("=d", math.nan))
    return pa.Array.from_buffers(pa.float64(), 1, [None, data])[0]


def floats(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as float64 numbers, missing ones NaN: a read-only view of the array's data.
    (Not ``to_numpy()``: pyarrow's conversion imports pandas, with or without a copy, and
    pandas is most of a baseline's cost on a small file.)"""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.cast(arr, pa.float64())
    if arr.null_count:
        arr = pc.fill_null(arr, _nan())
    data = arr.buffers()[1]
    if data is None or not len(arr):
        out = np.empty(0, dtype=np.float64)
    else:
        out = np.frombuffer(data, dtype=np.float64, count=len(arr), offset=8 * arr.offset)
    out.flags.writeable = False  # as pyarrow's zero-copy view: never written through
    return out


def table_batches(table: pa.Table) -> Batches:
    return lambda: iter(table.to_batches(max_chunksize=BATCH_ROWS))


def _pandas_batches(path: Path, columns: list[str] | None) -> Batches:
    """The whole file read by pandas (its type inference over every row), as batches."""
    import pandas as pd

    frame = pd.read_csv(path, usecols=columns)
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            frame[name] = col.astype("string")
    return table_batches(pa.Table.from_pandas(frame, preserve_index=False))


class _Numeric:
    def __init__(self) -> None:
        self.count = 0
        self.missing = 0
        self.shift: float | None = None  # sums are of (x - shift): a steady variance
        self.sum = 0.0
        self.sumsq = 0.0
        self.lo = np.inf
        self.hi = -np.inf
        self.bins: np.ndarray | None = None
        self.hist: np.ndarray | None = None  # the equal-width histogram's counts

    def add(self, values: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
        """Count a batch's values; its finite ones are returned."""
        finite = np.isfinite(values)  # infinities count as missing
        ok = values if finite.all() else values[finite]
        self.missing += len(values) - len(ok)
        if not len(ok):
            return ok
        if self.shift is None:
            self.shift = float(ok[0])
        d = ok - self.shift
        self.count += len(ok)
        self.sum += float(d.sum())
        self.sumsq += float(np.einsum("i,i->", d, d))  # not BLAS: no threads of its own
        self.lo = min(self.lo, float(ok.min()))
        self.hi = max(self.hi, float(ok.max()))
        if edges is not None:
            self.add_bins(ok, edges)
        return ok

    def add_bins(self, ok: np.ndarray, edges: np.ndarray) -> None:
        # Bin i holds edge[i-1] <= x < edge[i]: counts from how many are below each edge
        # (a pass per edge is faster than a binary search per value).
        below = np.array([0, *(np.count_nonzero(ok < e) for e in edges), len(ok)])
        counts = np.diff(below)
        self.bins = counts if self.bins is None else self.bins + counts


class _Text:
    def __init__(self) -> None:
        self.count = 0
        self.missing = 0
        self.counts: dict[str, int] = {}
        self.approximate = False

    def add(self, arr: pa.Array) -> None:
        nulls = arr.null_count
        self.missing += nulls
        self.count += len(arr) - nulls
        for item in pc.value_counts(arr.drop_null()).to_pylist():
            key = str(item["values"])
            self.counts[key] = self.counts.get(key, 0) + item["counts"]
        if len(self.counts) > MAX_DISTINCT:  # keep the most frequent: counts become estimates
            keep = sorted(self.counts.items(), key=lambda kv: -kv[1])[: MAX_DISTINCT // 10]
            self.counts = dict(keep)
            self.approximate = True


class _Sample:
    """Bottom-k sampling: each row gets a random key; the rows with the k smallest keys are a
    uniform sample without replacement, kept across batches in O(k) memory."""

    def __init__(self, names: list[str], k: int, seed: int) -> None:
        self.k = k
        self.rng = np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.values = {n: np.empty(0) for n in names}

    def add(self, columns: dict[str, np.ndarray], n: int) -> None:
        keys = self.rng.random(n)
        if len(self.keys) >= self.k:  # only rows that beat the k-th key can enter
            take = np.flatnonzero(keys < self.keys.max())
            keys = keys[take]
            columns = {name: v[take] for name, v in columns.items()}
        keys = np.concatenate([self.keys, keys])
        values = {name: np.concatenate([self.values[name], columns[name]]) for name in columns}
        if len(keys) > self.k:
            keep = np.argpartition(keys, self.k - 1)[: self.k]
            keys = keys[keep]
            values = {name: v[keep] for name, v in values.items()}
        self.keys, self.values = keys, values

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The sampled values of a column (missing ones left out), sorted; of ``rows`` only
        (``first(k)``: still a uniform sample) when given."""
        values = self.values[name] if rows is None else self.values[name][rows]
        return np.sort(values[np.isfinite(values)])

    def first(self, k: int) -> np.ndarray | None:
        """The rows of the sample with the ``k`` smallest keys (None: all of them)."""
        if len(self.keys) <= k:
            return None
        return np.argpartition(self.keys, k - 1)[:k]


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def quantile_edges(sample: np.ndarray, bins: int = DRIFT_BINS) -> list[float]:
    """The inner edges of ``bins`` quantile bins of a sorted sample (repeated edges merged):
    bin 0 holds values below the first edge, bin i values from edge i-1 up to (not
    including) edge i, the last bin values from the last edge up."""
    if not len(sample):
        return []
    qs = np.quantile(sample, np.arange(1, bins) / bins)
    return [float(e) for e in np.unique(qs)]


def profile(
    batches: Batches,
    *,
    reference: dict[str, Any] | None = None,
    text_columns: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Statistics of the batches' columns: ``{"rows", "columns": {name: stats}, "samples":
    {name: sorted sample}, "kept": {name: sorted smaller sample, as a list}}``. With
    ``reference`` (a baseline's ``columns``), numeric columns
    are binned on its edges and text columns on its values, in one pass; without, numeric
    columns' decile edges come from the sample and a second pass counts the bins.
    ``text_columns`` are read as text whatever their type (class labels)."""
    text_forced = set(text_columns)
    numeric: dict[str, _Numeric] = {}
    text: dict[str, _Text] = {}
    order: list[str] = []
    ref = reference or {}
    edges: dict[str, np.ndarray] = {}
    sample: _Sample | None = None
    # Without a reference, the second pass (decile bins) reads the numbers back from a file
    # of their own instead of parsing the data again.
    spill = _Spill() if reference is None else None
    rows = 0
    for batch in batches():
        if sample is None:
            for f in batch.schema:
                order.append(f.name)
                number = pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                # Every value missing: no type of its own, so the baseline's (all of it in
                # the missing bin, where PSI shows it), not a type change.
                blank = pa.types.is_null(f.type) and reference is not None
                is_num = (
                    f.name not in text_forced
                    and (number or blank)
                    and ref.get(f.name, {}).get("type", "numeric") == "numeric"
                )
                if is_num:
                    numeric[f.name] = _Numeric()
                    inner = (ref.get(f.name, {}).get("bins") or {}).get("edges")
                    if inner is not None:
                        edges[f.name] = np.asarray(inner, dtype=float)
                else:
                    text[f.name] = _Text()
            sample = _Sample(list(numeric), SAMPLE_ROWS, seed)
        n = batch.num_rows
        rows += n
        arrays: dict[str, np.ndarray] = {}
        for name, acc in numeric.items():
            arr = batch.column(name)
            values = floats(arr)
            arrays[name] = values
            ok = acc.add(values, edges.get(name))
            if spill is not None and len(ok):
                spill.put(name, ok)
        for name, acc in text.items():
            arr = batch.column(name)
            acc.add(arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string()))
        sample.add(arrays, n)
        if progress is not None:
            progress(rows)
    if sample is None:
        return {"rows": 0, "columns": {}, "samples": {}, "kept": {}}
    sorted_samples = {name: sample.column(name) for name in numeric}
    kept = sample.first(KEPT_SAMPLE)
    if reference is None and numeric:
        for name in numeric:
            edges[name] = np.asarray(quantile_edges(sorted_samples[name]))
        _count_bins(spill, numeric, edges)
    if spill is not None:
        spill.close()
    columns: dict[str, Any] = {}
    for name in order:
        if name in numeric:
            columns[name] = _numeric_stats(numeric[name], sorted_samples[name], edges.get(name))
        else:
            values = (ref.get(name, {}).get("bins") or {}).get("values")
            columns[name] = _text_stats(text[name], values)
    return {
        "rows": rows,
        "columns": columns,
        "samples": sorted_samples,  # numpy arrays: for this process's own comparisons
        "kept": {name: sample.column(name, kept).tolist() for name in numeric},
    }


class _Spill:
    """The finite values of numeric columns, batch by batch, in a temporary file."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close(), or at exit)
        self.parts: list[tuple[str, int, int]] = []  # (column, offset, values)

    def put(self, name: str, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=np.float64)
        self.parts.append((name, self.file.tell(), len(data)))
        self.file.write(data.tobytes())

    def parts_of(self) -> Iterator[tuple[str, np.ndarray]]:
        self.file.flush()
        for name, offset, n in self.parts:
            self.file.seek(offset)
            yield name, np.frombuffer(self.file.read(n * 8), dtype=np.float64)

    def close(self) -> None:
        self.file.close()


def _count_bins(spill: _Spill, numeric: dict[str, _Numeric], edges: dict[str, Any]) -> None:
    """The second pass: each numeric column's counts on its decile edges and on the
    equal-width histogram's, from the values spilled by the first."""
    hists: dict[str, np.ndarray] = {}
    for acc in numeric.values():
        acc.bins = None
    try:
        for name, ok in spill.parts_of():
            acc = numeric[name]
            acc.add_bins(ok, edges[name])
            lo, hi = acc.lo, acc.hi
            # Equal-width bins by their range: numpy's fast path (explicit edges sort the data).
            span = (lo, hi if hi > lo else lo + 1.0)
            counts, _ = np.histogram(ok, bins=HIST_BINS, range=span)
            hists[name] = counts if name not in hists else hists[name] + counts
    finally:
        spill.close()
    for name, acc in numeric.items():
        acc.hist = hists.get(name, np.zeros(HIST_BINS, dtype=int))


def _numeric_stats(acc: _Numeric, sample: np.ndarray, edges: np.ndarray | None) -> dict[str, Any]:
    stats: dict[str, Any] = {"count": acc.count, "missing": acc.missing, "type": "numeric"}
    if acc.count:
        mean = acc.sum / acc.count
        var = (acc.sumsq - acc.sum * mean) / (acc.count - 1) if acc.count > 1 else 0.0
        lo, hi = acc.lo, acc.hi
        stats.update(
            min=_finite(lo),
            max=_finite(hi),
            mean=_finite(acc.shift + mean),
            std=_finite(float(np.sqrt(max(var, 0.0)))),
            quantiles={
                str(q): _finite(float(v)) if len(sample) else None
                for q, v in zip(
                    QUANTILES,
                    np.quantile(sample, QUANTILES) if len(sample) else QUANTILES,
                    strict=True,
                )
            },
        )
        hist = acc.hist
        if hist is not None:
            h_edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
            stats["histogram"] = {"edges": h_edges.tolist(), "counts": hist.tolist()}
    if edges is not None:
        counts = acc.bins if acc.bins is not None else np.zeros(len(edges) + 1, dtype=int)
        stats["bins"] = {"edges": [float(e) for e in edges], "counts": counts.tolist()}
    return stats


def _text_stats(acc: _Text, values: list[str] | None) -> dict[str, Any]:
    """A text column: its top values; ``bins`` counts the given values (a baseline's top
    values) or its own top values, and all the others as ``(other)``."""
    ranked = sorted(acc.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[:TOP_VALUES]
    stats: dict[str, Any] = {
        "count": acc.count,
        "missing": acc.missing,
        "type": "categorical",
        "unique": len(acc.counts),
        "top": [{"value": k, "count": v, "frequency": v / max(1, acc.count)} for k, v in top],
    }
    if acc.approximate:
        stats["approximate"] = True
    names = list(values) if values is not None else [k for k, _ in top]
    counts = [acc.counts.get(k, 0) for k in names]
    stats["bins"] = {"values": names, "counts": [*counts, acc.count - sum(counts)]}
    return stats


def profile_file(
    path: Path,
    *,
    reference: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """``profile`` of a CSV or Parquet file; a CSV whose types change past its first block
    is read whole by pandas instead."""
    try:
        return profile(file_batches(path), reference=reference, progress=progress)
    except pa.ArrowInvalid:
        if Path(path).suffix.lower() in (".parquet", ".pq"):
            raise
        return profile(_pandas_batches(path, None), reference=reference, progress=progress)
