"""The search on a Ray cluster (``COMPUTE.executor = ray``): same results as local processes,
a killed Ray worker retried, an unreachable cluster falling back with its reason.

The two-node cluster runs in a network and PID namespace of its own (``unshare``, as root:
CI), where loopback is the only address Ray can find and ``ray stop`` reaches only its nodes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from errors import BackendUnavailable
from optimizer.cluster import task_options
from optimizer.config import load_config
from optimizer.pipeline import run_job
from optimizer.synthetic import write_csv
from tests.optimizer import ray_cluster

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = {"seconds"}


def comparable(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in results]


def summary(out: Path) -> dict[str, Any]:
    (run_dir,) = out.glob("run_*")
    return json.loads((run_dir / "execution_summary.json").read_text())


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connect is refused
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def job_config(tmp_path: Path, *extra: str) -> Any:
    return load_config(overrides=[*ray_cluster.JOB, "COMPUTE.workers=1", f"DATABASE.data_dir={tmp_path}/data", *extra])


def test_an_unreachable_cluster_runs_the_job_here_and_says_why(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    csv = write_csv(tmp_path / "in.csv", 120, 40, seed=2)
    address = f"127.0.0.1:{closed_port()}"
    on_ray = ["COMPUTE.executor=ray", f"COMPUTE.ray_address={address}", "COMPUTE.ray_connect_timeout_s=2"]
    run_job(csv, job_config(tmp_path), out_dir=tmp_path / "here")
    fell = run_job(csv, job_config(tmp_path, *on_ray), out_dir=tmp_path / "fell")
    reason = fell.report.fallbacks["executor"]
    assert address in reason and "unreachable" in reason and "local processes" in reason
    written = summary(tmp_path / "fell")
    assert written["fallbacks"]["executor"] == reason and written["compute"]["executor"] == "processes"
    assert comparable(written["results"]) == comparable(summary(tmp_path / "here")["results"])
    with pytest.raises(BackendUnavailable, match=r"unreachable.*COMPUTE\.fallback = false"):
        run_job(csv, job_config(tmp_path, *on_ray, "COMPUTE.fallback=false"), out_dir=tmp_path / "strict")
    assert not (tmp_path / "strict").exists()


def test_ray_not_installed_falls_back_with_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    csv = write_csv(tmp_path / "in.csv", 60, 30, seed=2)
    outcome = run_job(csv, job_config(tmp_path, "COMPUTE.executor=ray"), out_dir=tmp_path / "out")
    assert "Ray is not installed" in outcome.report.fallbacks["executor"]
    assert "heavy-optimizer[distributed]" in outcome.report.fallbacks["executor"]


def test_a_malformed_address_is_named(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    csv = write_csv(tmp_path / "in.csv", 60, 30, seed=2)
    config = job_config(tmp_path, "COMPUTE.executor=ray", "COMPUTE.ray_address=headnode", "COMPUTE.fallback=false")
    with pytest.raises(BackendUnavailable, match=r"COMPUTE.ray_address = 'headnode' is not auto, local or host:port"):
        run_job(csv, config, out_dir=tmp_path / "out")


def test_tasks_ask_ray_for_a_gpu_when_the_job_computes_on_cupy() -> None:
    assert task_options(on_gpu=True)["num_gpus"] == 1 and task_options(on_gpu=False)["num_gpus"] == 0
    assert task_options(on_gpu=False)["num_cpus"] == 1 and task_options(on_gpu=False)["max_retries"] >= 1


def namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = ["unshare", "-n", "-p", "-f", "--mount-proc", "ip", "link", "set", "lo", "up"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not namespaces_work(), reason="needs root for a private network namespace (unshare -n)")
def test_a_two_node_cluster_gives_the_processes_results_despite_a_killed_worker(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    csv, other = write_csv(tmp_path / "book.csv", 400, 60, seed=4), write_csv(tmp_path / "other.csv", 400, 60, seed=5)
    script = [sys.executable, "-m", "tests.optimizer.ray_cluster", str(tmp_path), str(csv), str(other)]
    command = ["unshare", "-n", "-p", "-f", "--mount-proc", *script]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    local, clustered = summary(tmp_path / "processes"), summary(tmp_path / "ray")

    # Every result and the winner equal the process pool's, although a worker was killed mid-task.
    assert seen["killed"], "no Ray worker was caught running a task: the job ended before the kill"
    assert comparable(clustered["results"]) == comparable(local["results"])
    assert clustered["winner"] == local["winner"] and clustered["validation"] == local["validation"]
    assert local["compute"]["executor"] == "processes" and "executor" not in clustered["fallbacks"]

    # Tasks ran on both nodes: two node ids, every task counted once.
    compute = clustered["compute"]
    assert compute["executor"] == "ray" and compute["ray_address"] == ray_cluster.ADDRESS
    per_node = compute["ray_tasks_per_node"]
    assert len(per_node) == 2 and all(n > 0 for n in per_node.values())
    folds = clustered["validation"]["folds"]
    assert len(folds) == 2  # each walk-forward fold's search ran on the cluster: all its tasks counted
    assert sum(per_node.values()) == len(clustered["results"]) * len(folds)

    # The daemon ran two jobs at once on the cluster, their progress visible while they ran.
    daemon = seen["daemon"]
    assert daemon["most_running_at_once"] == 2
    assert len(daemon["results"]) == 2 and all(r["status"] == "completed" for r in daemon["results"].values())
    assert len(daemon["progress"]) == 2
    for values in daemon["progress"].values():
        assert any(0 < v < 100 for v in values) and values == sorted(values)
