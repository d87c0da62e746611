"""``heavyopt serve`` as the service runs it: real HTTP on a free port, a browser, a load check."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from tests.browser import chromium, headless
from tests.conftest import free_port
from tests.jobqueue.conftest import FAST_INI, SLOW_SETS, Env, read_json, wait_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            kind = response.headers.get("content-type", "")
            return response.status, json.loads(body) if kind.startswith("application/json") else body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def serve(watch, *sets: str) -> tuple[Any, str]:
    port = free_port()
    proc = watch(*sets, command="serve", args=("--port", str(port)))
    return proc, f"http://127.0.0.1:{port}"


def test_serve_runs_a_dropped_file_and_status_follows_it(env: Env, watch) -> None:
    proc, base = serve(watch, *SLOW_SETS)
    assert f"status API on {base}/" in proc.text()
    code, health = get(f"{base}/health")
    assert code == 200 and health["status"] == "ok"
    env.drop("followed.csv")
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        code, status = get(f"{base}/status")
        assert code == 200
        if status["job"]:
            seen.append((status["current_step"], status["progress"]))
        elif seen:
            break
        time.sleep(0.1)
    assert len({p for _, p in seen}) >= 5, seen
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    code, jobs = get(f"{base}/jobs?state=completed")
    assert code == 200 and jobs["total"] == 1
    job_id = jobs["items"][0]["job_id"]
    code, job = get(f"{base}/jobs/{job_id}")
    assert job["status"] == "completed" and (env.root / job["output_folder"] / "execution_summary.json").is_file()
    code, page = get(f"{base}/")
    assert code == 200 and "Heavy Optimizer" in page
    # The terminal view reads the same database.
    done = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--share", str(env.root), "--data-dir", str(env.state), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    code, over_http = get(f"{base}/status")
    assert json.loads(done.stdout)["status"] == over_http["status"] == "idle"
    table = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--share", str(env.root), "--data-dir", str(env.state)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert table.returncode == 0 and "idle" in table.stdout and job_id in table.stdout
    one = subprocess.run(
        [sys.executable, "-m", "cli", "status", job_id, "--share", str(env.root), "--data-dir", str(env.state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one.returncode == 0 and "status: completed" in one.stdout and "search:" in one.stdout
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_a_port_in_use_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "serve",
                "--share",
                str(env.root),
                "--data-dir",
                str(env.state),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def _stream(url: str, timeout: float = 300) -> list[str]:
    """The event names of one ``text/event-stream`` answer, read to its end."""
    names = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200 and response.headers["content-type"].startswith("text/event-stream")
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                names.append(line[len("event: ") :])
    return names


def test_a_thousand_status_requests_and_a_hundred_event_streams_while_a_job_runs(
    env: Env, watch, tmp_path: Path
) -> None:
    """No errors, every stream follows the job to its end, and the job's result is the one the same
    job gives with nobody watching."""
    _, base = serve(watch, *SLOW_SETS)
    env.drop("loaded.csv")
    job = wait_for(lambda: get(f"{base}/status")[1]["job"], 60, "the job to start")
    answers: list[tuple[int, Any] | Exception] = []
    streams: list[list[str] | Exception] = []
    lock = threading.Lock()
    started = time.monotonic()

    def hammer(n: int) -> None:
        # Collects only: the test's own thread checks the answers below.
        for _ in range(n):
            try:
                answer: tuple[int, Any] | Exception = get(f"{base}/status")
            except Exception as exc:  # noqa: BLE001 - kept as the answer, reported below
                answer = exc
            with lock:
                answers.append(answer)

    def follow() -> None:
        try:
            names: list[str] | Exception = _stream(f"{base}/jobs/{job['job_id']}/events")
        except Exception as exc:  # noqa: BLE001 - kept, reported below
            names = exc
        with lock:
            streams.append(names)

    followers = [threading.Thread(target=follow) for _ in range(100)]
    threads = [threading.Thread(target=hammer, args=(250,)) for _ in range(4)]
    for t in followers + threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    for t in followers:
        t.join(timeout=300)
    assert len(answers) == 1000
    bad = [
        a
        for a in answers
        if isinstance(a, Exception) or a[0] != 200 or not isinstance(a[1], dict) or "progress" not in a[1]
    ]
    assert bad == []
    assert len(streams) == 100
    broken = [s for s in streams if isinstance(s, Exception) or s[-1:] != ["end"] or "completed" not in s]
    assert broken == [], broken[:3]
    job_id = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 180, "the job")[0]
    under_load = read_json(env.share.completed / f"{job_id}.json")
    assert under_load["status"] == "completed"
    # The same job by `heavyopt run`, nobody watching.
    ini = tmp_path / "same.ini"
    ini.write_text(FAST_INI)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            str(env.csv),
            "-c",
            str(ini),
            "--out",
            str(tmp_path / "out"),
            "--data-dir",
            str(tmp_path / "data"),
            "-q",
            *[a for s in SLOW_SETS for a in ("--set", s)],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    alone = read_json(next((tmp_path / "out").glob("run_*")) / "execution_summary.json")["winner"]
    assert under_load["winner"]["fitness"] == alone["fitness"]
    assert under_load["winner"]["strategies"] == alone["strategies"]
    print(f"1,000 GET /status in {elapsed:.2f} s ({1000 / elapsed:,.0f}/s) beside 100 event streams, while the job ran")


def test_the_status_page_in_headless_chromium(env: Env, watch, tmp_path: Path) -> None:
    browser = chromium()
    proc, base = serve(watch, *SLOW_SETS)
    env.drop("first.csv")
    wait_for(lambda: get(f"{base}/jobs?state=completed")[1]["total"] == 1, 120, "a finished job")
    for k, name in enumerate(("second", "third")):  # other seeds: not duplicates of the first job
        (env.share.input / f"{name}.ini").write_text(f"[GENERAL]\nseed = {k + 2}\n")
        env.drop(f"{name}.csv")
    wait_for(lambda: (s := get(f"{base}/status")[1])["job"] and s["progress"] > 30, 120, "the next job under way")
    shot = tmp_path / "status_page.png"
    flags = headless(browser, tmp_path / "profile", 1280, 800, "--virtual-time-budget=4000")
    done = subprocess.run([*flags, f"--screenshot={shot}", f"{base}/"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    dom = subprocess.run([*flags, "--dump-dom", f"{base}/"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    status = get(f"{base}/status")[1]
    # The script ran: the running job, its progress bar, the queue and the finished job are in the page.
    assert 'class="meta">daemon running on ' in dom.stdout  # not "connecting…", not "cannot reach the API"
    assert 'class="badge completed"' in dom.stdout and "first.csv" in dom.stdout and "output/run_" in dom.stdout
    assert "second.csv" in dom.stdout and "third.csv" in dom.stdout
    assert "<h2>Latest result</h2>" in dom.stdout and 'class="report" href="jobs/' in dom.stdout  # its report.html
    if status["job"]:
        assert 'class="badge running"' in dom.stdout and '<div class="bar"><div style="width:' in dom.stdout

    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (800, 1280)
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank page
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "status_page.png")
    proc.signal(signal.SIGTERM)
    assert proc.wait(120) == 0
