"""Where a job process's CPU goes when the engine starts it, against the same runner forked by
hand. Not collected by pytest.

    .venv/bin/python tests/bench/profile_jobproc.py [--jobs 60] [--workers 2]

1. The real ``modeldeck engine --exit-when-idle --workers W`` command on N queued no-op
   trainings (a dataset, so each records a baseline: the first ones compute it, the others
   reuse it by the file's sha256). The fork server it starts is the real one, with one
   addition made from this script's boot line: its ``os.waitpid`` is ``os.wait4``, and the
   rusage of each process it reaps (job, or spare that ended unused) goes to a file. Printed:
   the command's CPU a job (engine, fork server and jobs), the jobs' CPU a job, their median,
   and the jobs that computed their baseline (not reused) with their CPU.
2. The same runner and a spec of one of those jobs (a reused baseline), forked by hand N
   times from a process that imported what the fork server imports: CPU, page faults.
3. The floor: ``python -c "import training"``, N times.
CPU is per process, from the kernel (``wait4``): it moves far less with other load than wall
time does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import fresh_deck, settle_files, write_repo  # noqa: E402

from core.engine import executor  # noqa: E402

# Run in the fork server before it serves: every reap of its own children is logged.
SPY = """
import os as _os
_log, _server, _wait4 = _os.environ["MODELDECK_PROFILE_RUSAGE"], _os.getpid(), _os.wait4
def _waitpid(pid, options):
    got, status, ru = _wait4(pid, options)
    if got and _os.getpid() == _server:
        with open(_log, "a") as fh:
            fh.write(f"{got} {ru.ru_utime + ru.ru_stime:.6f} {ru.ru_minflt}\\n")
    return got, status
_os.waitpid = _waitpid
"""


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def through_engine(root: Path, n: int, workers: int) -> Path:
    repo = write_repo(root, 1)
    deck = fresh_deck(root, repo, "jobproc")
    ids = [deck.train("bench", "noop", "d").id for _ in range(n)]
    log = root / "rusage.txt"
    env = dict(os.environ, MODELDECK_HOME=str(deck.home), MODELDECK_PROFILE_RUSAGE=str(log))
    env.pop("MODELDECK_DB", None)
    env.pop("PYTHONUNBUFFERED", None)
    spy = f"exec(compile({SPY!r}, 'spy', 'exec')); "
    # The engine command is started with this boot line for its fork server: a sitecustomize
    # in a folder first on the engine's PYTHONPATH swaps it in.
    site = root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "# Not in the fork server itself (started with -c): the ORM would be in every job.\n"
        "if os.environ.get('MODELDECK_PROFILE_RUSAGE') and sys.argv[:1] != ['-c']:\n"
        "    try:\n"
        "        from core.engine import executor\n"
        "    except ImportError:\n"
        "        executor = None\n"
        "    if executor is not None:\n"
        "        _popen = executor.subprocess.Popen\n"
        "        def _spy(args, *a, **k):\n"
        "            if list(args[1:2]) == ['-c'] and 'core.forkserver' in args[2]:\n"
        "                boot = args[2].replace('from core.forkserver', "
        f"{spy!r} + 'from core.forkserver')\n"
        "                args = [args[0], '-c', boot]\n"
        "            return _popen(args, *a, **k)\n"
        "        executor.subprocess.Popen = _spy\n"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    c0 = children_cpu()
    cmd = [sys.executable, "-m", "tui.entry", "engine", "--exit-when-idle"]
    subprocess.run([*cmd, "--workers", str(workers)], cwd=ROOT, env=env, check=True)
    total = children_cpu() - c0
    rows = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    cpu = {int(p): 1000 * float(c) for p, c, _ in rows}
    faults = {int(p): int(f) for p, _, f in rows}
    computed, reused, pids = [], [], {}
    for job_id in ids:
        job_dir = deck.home / "jobs" / job_id
        pid = int((job_dir / "pid").read_text().split()[0])
        result = json.loads((job_dir / "result.json").read_text())
        pids[job_id] = pid
        (reused if "reused" in (result.get("baseline") or {}) else computed).append(job_id)
    jobs = [cpu[pids[j]] for j in ids if pids[j] in cpu]
    spares = [c for p, c in cpu.items() if p not in set(pids.values())]
    print(f"1. through the engine ({n} jobs, {workers} workers)")
    if not jobs:
        print("   (no rusage logged: the fork server's boot line was not swapped)")
        return deck.home / "jobs" / reused[0]
    print(f"   engine command, all its processes: {1000 * total / n:6.1f} ms CPU a job")
    print(f"   job processes:                     {sum(jobs) / n:6.1f} ms CPU a job")
    print(f"   spares that ended unused: {len(spares)}, {sum(spares):.1f} ms")
    plain = [cpu[pids[j]] for j in reused if pids[j] in cpu]
    flt = [faults[pids[j]] for j in reused if pids[j] in faults]
    print(
        f"   a job reusing its baseline: median {statistics.median(plain):.2f} ms, "
        f"minor faults {statistics.median(flt):.0f}"
    )
    big = [cpu[pids[j]] for j in computed if pids[j] in cpu]
    print(
        f"   jobs computing their baseline: {len(computed)}, "
        + ", ".join(f"{c:.0f}" for c in big)
        + f" ms ({sum(big) / n:.1f} ms a job of the {n})"
    )
    return deck.home / "jobs" / reused[-1]


def by_hand(root: Path, job: Path, cwd: Path, n: int) -> None:
    job_dir = root / "by-hand"
    job_dir.mkdir()
    shutil.copy(job / "spec.json", job_dir / "spec.json")
    code = f"""
import os, sys, statistics
sys.path.append({str(ROOT)!r})
from core import forkserver, runner
import csv, encodings.utf_8_sig, hashlib
from core.monitoring import reuse
runner.become_subreaper()
cpu, faults = [], []
for _ in range({n}):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        log = os.open({str(job_dir / "log.txt")!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir({str(cwd)!r})
        os._exit(runner.main(["modeldeck-job", {str(job_dir)!r}]))
    _, status, ru = os.wait4(pid, 0)
    cpu.append(1000 * (ru.ru_utime + ru.ru_stime))
    faults.append(ru.ru_minflt)
cpu, faults = statistics.median(cpu), statistics.median(faults)
print(f"   median {{cpu:.2f}} ms CPU, minor faults {{faults:.0f}}")
"""
    print(f"2. the same runner and spec forked by hand, {n} times")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def floor(cwd: Path, n: int) -> None:
    cpu = []
    for _ in range(n):
        c0 = children_cpu()
        subprocess.run([sys.executable, "-c", "import training"], cwd=cwd, check=True)
        cpu.append(1000 * (children_cpu() - c0))
    print(f"3. the floor, python -c 'import training': median {statistics.median(cpu):.2f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    assert executor.ForkServer  # the class whose boot line is swapped
    with tempfile.TemporaryDirectory(prefix="modeldeck-jobproc-") as tmp:
        root = Path(tmp)
        settle_files(root)
        job = through_engine(root, args.jobs, args.workers)
        cwd = root / "repo" / "models" / "noop"
        by_hand(root, job, cwd, args.jobs)
        floor(cwd, args.jobs)


if __name__ == "__main__":
    main()
