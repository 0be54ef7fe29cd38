"""Statistics of a 1,000,000-row x 20-column CSV: modeldeck's chunked statistics (a version's
baseline: two passes, decile bins, samples) against pandas' ``read_csv`` + ``describe()`` +
``numpy.histogram`` per numeric column, each in its own process, in the same run.

Run: .venv/bin/python tests/bench/bench_stats.py [--rows 1000000] [--keep FILE]
Targets: at most 1.5x pandas' time; peak memory (max RSS) below pandas'.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIME_TARGET = 1.5

NUMERIC, TEXT = 15, 5

OURS = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from core.monitoring.profile import profile_file
stats = profile_file(Path({path!r}))
assert stats["rows"] == {rows}, stats["rows"]
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

PEER = """
import numpy as np
import pandas as pd
frame = pd.read_csv({path!r})
frame.describe(include="all")
for name in frame.select_dtypes("number").columns:
    values = frame[name].dropna()
    np.histogram(values, bins=10)
assert len(frame) == {rows}
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_csv(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    chunk = 200_000
    with open(path, "w") as fh:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cols = {f"x{i}": rng.normal(i, 1 + i, n).round(5) for i in range(NUMERIC)}
            words = np.array([f"w{i}" for i in range(50)])
            cols |= {f"t{i}": words[rng.integers(0, 50, n)] for i in range(TEXT)}
            pd.DataFrame(cols).to_csv(fh, index=False, header=start == 0)


def run(code: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, ``wait4``) and peak RSS (MiB, as the process
    itself reports it) of a fresh interpreter running ``code``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"error: the process failed ({proc.returncode})")
    return took, usage.ru_utime + usage.ru_stime, int(out.split()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="reuse (or keep) the CSV at this path")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = a.keep or Path(tmp) / "big.csv"
        if not path.exists():
            t = time.perf_counter()
            write_csv(path, a.rows)
            size = path.stat().st_size / 1e6
            print(f"wrote {path} ({size:.0f} MB) in {time.perf_counter() - t:.1f} s")
        fmt = {"root": str(ROOT), "path": str(path), "rows": a.rows}
        ours_t, ours_cpu, ours_rss = run(OURS.format(**fmt))
        peer_t, peer_cpu, peer_rss = run(PEER.format(**fmt))
    ratio = ours_t / peer_t
    print(
        f"modeldeck statistics: {ours_t:.2f} s (CPU {ours_cpu:.2f} s), peak RSS {ours_rss:.0f} MiB"
    )
    print(
        f"pandas describe+histogram: {peer_t:.2f} s (CPU {peer_cpu:.2f} s), "
        f"peak RSS {peer_rss:.0f} MiB"
    )
    cpu_ratio = ours_cpu / peer_cpu
    print(f"time ratio {ratio:.2f}x (target <= {TIME_TARGET}x); CPU ratio {cpu_ratio:.2f}x")
    return 0 if ratio <= TIME_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
