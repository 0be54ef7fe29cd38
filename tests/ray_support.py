"""A small Ray head on this machine for the Ray tests and bench: started, waited for, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY_BIN = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_head(temp: Path, cpus: int = 2, timeout: float = 120.0) -> tuple[str, float]:
    """Start a head with ``cpus`` CPUs, 2 GiB of memory for tasks and a 100 MiB object store,
    its files under ``temp`` (short: Ray's socket paths); its dashboard's URL, once the Jobs
    API answers, and the seconds that took."""
    from ray.job_submission import JobSubmissionClient

    dash = free_port()
    cmd = [
        str(RAY_BIN),
        "start",
        "--head",
        f"--port={free_port()}",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        f"--memory={2 * 2**30}",
        f"--object-store-memory={100 * 2**20}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    began = time.monotonic()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    started = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if started.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    url = f"http://127.0.0.1:{dash}"
    deadline = began + timeout
    while True:
        try:
            JobSubmissionClient(url)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return url, time.monotonic() - began


def stop_head() -> None:
    subprocess.run([str(RAY_BIN), "stop", "--force"], capture_output=True, timeout=120)


def head_memory(temp: Path) -> tuple[int, int]:
    """The head's processes (those whose command line names its folder) and their RSS."""
    import psutil

    count, rss = 0, 0
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        try:
            if str(temp) in " ".join(proc.info["cmdline"] or []):
                count += 1
                rss += proc.info["memory_info"].rss
        except (psutil.Error, TypeError):
            continue
    return count, rss
