"""The install steps as a new user takes them: a wheel, a fresh virtual environment, temporary directories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.jobqueue.conftest import wait_for

REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str], cwd: Path, timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_a_new_user_installs_from_a_wheel_and_runs_a_job_through_the_queue(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # The machine's pip cache and index settings, so the fresh install downloads only what it must.
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "XDG_CACHE")) or k == "CI"},
    }
    if "XDG_CACHE_HOME" not in env:
        env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
    # 1. A wheel builds from the checkout.
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)], tmp_path, env=env)
    wheel = next(wheels.glob("heavy_optimizer-*.whl"))
    # 2. A fresh virtual environment, the wheel and its dependencies.
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(fresh)
    run([str(fresh / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp_path, env=env)
    heavyopt = str(fresh / "bin" / "heavyopt")
    version = run([heavyopt, "version"], tmp_path, env=env).stdout
    assert version.startswith("heavyopt 0.")
    # Imported from the environment, not from the checkout.
    where = run([str(fresh / "bin" / "python"), "-c", "import jobqueue, api; print(jobqueue.__file__)"], home, env=env)
    assert str(fresh) in where.stdout
    # 3. The units laid out for this environment, checked by systemd-analyze if it is here.
    trial = tmp_path / "root"
    run(
        ["bash", str(REPO / "scripts" / "install-systemd.sh"), "--bin", heavyopt, "--root", str(trial)],
        tmp_path,
        env=env,
    )
    unit = (trial / "etc" / "systemd" / "system" / "heavyopt.service").read_text()
    assert f"ExecStart={heavyopt} serve" in unit
    # 4. A job: the service on a temporary share, a dataset submitted as the nightly timer does.
    share, data = tmp_path / "share", tmp_path / "data"
    share.mkdir()
    run([heavyopt, "generate", str(tmp_path / "day.csv"), "--strategies", "150", "--days", "25"], tmp_path, env=env)
    (tmp_path / "job.ini").write_text(
        "[PORTFOLIO]\nmin_size = 10\nmax_size = 10\n[OPTIMIZATION]\nevaluation_budget = 200\n"
    )
    log = (tmp_path / "serve.log").open("w")
    service = subprocess.Popen(
        [
            heavyopt,
            "serve",
            "--share",
            str(share),
            "--data-dir",
            str(data),
            "--port",
            "0",
            "--set",
            "QUEUE.settle_s=0.3",
            "--set",
            "COMPUTE.workers=1",
        ],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: "status API on" in (tmp_path / "serve.log").read_text() or service.poll() is not None,
            120,
            "the service",
        )
        assert service.poll() is None, (tmp_path / "serve.log").read_text()
        submitted = run(
            [
                heavyopt,
                "submit",
                str(tmp_path / "day.csv"),
                "--ini",
                str(tmp_path / "job.ini"),
                "--share",
                str(share),
                "--wait",
                "--timeout",
                "300",
            ],
            home,
            env=env,
        )
        assert "status: completed" in submitted.stdout and "winner: size 10" in submitted.stdout
        result = json.loads(next((share / "jobs" / "completed").glob("*.json")).read_text())
        run_dir = share / result["output_folder"]
        assert (run_dir / "optimization_summary.xlsx").is_file() and (run_dir / "equity_curves.png").is_file()
        status = run([heavyopt, "status", "--data-dir", str(data), "--json"], home, env=env)
        assert json.loads(status.stdout)["status"] == "idle"
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=120) == 0
        log.close()
    shutil.rmtree(fresh)
