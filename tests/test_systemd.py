"""The systemd units: checked by systemd-analyze, installed by the script, the nightly command run as systemd would."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobqueue.conftest import FAST_INI, small_csv, wait_for

__all__ = ["small_csv"]  # the fixture

REPO = Path(__file__).resolve().parents[1]
UNITS = ("heavyopt.service", "heavyopt-nightly.service", "heavyopt-nightly.timer", "heavyopt-ray.service")
HEAVYOPT = Path(sys.executable).with_name("heavyopt")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed on CI (scripts/system-deps.sh installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def install(tmp_path: Path, *extra: str) -> dict[str, Path]:
    paths = {
        "units": tmp_path / "units",
        "etc": tmp_path / "etc",
        "share": tmp_path / "share",
        "data": tmp_path / "data",
    }
    done = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "install-systemd.sh"),
            "--bin",
            str(HEAVYOPT),
            "--unit-dir",
            str(paths["units"]),
            "--etc-dir",
            str(paths["etc"]),
            "--share",
            str(paths["share"]),
            "--data-dir",
            str(paths["data"]),
            "--no-user",
            "--no-enable",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return paths


def test_every_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path: Path) -> None:
    tool = _need("systemd-analyze")
    paths = install(tmp_path)
    for unit in UNITS:
        text = (paths["units"] / unit).read_text()
        assert "/opt/heavyopt" not in text and "/srv/heavyopt" not in text  # the install wrote this server's paths
        done = subprocess.run([tool, "verify", str(paths["units"] / unit)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout == "" and done.stderr == "", f"{unit}: {done.stdout}{done.stderr}"
    main = (paths["units"] / "heavyopt.service").read_text()
    assert f"ExecStart={HEAVYOPT} serve" in main and f"ReadWritePaths={paths['share']} {paths['data']}" in main
    assert f"RequiresMountsFor={paths['share']}" in main


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    """The check can fail: a typo in a directive is a warning that verify reports."""
    tool = _need("systemd-analyze")
    paths = install(tmp_path)
    unit = paths["units"] / "heavyopt.service"
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert re.search(r"Unknown key.*NoNewPrivilege", done.stderr), done.stderr  # a warning, even with exit code 0


def _exposure(tool: str, unit: Path) -> float:
    done = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(unit)], capture_output=True, text=True, timeout=120
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    return float(match.group(1))


def test_the_exposure_scores_are_the_ones_in_the_docs(tmp_path: Path) -> None:
    tool = _need("systemd-analyze")
    paths = install(tmp_path)
    docs = (REPO / "docs" / "operations.md").read_text()
    for unit in ("heavyopt.service", "heavyopt-nightly.service"):
        score = _exposure(tool, paths["units"] / unit)
        assert f"`{unit}`: {score:.1f}" in docs, f"docs/operations.md should note {unit}: {score:.1f}"
        assert score <= 2.0


def test_the_main_service_stops_gracefully(tmp_path: Path) -> None:
    """SIGTERM reaches only the daemon (its jobs finish in the grace), and systemd waits longer than the grace."""
    from optimizer.config import Queue

    text = (REPO / "systemd" / "heavyopt.service").read_text()
    assert "KillMode=mixed" in text
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M).group(1))
    assert stop > Queue().stop_grace_s + 10 + 10  # grace, then SIGTERM→SIGKILL of the jobs, then margin


def _unit_command(unit: Path) -> tuple[list[str], dict[str, str]]:
    """ExecStart of ``unit`` with its Environment= and EnvironmentFile= applied, as systemd would."""
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(unit.parents[1])}
    exec_start = ""
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "EnvironmentFile":
            for entry in Path(value.lstrip("-")).read_text().splitlines():
                if entry.strip() and not entry.lstrip().startswith("#"):
                    k, _, v = entry.partition("=")
                    env[k.strip()] = v.strip()
        elif key == "Environment":
            for pair in shlex.split(value):
                k, _, v = pair.partition("=")
                env[k] = v
        elif key == "ExecStart":
            exec_start = value
    # ${VAR}: the variable's value as one argument, empty if unset (systemd.service(5), "Command lines").
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word) for word in shlex.split(exec_start)]
    return argv, env


def test_the_nightly_service_submits_through_the_queue_and_sees_the_job_complete(
    tmp_path: Path, small_csv: Path
) -> None:
    paths = install(tmp_path)
    exports = tmp_path / "exports"
    exports.mkdir()
    shutil.copy(small_csv, exports / "daily_pnl.csv")
    (exports / "nightly.ini").write_text("[PORTFOLIO]\nmin_size = 12\nmax_size = 12\n")
    env_file = paths["etc"] / "heavyopt.env"
    env_file.write_text(
        env_file.read_text()
        .replace(
            "HEAVYOPT_NIGHTLY_FILE=/srv/exports/daily_pnl.csv", f"HEAVYOPT_NIGHTLY_FILE={exports / 'daily_pnl.csv'}"
        )
        .replace("HEAVYOPT_NIGHTLY_INI=", f"HEAVYOPT_NIGHTLY_INI={exports / 'nightly.ini'}")
    )
    (paths["etc"] / "heavyopt.ini").write_text((paths["etc"] / "heavyopt.ini").read_text() + FAST_INI)
    # The main service, as its unit runs it (serve), owns the store.
    serve_argv, serve_env = _unit_command(paths["units"] / "heavyopt.service")
    serve_argv += ["--port", "0", "--set", "QUEUE.settle_s=0.3"]
    log = (tmp_path / "serve.log").open("w")
    service = subprocess.Popen(serve_argv, env=serve_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "status API on" in (tmp_path / "serve.log").read_text(), 60, "the service")
        lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
        assert {"time", "level", "logger", "message"} <= set(lines[0])  # --log-format json, for journald
        argv, env = _unit_command(paths["units"] / "heavyopt-nightly.service")
        assert argv[:2] == [str(HEAVYOPT), "submit"]
        nightly = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert nightly.returncode == 0, nightly.stdout + nightly.stderr
        assert "status: completed" in nightly.stdout and "winner: size 12" in nightly.stdout
        job_id = re.search(r"submitted (\S+):", nightly.stdout).group(1)
        result = json.loads((paths["share"] / "jobs" / "completed" / f"{job_id}.json").read_text())
        assert result["request"]["submitted_by"] == "heavyopt submit"  # through the queue, as a job file
        assert result["winner"]["size"] == 12
        assert (paths["share"] / result["output_folder"] / "execution_summary.json").is_file()
        assert (paths["share"] / "archive" / job_id / f"{job_id}.ini").is_file()
    finally:
        service.terminate()
        assert service.wait(timeout=120) == 0
        log.close()


def test_submit_errors_name_the_problem(tmp_path: Path, small_csv: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    run = lambda *a: subprocess.run(  # noqa: E731
        [str(HEAVYOPT), "submit", *a],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("HEAVYOPT_")},
    )
    done = run(str(small_csv))
    assert done.returncode == 2 and "QUEUE.share is not set" in done.stderr
    done = run(str(small_csv), "--share", str(share))
    assert done.returncode == 2 and "has no input/ and jobs/queue/" in done.stderr
    from jobqueue.share import Share

    Share(share).ensure()
    done = run(str(tmp_path / "nope.csv"), "--share", str(share))
    assert done.returncode == 3 and "nope.csv: no such file" in done.stderr
    done = run(str(small_csv), "--share", str(share), "--ini", str(tmp_path / "nope.ini"))
    assert done.returncode == 2 and "--ini" in done.stderr
    done = run(str(small_csv), "--share", str(share), "--wait", "--timeout", "1")
    assert done.returncode == 7 and "is still queued or running" in done.stderr
    assert len(list((share / "jobs" / "queue").glob("*.json"))) == 1 and len(list((share / "input").iterdir())) == 1
