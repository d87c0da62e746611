"""One share, one history: shares under one data folder never see, re-run, publish or list each other's jobs."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from errors import ConfigError
from jobqueue.daemon import Daemon
from jobqueue.share import Share
from jobqueue.store import QueueStore, store_path
from jobqueue.view import QueueView
from tests.jobqueue.conftest import SLOW_SETS, Env, Process, daemon_for, read_json, wait_for


def _stop(d: Daemon) -> None:
    d.stop.set()
    wait_for(lambda: d.store is None, 120, "the daemon to stop")


def _results(share: Share) -> list[str]:
    return sorted(p.stem for folder in (share.completed, share.failed) for p in folder.glob("*.json"))


def _drop(share: Share, name: str, source: Path) -> None:
    (share.input / f"~${name}").write_bytes(source.read_bytes())
    (share.input / f"~${name}").rename(share.input / name)


def test_two_daemons_on_two_shares_keep_to_their_own(env: Env, daemon, tmp_path: Path) -> None:
    a, b = daemon(root=env.root), daemon(root=tmp_path / "second")
    _drop(a.share, "desk_a.csv", env.csv)
    _drop(b.share, "desk_b.csv", env.csv)
    done_a = wait_for(lambda: _results(a.share), 120, "share A's result")
    done_b = wait_for(lambda: _results(b.share), 120, "share B's result")
    assert done_a[0].startswith("desk_a-") and done_b[0].startswith("desk_b-")
    assert a.share.identity() != b.share.identity() and a.store_path != b.store_path
    for d, mine in ((a, done_a), (b, done_b)):
        assert [r["job_id"] for r in QueueView(d.store_path).jobs()] == mine  # what /jobs and heavyopt status read
        assert read_json(d.share.completed / f"{mine[0]}.json")["status"] == "completed"
        shown = _status(mine[0], "--share", str(d.share.root), "--data-dir", str(env.state), "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["job_id"] == mine[0]
        theirs = (done_b if d is a else done_a)[0]
        assert _status(theirs, "--share", str(d.share.root), "--data-dir", str(env.state)).returncode == 2
    both = _status("--data-dir", str(env.state))
    assert both.returncode == 2 and "several shares have jobs" in both.stderr and str(b.share.root) in both.stderr


def _status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "status", *args], capture_output=True, text=True, timeout=60)


def test_a_share_never_reruns_or_publishes_another_shares_job(env: Env, daemon, tmp_path: Path) -> None:
    """The issue's case: share A's daemon is killed mid-job; a daemon on share B must not touch that job."""
    first = Process(env, *SLOW_SETS)
    _drop(env.share, "crash.csv", env.csv)
    store = env.store()
    row = wait_for(lambda: (r := store.rows("state = 'running'")) and r[0]["progress"] > 30 and r[0], 120, "progress")
    first.kill9()
    other = daemon(*SLOW_SETS, root=tmp_path / "second")
    wait_for(lambda: other._db.daemon().get("last_scan"), 30, "share B's first scan")
    assert QueueView(other.store_path).jobs() == [] and _results(other.share) == []
    _stop(other)
    again = Process(env, *SLOW_SETS)  # back on share A: its job is run again and completes
    assert env.result(row["job_id"], 180)["status"] == "completed"
    again.signal(signal.SIGTERM)
    assert again.wait() == 0


def test_a_moved_share_keeps_its_history_and_a_copy_is_refused(env: Env, daemon, tmp_path: Path) -> None:
    d = daemon(root=env.root)
    _drop(d.share, "desk.csv", env.csv)
    job_id = wait_for(lambda: _results(d.share), 120, "a result")[0]
    _stop(d)
    moved = tmp_path / "moved share"
    env.root.rename(moved)
    later = daemon(root=moved)
    assert [r["job_id"] for r in QueueView(later.store_path).jobs()] == [job_id]
    _drop(later.share, "desk.csv", env.csv)  # the same input and settings: reported as the earlier job's duplicate
    wait_for(lambda: len(_results(later.share)) == 2, 120, "the second result")
    second = next(j for j in _results(later.share) if j != job_id)
    assert read_json(later.share.completed / f"{second}.json")["duplicate_of"] == job_id
    _stop(later)
    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    with pytest.raises(ConfigError, match="one is a copy of the other"):
        daemon_for(env, copy).start()
    (copy / ".heavyopt" / "share.json").unlink()  # as the message says: the copy starts afresh
    fresh = daemon(root=copy)
    assert QueueView(fresh.store_path).jobs() == [] and fresh.share.identity() != later.share.identity()


def test_the_database_all_shares_once_shared_is_split_by_share(env: Env, daemon, tmp_path: Path) -> None:
    legacy = QueueStore(env.state / "queue.sqlite3")
    for root, job_id in ((env.root, "mine"), (tmp_path / "other", "theirs")):
        seq = legacy.add(job_id=job_id, share=str(root), state="failed", kind="csv", published=1)
        legacy.update(seq, reason="from the old database")
    legacy.close()
    d = daemon(root=env.root)
    rows = QueueView(d.store_path).jobs()
    assert [(r["job_id"], r["reason"]) for r in rows] == [("mine", "from the old database")]
    with sqlite3.connect(d.store_path) as con:  # its history came with it, and only its
        assert con.execute("SELECT seq, kind FROM events WHERE kind = 'failed'").fetchall() == [
            (rows[0]["seq"], "failed")
        ]
    assert store_path(env.state, d.share.identity()) == d.store_path
