"""A baseline's statistics reused, in a job's own process: the standard library only.

The statistics of a dataset file do not change while its content does not. The engine's spec
names the latest baseline computed on the job's dataset with the sha256 of the file it was
computed on (``spec["monitoring"]["reuse"]``); when the file the job read has that sha256,
the job computes no feature statistics (and imports neither numpy nor pyarrow): its result
says which baseline to copy, and the engine copies it (``core.monitoring.record``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def sha256_of(path: str | Path) -> str:
    """The sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ignored_columns(ctx: Any, columns: list[str]) -> list[str]:
    """The columns that are no features: the target, and the id column (the dataset's, else
    one named ``id``)."""
    ds = ctx.dataset
    out = [ds.target] if ds.target else []
    for name in (getattr(ds, "id_column", None), "id"):
        if name and name in columns and name != ds.target:
            out.append(name)
            break
    return out


def read_sha256(ctx: Any) -> str | None:
    """The sha256 of the dataset file as the job read it at its start (``dataset_file``)."""
    sha = (ctx.result.get("dataset_file") or {}).get("sha256")
    return sha if isinstance(sha, str) and sha else None


def reused_baseline(ctx: Any, wants: dict[str, Any]) -> dict[str, Any] | None:
    """The job's baseline as a copy of the one the spec offers (``{"reused": id, ...}``, the
    features and ignored columns as this job's own would be), or None when it must be computed:
    no offer, another file content, or features the offered baseline has no samples of."""
    offer = wants.get("reuse")
    sha = read_sha256(ctx)
    if not isinstance(offer, dict) or sha is None or offer.get("sha256") != sha:
        return None
    source = offer.get("id")
    if not isinstance(source, int) or isinstance(source, bool):
        return None
    names = [str(c) for c in offer.get("columns") or []]
    ignored = ignored_columns(ctx, names)
    feats = [f for f in (wants.get("features") or names) if f not in ignored]
    if not set(feats) <= {str(f) for f in offer.get("features") or []}:
        return None  # the offered baseline kept no samples of some of these features
    return {
        "reused": source,
        "sha256": sha,
        "dataset": ctx.dataset.name,
        "rows": offer.get("rows"),
        "features": feats,
        "ignored": ignored,
        "prediction": None,
    }


def unchanged_sha256(ctx: Any) -> str | None:
    """The file's sha256 if it still has the content the job read at its start (statistics
    computed now are of that content), else None: such statistics are never reused."""
    sha = read_sha256(ctx)
    try:
        return sha if sha is not None and sha256_of(ctx.dataset.path) == sha else None
    except OSError:
        return None
