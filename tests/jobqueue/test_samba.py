"""End to end through a real Samba server: Windows-style copies with smbclient, results read back over SMB.

Needs Debian's ``samba`` and ``smbclient`` (``scripts/test.sh`` installs them when it runs as root) and
root to start ``smbd``. On CI a missing piece is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.jobqueue.conftest import Env, wait_for

PASSWORD = "Trader-Pa55"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "smbd needs root here"
    for tool in ("smbd", "smbclient", "smbpasswd"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (apt-get install samba smbclient)"
    return None


@dataclass
class Smb:
    port: int
    service: str

    def client(self, command: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["smbclient", self.service, "-p", str(self.port), "-U", f"trader%{PASSWORD}", "-m", "SMB3", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def get_json(self, remote: str, local: Path) -> dict | None:
        done = subprocess.run(
            [
                "smbclient",
                self.service,
                "-p",
                str(self.port),
                "-U",
                f"trader%{PASSWORD}",
                "-c",
                f"get {remote} {local}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0 or not local.exists():
            return None
        return json.loads(local.read_text())


@pytest.fixture
def smbd(env: Env, tmp_path: Path) -> Iterator[Smb]:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"Samba test cannot run on CI: {missing}")
        pytest.skip(missing)
    smbd_bin = shutil.which("smbd") or "/usr/sbin/smbd"
    smbpasswd = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
    base = tmp_path / "samba"
    dirs = {name: base / name for name in ("run", "lock", "state", "cache", "private", "ncalrpc", "log")}
    for d in dirs.values():
        d.mkdir(parents=True)
    port = free_port()
    (base / "users.map").write_text("root = trader\n")
    conf = base / "smb.conf"
    conf.write_text(
        f"""[global]
    workgroup = WORKGROUP
    server role = standalone server
    smb ports = {port}
    interfaces = 127.0.0.1
    bind interfaces only = yes
    pid directory = {dirs["run"]}
    lock directory = {dirs["lock"]}
    state directory = {dirs["state"]}
    cache directory = {dirs["cache"]}
    private dir = {dirs["private"]}
    ncalrpc dir = {dirs["ncalrpc"]}
    log file = {dirs["log"]}/log.%m
    passdb backend = tdbsam:{dirs["private"]}/passdb.tdb
    username map = {base / "users.map"}
    map to guest = never
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    server min protocol = SMB2_10
    unix extensions = no
    wide links = no

[heavyopt]
    path = {env.root}
    read only = no
    valid users = root
