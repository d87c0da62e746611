"""A share, a fast job config, and the daemon run in a thread or as ``heavyopt watch`` in a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobqueue.daemon import Daemon, server_layers
from jobqueue.share import Share
from jobqueue.store import QueueStore, store_path
from optimizer.config import build_config
from optimizer.synthetic import write_csv

FAST_INI = """\
[PORTFOLIO]
min_size = 10
max_size = 11
[OPTIMIZATION]
evaluation_budget = 200
[COMPUTE]
workers = 1
threads = 1
"""
# A job that takes several seconds, to be caught mid-run.
SLOW_SETS = ["PORTFOLIO.max_size=40", "OPTIMIZATION.evaluation_budget=4000"]


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Env:
    root: Path
    share: Share
    state: Path
    ini: Path
    csv: Path  # a small generated input (200 strategies × 30 days)

    def drop(self, name: str, source: Path | None = None) -> Path:
        """Copy a file into input/ as a user would: written under a temporary name, then renamed."""
        target = self.share.input / name
        tmp = self.share.input / f"~${name}"
        tmp.write_bytes((source or self.csv).read_bytes())
        os.rename(tmp, target)
        return target

    @property
    def store_path(self) -> Path:
        """The share's job database (the share gets its id here if no daemon has given it one yet)."""
        path = store_path(self.state, self.share.identity(create=True))
        assert path is not None
        return path

    def store(self) -> QueueStore:
        return QueueStore(self.store_path)

    def result(self, job_id: str, timeout: float = 90) -> dict[str, Any]:
        """Poll as an old client does: completed/<id>.json or failed/<id>.json."""

        def found() -> Path | None:
            for folder in (self.share.completed, self.share.failed):
                if (folder / f"{job_id}.json").exists():
                    return folder / f"{job_id}.json"
            return None

        return read_json(wait_for(found, timeout, f"the result of job {job_id}"))

    def results(self) -> list[dict[str, Any]]:
        return [read_json(p) for f in (self.share.completed, self.share.failed) for p in sorted(f.glob("*.json"))]


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "small.csv", 200, 30, seed=3)


@pytest.fixture
def env(tmp_path: Path, small_csv: Path) -> Env:
    root = tmp_path / "share"
    root.mkdir()
    share = Share(root)
    share.ensure()
    ini = tmp_path / "server.ini"
    ini.write_text(FAST_INI)
    return Env(root, share, tmp_path / "state", ini, small_csv)


def daemon_for(env: Env, root: Path, *sets: str) -> Daemon:
    """A daemon (not started) on the share at ``root``, with ``env``'s server config and data folder."""
    layers = server_layers(
        [env.ini],
        [
            f"QUEUE.share={root}",
            f"DATABASE.data_dir={env.state}",
            "QUEUE.settle_s=0.3",
            "QUEUE.rescan_s=2",
            "QUEUE.input_wait_s=3",
            *sets,
        ],
        environ={},
    )
    return Daemon(Share(root), build_config(layers), layers, env.state)


@pytest.fixture
def daemon(env: Env) -> Iterator[Callable[..., Daemon]]:
    """Start the daemon in a thread of this process (jobs still run in their own processes);
    ``root=`` puts it on another share under the same data folder."""
    started: list[tuple[Daemon, threading.Thread]] = []

    def start(*sets: str, root: Path | None = None) -> Daemon:
        if root is not None:
            root.mkdir(exist_ok=True)
        d = daemon_for(env, root or env.root, *sets)
        thread = threading.Thread(target=d.run, daemon=True)
        thread.start()
        wait_for(lambda: d.store is not None and d.share.status_file.exists(), 30, "the daemon to start")
        started.append((d, thread))
        return d

    yield start
    for d, thread in started:
        d.stop.set()
        thread.join(timeout=120)
        assert not thread.is_alive(), "the daemon did not stop"


class Process:
    """``heavyopt watch`` (or ``serve``) as the service runs it."""

    def __init__(self, env: Env, *sets: str, command: str = "watch", args: tuple[str, ...] = ()) -> None:
        self.log = env.root.parent / f"watch-{time.monotonic_ns()}.log"
        self.fh = self.log.open("w")
        cmd = [
            sys.executable,
            "-m",
            "cli",
            command,
            *args,
            "--share",
            str(env.root),
            "--config",
            str(env.ini),
            "--data-dir",
            str(env.state),
            "--set",
            "QUEUE.settle_s=0.3",
            *[a for s in sets for a in ("--set", s)],
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT)
        ready = "watching" if command == "watch" else "status API on"
        wait_for(lambda: ready in self.log.read_text() or self.proc.poll() is not None, 60, f"heavyopt {command}")
        assert self.proc.poll() is None, self.log.read_text()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self.fh.close()
        return code

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def watch(env: Env) -> Iterator[Callable[..., Process]]:
    procs: list[Process] = []

    def start(*sets: str, command: str = "watch", args: tuple[str, ...] = ()) -> Process:
        p = Process(env, *sets, command=command, args=args)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill9()
        if not p.fh.closed:
            p.fh.close()
