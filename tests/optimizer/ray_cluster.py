"""A two-node Ray cluster on this machine, driven as an operator would: run inside a private
network namespace, where loopback is the only address Ray can pick (tests/optimizer/test_cluster.py).

    unshare -n -p -f --mount-proc python -m tests.optimizer.ray_cluster WORKDIR CSV OTHER_CSV

Starts a head and a worker node (``ray start``, one CPU each), then runs, writing what it saw
to ``WORKDIR/seen.json`` for the test to check:

1. the job, walk-forward, on local processes (``COMPUTE.workers = 2``): ``WORKDIR/processes``;
2. the same job on the cluster (every fold's search as Ray tasks), ``kill -9`` of a Ray worker while it computes a task:
   ``WORKDIR/ray``;
3. ``heavyopt watch`` with two jobs at once on the cluster (``QUEUE.workers = 2``; the two
   CSVs, as two books: the daemon runs an input identical to a finished one only once), polling
   ``heavyopt status --json`` for their progress: the share ``WORKDIR/share``.

The PID namespace (``-p --mount-proc``) keeps ``ray stop`` to this cluster's processes, and
ends them all when this script ends, however it ends.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
PORT = 6390
ADDRESS = f"127.0.0.1:{PORT}"
JOB = [
    "PORTFOLIO.min_size=5",
    "PORTFOLIO.max_size=12",
    "OPTIMIZATION.evaluation_budget=1500",
    "COMPUTE.threads=1",
]
# The two runs compared are walk-forward, so every fold's search runs on the cluster too.
FOLDS = ["VALIDATION.method=walk_forward", "VALIDATION.folds=2"]
ON_RAY = ["COMPUTE.executor=ray", f"COMPUTE.ray_address={ADDRESS}", "COMPUTE.fallback=false"]
TASK_TITLE = b"ray::_run_on_node"  # a Ray worker's process title while it runs one of our tasks


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def sh(*args: str | Path, timeout: float = 300) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_cluster(temp: Path) -> None:
    common = ["--num-cpus=1", "--object-store-memory=200000000", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    sh(BIN / "ray", "start", "--head", f"--port={PORT}", "--include-dashboard=false", f"--temp-dir={temp}", *common)
    sh(BIN / "ray", "start", f"--address={ADDRESS}", *common)


def task_workers() -> list[int]:
    """PIDs of Ray workers running one of our tasks now."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(TASK_TITLE):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_a_worker(job: subprocess.Popen[str], after_s: float, killed: list[int]) -> None:
    """``kill -9`` the first Ray worker seen running a task, ``after_s`` into the job."""
    time.sleep(after_s)
    while job.poll() is None and not killed:
        for pid in task_workers():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            break
        time.sleep(0.01)


def run_with_kill(csv: Path, out: Path) -> tuple[list[int], str]:
    job = subprocess.Popen(
        [str(BIN / "heavyopt"), "run", str(csv), "--out", str(out), "-q", *sets(*JOB, *FOLDS, *ON_RAY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed: list[int] = []
    killer = threading.Thread(target=kill_a_worker, args=(job, 1.0, killed), daemon=True)
    killer.start()
    output, _ = job.communicate(timeout=300)
    killer.join(5)
    if job.returncode != 0:
        raise RuntimeError(f"the job on the cluster exited {job.returncode}:\n{output}")
    return killed, output


def daemon_jobs(books: list[Path], work: Path) -> dict[str, Any]:
    """Two jobs at once through ``heavyopt watch`` on the cluster; the progress ``status`` showed."""
    share, data = work / "share", work / "state"
    for folder in ("input", "jobs", "output", "archive"):
        (share / folder).mkdir(parents=True, exist_ok=True)
    daemon = subprocess.Popen(
        [
            str(BIN / "heavyopt"),
            "watch",
            "--share",
            str(share),
            "--data-dir",
            str(data),
            *sets(*JOB, *ON_RAY, "QUEUE.workers=2", "QUEUE.settle_s=0.3", "QUEUE.rescan_s=2"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "daemon.log", "w"),  # noqa: SIM115 - closed with the process
    )
    try:
        deadline = time.monotonic() + 60
        while not (share / ".heavyopt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for csv, name in zip(books, ("book_a.csv", "book_b.csv"), strict=True):
            shutil.copyfile(csv, share / "input" / f"~{name}")
            os.rename(share / "input" / f"~{name}", share / "input" / name)
        progress: dict[str, list[float]] = {}
        most_at_once = 0
        deadline = time.monotonic() + 240
        while (
            len(list((share / "jobs" / "completed").glob("*.json")))
            + len(list((share / "jobs" / "failed").glob("*.json")))
            < 2
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon's two jobs did not finish within 240 s")
            out = subprocess.run(
                [str(BIN / "heavyopt"), "status", "--share", str(share), "--data-dir", str(data), "--json"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0:
                running = json.loads(out.stdout).get("running", [])
                most_at_once = max(most_at_once, len(running))
                for job in running:
                    progress.setdefault(job["job_id"], []).append(job["progress"])
            time.sleep(0.2)
        ended = [*(share / "jobs" / "completed").glob("*.json"), *(share / "jobs" / "failed").glob("*.json")]
        results = {p.name: json.loads(p.read_text()) for p in sorted(ended)}
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    return {"progress": progress, "most_running_at_once": most_at_once, "results": results}


def main(work: Path, csv: Path, other: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    # As docs/operations.md sets a cluster up: token authentication, the token in a file every
    # node and every job's process reads (here: this script's children, by the environment).
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ |= {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    seen: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        start_cluster(temp)
        seen["cluster_start_s"] = time.perf_counter() - started
        started = time.perf_counter()
        sh(BIN / "heavyopt", "run", csv, "--out", work / "processes", "-q", *sets(*JOB, *FOLDS, "COMPUTE.workers=2"))
        seen["processes_s"] = time.perf_counter() - started
        started = time.perf_counter()
        seen["killed"], seen["ray_output"] = run_with_kill(csv, work / "ray")
        seen["ray_s"] = time.perf_counter() - started
        seen["daemon"] = daemon_jobs([csv, other], work)
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, check=False, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
        (work / "seen.json").write_text(json.dumps(seen, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