"""
    )
    subprocess.run(
        [smbpasswd, "-c", str(conf), "-a", "-s", "root"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    log = (base / "smbd.out").open("w")
    proc = subprocess.Popen(
        # In a session of its own (setsid, not a fork): smbd signals its whole process group when it stops.
        ["setsid", smbd_bin, "--foreground", "--no-process-group", f"--configfile={conf}", "--debug-stdout"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"smbd exited: {(base / 'smbd.out').read_text()[-2000:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 30, "smbd to listen")
        yield Smb(port, "//127.0.0.1/heavyopt")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_windows_users_submit_over_smb_and_find_their_results(env: Env, daemon, smbd: Smb, tmp_path: Path) -> None:
    daemon("QUEUE.settle_s=1.0")
    local = tmp_path / "client"
    local.mkdir()
    shutil.copy(env.csv, local / "Desk Book 21-11.csv")
    (local / "Desk Book 21-11.ini").write_text("[PORTFOLIO]\nmin_size = 11\nmax_size = 11\n")

    # 1. A CSV (with its settings) dropped into input/, as Explorer would copy it.
    smbd.client('cd input; put "Desk Book 21-11.ini"; put "Desk Book 21-11.csv"', cwd=local)
    job_id = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 120, "the dropped CSV's job")[0]
    listing = smbd.client("cd jobs/completed; ls")
    assert f"{job_id}.json" in listing
    result = smbd.get_json(f"jobs/completed/{job_id}.json", local / "r1.json")
    assert result is not None and result["status"] == "completed" and result["winner"]["size"] == 11
    run_folder = result["output_folder"]
    files = smbd.client(f'cd "{run_folder}"; ls')
    for name in (
        "execution_summary.json",
        "optimization_summary.xlsx",
        "equity_curves.png",
        "best_portfolio_size11.txt",
    ):
        assert name in files
    smbd.client(f'cd "{run_folder}"; get execution_summary.json', cwd=local)
    assert json.loads((local / "execution_summary.json").read_text())["winner"]["size"] == 11

    # 2. The old client: CSV into input/, job file into jobs/queue/, poll jobs/completed/<job_id>.json over SMB.
    shutil.copy(env.csv, local / "legacy.csv")
    (local / "job_20261121_190000.json").write_text(
        json.dumps(
            {
                "job_id": "job_20261121_190000",
                "input_file": "legacy.csv",
                "portfolio_size": 10,
                "job_type": "portfolio_optimization",
                "timestamp": "2026-11-21T19:00:00",
            }
        )
    )
    smbd.client("cd input; put legacy.csv", cwd=local)
    smbd.client("cd jobs/queue; put job_20261121_190000.json", cwd=local)
    deadline = time.monotonic() + 120
    polled = None
    while polled is None and time.monotonic() < deadline:
        polled = smbd.get_json("jobs/completed/job_20261121_190000.json", local / "r2.json")
        time.sleep(0.5)
    assert polled is not None, "no result over SMB"
    assert polled["status"] == "completed" and polled["winner"]["size"] == 10
    assert polled["request"]["input_file"] == "legacy.csv"

    # 3. A bad job file lands in jobs/failed/ with its reason, readable by the client.
    (local / "job_bad.json").write_text('{"job_id": "job_bad", "input_file": "..\\\\..\\\\etc\\\\passwd"}')
    smbd.client("cd jobs/queue; put job_bad.json", cwd=local)
    failed = wait_for(lambda: smbd.get_json("jobs/failed/job_bad.json", local / "r3.json"), 60, "the failure")
    assert "must be the name of a file in input/ on the share" in failed["reason"]

    status = smbd.get_json("jobs/status/current_status.json", local / "status.json")
    assert status is not None and status["status"] in ("idle", "running")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 200 jobs of ~2.6 s each (process start, charts) on 2 workers: ~300 s here
def test_two_hundred_csvs_copied_at_once_over_smb_run_once_each_in_fifo_order(
    env: Env, daemon, smbd: Smb, tmp_path: Path
) -> None:
    local = tmp_path / "burst"
    local.mkdir()
    names = [f"f{k:03d}.csv" for k in range(200)]
    for k, name in enumerate(names):  # distinct bytes: none is taken for a duplicate of another
        (local / name).write_bytes(env.csv.read_bytes().replace(b"#1,", f"#{k},".encode(), 1))
    daemon("QUEUE.workers=2", "QUEUE.settle_s=1.0")
    # One SMB session copies them one after another, as Explorer copies a selection.
    smbd.client("cd input; " + "; ".join(f"put {name}" for name in names), cwd=local)
    wait_for(lambda: len(env.results()) >= 200, 900, "200 results")
    time.sleep(2)  # nothing more may come
    results = env.results()
    assert len(results) == 200 and sorted(r["input_file"] for r in results) == names  # none lost, none twice
    assert all(r["status"] == "completed" and r["attempts"] == 1 for r in results)
    assert len({r["output_folder"] for r in results}) == 200 == len(list(env.share.output.glob("run_*")))
    rows = env.store().rows("kind = 'csv'")
    assert [r["input_name"] for r in rows] == names  # claimed in the order they were copied
    started = [r["started_at"] for r in rows]
    assert started == sorted(started)  # and started in that order (FIFO)
    assert list(env.share.input.iterdir()) == []
