"""Faults the queue must live through: a full disk, a share that goes away, a damaged or locked database."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from jobqueue.daemon import Daemon
from tests.jobqueue.conftest import Env, read_json, wait_for

REPO = Path(__file__).resolve().parents[2]


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_output(env: Env) -> Iterator[Path]:
    """The share's output/ on a 64 KiB file system of its own: a run folder cannot fit."""
    if not _mount_tmpfs(env.share.output, "64k"):
        pytest.skip("needs root and tmpfs to make a small file system (CI runs as root)")
    try:
        yield env.share.output
    finally:
        subprocess.run(["umount", "-l", str(env.share.output)], check=False)


def test_a_full_disk_fails_the_job_with_no_partial_folder(env: Env, daemon, small_output: Path) -> None:
    daemon()
    env.drop("big.csv")
    result = env.result(wait_for(lambda: [p.stem for p in env.share.failed.glob("*.json")], 120, "the failure")[0])
    assert result["status"] == "failed"
    assert "no space left in" in result["reason"] and "no run folder was published" in result["reason"]
    assert list(small_output.iterdir()) == []  # neither a run folder nor a hidden partial one
    assert (env.root / result["archived_input"]).read_bytes() == env.csv.read_bytes()
    # The queue goes on: once there is room, the next job completes.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_output)], check=True)
    env.drop("after.csv")
    done = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 120, "the next job")
    assert read_json(env.share.completed / f"{done[0]}.json")["status"] == "completed"


def _health(d: Daemon) -> Any:
    client = TestClient(create_app(d.store_path, d.share, rescan_s=2), base_url="http://127.0.0.1:8080")
    return client.get("/health")


def test_the_share_goes_away_and_comes_back(env: Env, daemon, tmp_path: Path) -> None:
    d = daemon()
    aside = tmp_path / "unmounted"
    env.root.rename(aside)  # as an unmount or a rename looks to the daemon
    wait_for(lambda: d._db.daemon().get("share_state") == "missing", 30, "the daemon to notice")
    time.sleep(2 * 0.25 + 1)  # a few ticks: it waits, it does not fail or recreate the share
    assert not env.root.exists()
    health = _health(d)
    assert health.status_code == 503 and health.json()["share"].startswith("missing since")
    aside.rename(env.root)
    wait_for(lambda: d._db.daemon().get("share_state") == "ok", 30, "the daemon to resume")
    assert _health(d).json()["share"] == "ok"
    env.drop("back.csv")
    done = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 120, "a job after the return")
    assert read_json(env.share.completed / f"{done[0]}.json")["status"] == "completed"


def test_a_damaged_job_database_is_a_clear_error_and_no_restart_loop(env: Env) -> None:
    env.store().close()  # the share's database, made where the daemon will look for it
    env.store_path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        env.store_path.with_name(env.store_path.name + suffix).unlink(missing_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "watch",
            "--share",
            str(env.root),
            "--config",
            str(env.ini),
            "--data-dir",
            str(env.state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Exit 2: the unit's RestartPreventExitStatus=2 keeps systemd from restarting it in a loop.
    assert done.returncode == 2, done.stderr
    assert "is damaged" in done.stderr and ".recover" in done.stderr and "Traceback" not in done.stderr
    assert "RestartPreventExitStatus=2" in (REPO / "systemd" / "heavyopt.service").read_text()


def test_a_lock_held_by_another_program_delays_the_daemon_but_does_not_stop_it(
    env: Env, daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("jobqueue.store.BUSY_TIMEOUT_S", 0.2)  # the lock outlasts a write's wait: 0.2 s, not 30
    monkeypatch.setattr("jobqueue.daemon.LOCKED_RETRY_S", 0.5)
    d = daemon()
    other = sqlite3.connect(d.store_path, timeout=0, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a backup tool, or a sqlite3 shell in a transaction
    env.drop("locked.csv")
    wait_for(lambda: "the job database is locked or busy" in caplog.text, 30, "the daemon to meet the lock")
    other.execute("ROLLBACK")
    other.close()
    done = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 120, "the job")
    assert read_json(env.share.completed / f"{done[0]}.json")["status"] == "completed"


def test_a_damaged_duckdb_file_fails_each_job_with_what_to_do_and_the_queue_goes_on(env: Env, daemon) -> None:
    env.state.mkdir(parents=True, exist_ok=True)
    store = env.state / "heavyopt.duckdb"
    store.write_bytes(b"not a DuckDB file" * 1000)
    daemon()
    env.drop("first.csv")
    failed = env.result(wait_for(lambda: [p.stem for p in env.share.failed.glob("*.json")], 120, "the failure")[0])
    assert "damaged or not a DuckDB file: move it aside" in failed["reason"], failed["reason"]
    assert (env.root / failed["archived_input"]).is_file()
    store.rename(env.state / "heavyopt.duckdb.damaged")  # what the message says to do
    env.drop("second.csv")
    done = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 120, "the next job")
    assert read_json(env.share.completed / f"{done[0]}.json")["status"] == "completed"
