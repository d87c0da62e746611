"""The queue daemon end to end: real files, real job processes, the real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from errors import ConfigError
from jobqueue.checks import Rejected, portfolio_range
from jobqueue.daemon import Daemon
from jobqueue.share import is_temporary
from tests.conftest import gone
from tests.jobqueue.conftest import SLOW_SETS, Env, read_json, wait_for


def _only_job_id(env: Env) -> str:
    ids = wait_for(
        lambda: (
            [p.stem for p in env.share.completed.glob("*.json")] + [p.stem for p in env.share.failed.glob("*.json")]
        ),
        90,
        "a result",
    )
    assert len(ids) == 1, ids
    return ids[0]


def test_a_dropped_csv_becomes_a_job_with_results_on_the_share(env: Env, daemon) -> None:
    daemon()
    env.drop("desk_a.csv")
    job_id = _only_job_id(env)
    result = env.result(job_id)
    assert result["status"] == "completed", result
    assert job_id.startswith("desk_a-")
    run_dir = env.root / result["output_folder"]
    assert run_dir.parent == env.share.output and (run_dir / "execution_summary.json").is_file()
    summary = read_json(run_dir / "execution_summary.json")
    assert summary["winner"]["fitness"] == result["winner"]["fitness"]
    assert result["winner"]["size"] in (10, 11) and len(result["winner"]["strategies"]) == result["winner"]["size"]
    assert set(result["timings_s"]) >= {"load", "store", "ulta", "fetch", "correlation", "search", "validation"}
    # Validated: the result file says how far to believe it, and keeps the in-sample winner beside the winner.
    checked = result["validation"]
    assert (checked["method"], checked["train_days"], checked["test_days"]) == ("holdout", 10, 10)
    assert checked["deflated_sharpe_probability"] == summary["validation"]["deflated_sharpe_probability"]
    assert checked["headline"].startswith("In sample Sharpe") and checked["verdict"]
    assert result["in_sample_winner"]["strategies"] == summary["in_sample_winner"]["strategies"]
    # The input is archived, never deleted; input/ and processing/ are empty again.
    assert (env.root / result["archived_input"]).read_bytes() == env.csv.read_bytes()
    assert list(env.share.input.iterdir()) == [] and list(env.share.processing.iterdir()) == []
    status = wait_for(lambda: (s := read_json(env.share.status_file))["status"] == "idle" and s, 10, "idle")
    assert status["jobs"] == [] and status["queue"] == []


def test_a_sidecar_ini_sets_the_jobs_own_keys(env: Env, daemon) -> None:
    (env.share.input / "b.ini").write_text("[PORTFOLIO]\nmin_size = 12\nmax_size = 12\n")
    daemon()
    env.drop("b.csv")
    result = env.result(_only_job_id(env))
    assert result["status"] == "completed" and result["winner"]["size"] == 12
    assert (env.root / result["archived_input"]).with_name("b.ini").is_file()


@pytest.mark.parametrize(
    ("ini", "reason"),
    [
        ("[DATABASE]\ndata_dir = /etc\n", r"input/c.ini: section \[DATABASE\] is set by the server"),
        ("[PORTFOLIO]\nmax_sise = 40\n", r"PORTFOLIO.max_sise .*input/c.ini.* is not a known key.*max_size"),
        ("[PORTFOLIO]\nmin_size = 60\nmax_size = 40\n", r"PORTFOLIO.min_size = 60 is larger than"),
    ],
)
def test_a_bad_sidecar_fails_the_job_naming_the_key(env: Env, daemon, ini: str, reason: str) -> None:
    (env.share.input / "c.ini").write_text(ini)
    daemon()
    env.drop("c.csv")
    result = env.result(_only_job_id(env))
    assert result["status"] == "failed"
    import re

    assert re.search(reason, result["reason"]), result["reason"]
    assert (env.root / result["archived_input"]).is_file()  # nothing lost


def test_the_old_client_flow(env: Env, daemon) -> None:
    """Copy the CSV to input/, write jobs/queue/<id>.json, poll jobs/completed/<id>.json."""
    daemon()
    env.drop("nightly.csv")
    request = {
        "job_id": "job_20261121_180000",
        "input_file": "nightly.csv",
        "portfolio_size": 11,
        "job_type": "portfolio_optimization",
        "timestamp": "2026-11-21T18:00:00",
    }
    (env.share.queue / "job_20261121_180000.json").write_text(json.dumps(request))
    result = env.result("job_20261121_180000")
    assert result["status"] == "completed", result
    assert result["winner"]["size"] == 11 and result["request"] == request
    assert result["input_file"] == "nightly.csv"
    # The CSV was not also taken as a job of its own, and both files are archived.
    assert len(env.results()) == 1
    archive = env.share.archive / "job_20261121_180000"
    assert sorted(p.name for p in archive.iterdir()) == ["job_20261121_180000.json", "nightly.csv"]
    assert list(env.share.processing.iterdir()) == [] and list(env.share.queue.iterdir()) == []


def test_a_job_file_may_come_before_its_csv(env: Env, daemon) -> None:
    daemon()
    (env.share.queue / "early.json").write_text(json.dumps({"job_id": "early", "input_file": "late.csv"}))
    time.sleep(0.5)
    env.drop("late.csv")
    assert env.result("early")["status"] == "completed"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", r"jobs/queue/bad.json: not valid JSON"),
        (b"[1, 2]", r"expected a JSON object"),
        (json.dumps({"job_id": "other", "input_file": "x.csv"}).encode(), r"job_id 'other' differs from the file name"),
        (
            json.dumps({"input_file": "../secret.csv"}).encode(),
            r"input_file '\.\./secret\.csv' must be the name of a file",
        ),
        (json.dumps({"input_file": "/etc/passwd"}).encode(), r"input_file '/etc/passwd' must be the name"),
        (
            json.dumps({"input_file": "..\\..\\secret.csv"}).encode(),
            r"must be the name of a file in input/ on the share",
        ),
        (json.dumps({"input_file": "missing.csv"}).encode(), r"input_file 'missing.csv' is not in input/"),
        (json.dumps({}).encode(), r"input_file is missing"),
    ],
)
def test_bad_job_files_fail_with_the_reason(env: Env, daemon, content: bytes, reason: str) -> None:
    import re

    secret = env.root / "secret.csv"
    secret.write_bytes(env.csv.read_bytes())
    daemon()
    (env.share.queue / "bad.json").write_bytes(content)
    result = env.result("bad")
    assert result["status"] == "failed"
    assert re.search(reason, result["reason"]), result["reason"]
    assert secret.read_bytes() == env.csv.read_bytes()  # untouched
    assert (env.share.archive / "bad" / "bad.json").read_bytes() == content  # the job file is kept
    assert list(env.share.processing.iterdir()) == []


def test_bad_job_fields_fail_and_the_input_is_archived_not_run_alone(env: Env, daemon) -> None:
    daemon()
    env.drop("data.csv")
    (env.share.queue / "j1.json").write_text(json.dumps({"input_file": "data.csv", "portfolio_size": "big"}))
    result = env.result("j1")
    assert result["status"] == "failed" and "portfolio_size 'big'" in result["reason"]
    assert (env.share.archive / "j1" / "data.csv").is_file()
    time.sleep(1.0)
    assert len(env.results()) == 1  # data.csv did not become a job of its own


def test_a_symlink_is_never_followed(env: Env, daemon, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_bytes(env.csv.read_bytes())
    daemon()
    os.symlink(outside, env.share.input / "link.csv")
    job_id = _only_job_id(env)
    result = env.result(job_id)
    assert result["status"] == "failed"
    assert "input/link.csv is a symbolic link (to a file outside the share)" in result["reason"]
    assert outside.read_bytes() == env.csv.read_bytes()
    archived = env.root / result["archived_input"]
    assert archived.is_symlink()  # the link itself was moved, never its target


def test_a_symlinked_job_file_and_input_are_refused(env: Env, daemon, tmp_path: Path) -> None:
    outside = tmp_path / "job.json"
    outside.write_text(json.dumps({"input_file": "x.csv"}))
    daemon()
    os.symlink(outside, env.share.queue / "linked.json")
    result = env.result("linked")
    assert result["status"] == "failed" and "jobs/queue/linked.json is a symbolic link" in result["reason"]
    os.symlink(env.csv, env.share.input / "target.csv")
    (env.share.queue / "j2.json").write_text(json.dumps({"input_file": "target.csv"}))
    result = env.result("j2")
    assert result["status"] == "failed" and "input/target.csv is a symbolic link" in result["reason"]


def test_inputs_over_the_size_limit_and_empty_ones_fail(env: Env, daemon) -> None:
    daemon("QUEUE.max_input_mb=0.01")
    env.drop("big.csv")
    (env.share.input / "empty.csv").write_bytes(b"")
    wait_for(lambda: len(env.results()) == 2, 60, "two results")
    reasons = sorted(r["reason"] for r in env.results())
    assert "is empty" in reasons[0] or "is empty" in reasons[1]
    assert any("over the limit of 0.01 MB (QUEUE.max_input_mb)" in r for r in reasons)


def test_temporary_names_wait_until_renamed(env: Env, daemon) -> None:
    daemon()
    for name in ("~$book.csv", "copy.csv.tmp", "data.csv.partial", ".hidden.csv"):
        (env.share.input / name).write_bytes(env.csv.read_bytes())
    time.sleep(1.5)
    assert env.results() == [] and len(list(env.share.input.iterdir())) == 4
    os.rename(env.share.input / "copy.csv.tmp", env.share.input / "copy.csv")
    assert env.result(_only_job_id(env))["input_file"] == "copy.csv"


def test_a_slow_partial_copy_is_not_picked_up_early(env: Env, daemon) -> None:
    """Written in place in chunks, with pauses shorter than settle_s: claimed only after the last write."""
    daemon("QUEUE.settle_s=1.0")
    data = env.csv.read_bytes()
    target = env.share.input / "slow.csv"
    chunks = 8
    with target.open("wb") as fh:
        for k in range(chunks):
            if k:
                time.sleep(0.5)
            fh.write(data[k * len(data) // chunks : (k + 1) * len(data) // chunks])
            fh.flush()
            last_write = time.time()
    job_id = _only_job_id(env)
    result = env.result(job_id)
    assert result["status"] == "completed", result
    from datetime import datetime

    assert datetime.fromisoformat(result["claimed_at"]).timestamp() >= last_write + 0.9
    assert result["days"] == 30 and result["strategies"] == 200


@pytest.mark.slow
def test_fifty_files_dropped_at_once_each_run_exactly_once(env: Env, daemon) -> None:
    for k in range(50):
        (env.share.input / f"f{k:02d}.csv").write_bytes(env.csv.read_bytes().replace(b"#1,", f"#{k},".encode(), 1))
    daemon("QUEUE.workers=2")
    wait_for(lambda: len(env.results()) == 50, 600, "50 results")
    results = env.results()
    assert all(r["status"] == "completed" for r in results), [r["reason"] for r in results if r["reason"]]
    assert sorted(r["input_file"] for r in results) == [f"f{k:02d}.csv" for k in range(50)]
    assert all(r["attempts"] == 1 and r["duplicate_of"] is None for r in results)
    runs = list(env.share.output.glob("run_*"))
    assert len(runs) == 50 and len({r["output_folder"] for r in results}) == 50
    store = env.store()
    assert [r["state"] for r in store.rows("kind = 'csv'")] == ["completed"] * 50
    assert list(env.share.input.iterdir()) == []


def test_an_identical_resubmission_is_recognised(env: Env, daemon) -> None:
    daemon()
    env.drop("same.csv")
    first = env.result(_only_job_id(env))
    env.drop("same.csv")
    second = wait_for(
        lambda: len(env.results()) == 2 and [r for r in env.results() if r["job_id"] != first["job_id"]],
        90,
        "the second result",
    )[0]
    assert second["status"] == "completed"
    assert second["duplicate_of"] == first["job_id"]
    assert second["output_folder"] == first["output_folder"] and second["winner"] == first["winner"]
    assert "same input file and settings as job" in second["note"]
    assert len(list(env.share.output.glob("run_*"))) == 1
    # Other settings: a new run.
    (env.share.input / "same.ini").write_text("[GENERAL]\nseed = 7\n")
    env.drop("same.csv")
    wait_for(lambda: len(env.results()) == 3, 90, "the third result")
    assert len(list(env.share.output.glob("run_*"))) == 2


def test_a_job_over_its_timeout_is_stopped_and_the_worker_freed(env: Env, daemon) -> None:
    daemon("QUEUE.job_timeout_s=2", *SLOW_SETS, "OPTIMIZATION.evaluation_budget=100000")
    env.drop("long.csv")
    result = env.result(_only_job_id(env), 60)
    assert result["status"] == "failed"
    assert "timed out after 2 s (QUEUE.job_timeout_s)" in result["reason"]
    # The next job runs.
    env.drop("next.csv")
    wait_for(lambda: len(env.results()) == 2, 60, "the next job")


def test_a_second_daemon_on_the_same_state_is_refused(env: Env, daemon) -> None:
    first = daemon()
    second = Daemon(first.share, first.config, first.server_layers, first.data_dir)
    with pytest.raises(ConfigError, match="another heavyopt daemon is running"):
        second.start()


def test_names_and_sizes() -> None:
    assert is_temporary("~$Book1.csv") and is_temporary("x.csv.TMP") and is_temporary("a.partial")
    assert not is_temporary("book.csv")
    assert portfolio_range("j", 50) == (50, 50)
    assert portfolio_range("j", "35-100") == (35, 100)
    assert portfolio_range("j", [35, 40]) == (35, 40)
    for bad in ("x", True, [40, 35], 1, None):
        with pytest.raises(Rejected):
            portfolio_range("j", bad)


# ---------------------------------------------------------------- the daemon as a process


def test_kill_9_mid_job_then_restart_completes_it_once(env: Env, watch) -> None:
    first = watch(*SLOW_SETS)
    env.drop("crash.csv")
    store = env.store()
    row = wait_for(lambda: (r := store.rows("state = 'running'")) and r[0]["progress"] > 30 and r[0], 120, "progress")
    runner_pid = row["pid"]
    first.kill9()
    # The runner dies with the daemon (PR_SET_PDEATHSIG): no job left running unseen.
    wait_for(lambda: gone(runner_pid), 10, "the runner to die")
    assert store.get(row["seq"])["state"] == "running"  # as the crash left it
    second = watch()  # the server's settings are the new daemon's: a small job this time
    result = env.result(row["job_id"], 180)
    assert result["status"] == "completed", result
    assert result["attempts"] == 2
    assert len(list(env.share.output.glob("run_*"))) == 1  # run once to the end, never twice at once
    events = [e["kind"] for e in store.events(row["seq"]) if e["kind"] in ("running", "requeued", "completed")]
    assert events == ["running", "requeued", "running", "completed"]
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


def _job_processes(marker: str) -> list[int]:
    """Live processes whose environment carries the runner's job marker (the runner, its pool workers)."""
    wanted = f"HEAVYOPT_RUNNER_JOB={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0") and not gone(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


POOL_SETS = [*SLOW_SETS, "COMPUTE.workers=2", "OPTIMIZATION.evaluation_budget=20000"]


def _searching(env: Env) -> tuple[dict, list[int]]:
    """The running job once its pool is searching, and its processes (runner and workers)."""
    store = env.store()

    def searching() -> dict | None:
        rows = store.rows("state = 'running'")
        return rows[0] if rows and rows[0]["step"].startswith("search") and rows[0]["progress"] > 26 else None

    row = wait_for(searching, 180, "the search")
    marker = f"{row['seq']}:{row['job_id']}"
    procs = wait_for(lambda: len(p := _job_processes(marker)) >= 3 and p, 30, "the runner and its two workers")
    return row, procs


def test_kill_9_of_the_daemon_leaves_no_process_of_the_job(env: Env, watch) -> None:
    first = watch(*POOL_SETS)
    env.drop("orphans.csv")
    row, procs = _searching(env)
    first.kill9()
    # Nobody is left to clean up: the runner dies with the daemon, the workers with the runner.
    wait_for(lambda: not _job_processes(f"{row['seq']}:{row['job_id']}"), 10, f"processes {procs} to die")
    second = watch()  # the server's settings are the new daemon's: a small job this time
    assert env.result(row["job_id"], 240)["status"] == "completed"
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


def test_kill_9_of_the_runner_leaves_no_worker_and_fails_the_job_with_its_reason(env: Env, watch) -> None:
    proc = watch(*POOL_SETS)
    env.drop("runner.csv")
    row, procs = _searching(env)
    os.kill(row["pid"], signal.SIGKILL)
    wait_for(lambda: not _job_processes(f"{row['seq']}:{row['job_id']}"), 10, f"processes {procs} to die")
    result = env.result(row["job_id"], 60)
    assert result["status"] == "failed"
    assert "killed by SIGKILL" in result["reason"] and "out of memory" in result["reason"]
    assert (env.root / result["archived_input"]).is_file()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_a_job_that_keeps_crashing_the_daemon_is_failed_with_a_reason(env: Env, watch) -> None:
    store = env.store()
    env.drop("crash.csv")
    for _ in range(2):
        proc = watch(*SLOW_SETS, "QUEUE.max_attempts=2")
        wait_for(lambda: (r := store.rows("state = 'running'")) and r[0]["progress"] > 30, 120, "progress")
        proc.kill9()
    last = watch(*SLOW_SETS, "QUEUE.max_attempts=2")
    result = env.result(store.rows()[0]["job_id"], 60)
    assert result["status"] == "failed"
    assert "the daemon stopped during the job" in result["reason"]
    assert "2 time(s) out of QUEUE.max_attempts = 2" in result["reason"]
    assert (env.root / result["archived_input"]).is_file()
    last.signal(signal.SIGTERM)
    assert last.wait() == 0


def test_sigterm_lets_the_running_job_finish(env: Env, watch, tmp_path: Path) -> None:
    from optimizer.synthetic import write_csv

    proc = watch(*SLOW_SETS, "QUEUE.stop_grace_s=120")
    env.drop("finish.csv")
    store = env.store()
    wait_for(lambda: store.rows("state = 'running'"), 60, "running")
    # Another input (not a duplicate of the first), claimed and checked before the stop: ready to start.
    env.drop("later.csv", write_csv(tmp_path / "later.csv", 200, 30, seed=4))
    wait_for(
        lambda: store.rows("input_name = 'later.csv' AND state = 'queued' AND layers_json IS NOT NULL"),
        60,
        "later.csv to be queued",
    )
    proc.signal(signal.SIGTERM)
    assert proc.wait(180) == 0
    states = {r["input_name"]: r["state"] for r in store.rows()}
    assert states == {"finish.csv": "completed", "later.csv": "queued"}  # never started after the stop
    assert [r["input_file"] for r in env.results()] == ["finish.csv"]
    assert read_json(env.share.status_file)["status"] == "stopped"


def test_sigterm_past_the_grace_stops_the_job_and_the_next_start_reruns_it(env: Env, watch) -> None:
    proc = watch(*SLOW_SETS, "QUEUE.stop_grace_s=0")
    env.drop("cut.csv")
    store = env.store()
    row = wait_for(lambda: (r := store.rows("state = 'running'")) and r[0], 60, "running")
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert store.get(row["seq"])["state"] == "queued"
    assert gone(row["pid"])
    watch()  # the server's settings are the new daemon's: a small job this time
    result = env.result(row["job_id"], 180)
    assert result["status"] == "completed" and result["attempts"] == 2


def test_watch_without_a_share_is_a_config_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "cli", "watch", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("HEAVYOPT_")},
    )
    assert done.returncode == 2
    assert "QUEUE.share is not set" in done.stderr


def test_a_half_done_claim_is_finished_or_undone_at_start(env: Env, daemon) -> None:
    """A crash between the claim's row and its rename: the next start reads the row and the files."""
    store = env.store()
    # The rename happened: the job goes on.
    moved = env.share.archive / "moved-00000001"
    moved.mkdir()
    (moved / "moved.csv").write_bytes(env.csv.read_bytes())
    store.add(
        job_id="moved-00000001",
        share=str(env.root),
        state="claiming",
        kind="csv",
        input_name="moved.csv",
        origin="input/moved.csv",
        job_dir="archive/moved-00000001",
        input_path="archive/moved-00000001/moved.csv",
    )
    # The rename did not happen: the row is closed and the file, still in input/, is claimed afresh.
    env.drop("stay.csv")
    store.add(
        job_id="stay-00000002",
        share=str(env.root),
        state="claiming",
        kind="csv",
        input_name="stay.csv",
        origin="input/stay.csv",
        job_dir="archive/stay-00000002",
        input_path="archive/stay-00000002/stay.csv",
    )
    daemon()
    assert env.result("moved-00000001")["status"] == "completed"
    wait_for(lambda: len(env.results()) == 2, 60, "two results")
    others = [r for r in env.results() if r["job_id"] != "moved-00000001"]
    assert others[0]["input_file"] == "stay.csv" and others[0]["status"] == "completed"
    assert store.rows("job_id = 'stay-00000002'")[0]["reason"] == "claim undone after a restart"


def test_hostile_and_odd_files_fail_alone_and_the_queue_goes_on(env: Env, daemon, tmp_path: Path) -> None:
    """Each of these once could stop the daemon; now each fails with a reason (or is skipped) and work goes on."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (env.share.queue / "folder.json").mkdir()
    (env.share.input / "folder.csv").mkdir()
    os.mkfifo(env.share.queue / "fifo.json")
    (env.share.queue / "nested.json").write_text("[" * 100_000)
    (env.share.queue / "huge.json").write_text('{"input_file": "h.csv", "portfolio_size": 1e999}')
    (env.share.input / "h.csv").write_bytes(env.csv.read_bytes())
    long_id = "L" * 240
    (env.share.queue / f"{long_id}.json").write_text('{"input_file": "x.csv"}')
    (env.share.queue / "Desk 1.json").write_text('{"input_file": "desk.csv"}')  # a space: not a valid id
    (env.share.input / "desk.csv").write_bytes(env.csv.read_bytes())
    (env.share.input / b"caf\xe9.csv".decode("utf-8", "surrogateescape")).write_bytes(env.csv.read_bytes())
    os.symlink(outside, env.share.archive / "j9")  # a planted link where the job's folder would go
    (env.share.queue / "UPPER.JSON").write_text('{"input_file": "upper.csv"}')
    (env.share.input / "upper.csv").write_bytes(env.csv.read_bytes())
    (env.share.queue / "j9.json").write_text('{"input_file": "j9.csv", "portfolio_size": 10}')
    (env.share.input / "j9.csv").write_bytes(env.csv.read_bytes())
    env.share.status_file.mkdir()  # a folder where the status file goes
    d = daemon()
    expected = {"folder", "fifo", "nested", "huge", long_id, "Desk 1", "UPPER", "j9"}
    wait_for(lambda: expected <= {r["job_id"] for r in env.results()}, 120, "every job file's result")
    by_id = {r["job_id"]: r for r in env.results()}
    assert "not a regular file" in by_id["folder"]["reason"] and "not a regular file" in by_id["fifo"]["reason"]
    assert "not valid JSON" in by_id["nested"]["reason"]
    assert "huge.json: portfolio_size inf: use a number" in by_id["huge"]["reason"]  # JSON's 1e999 reads as inf
    assert "use 1–100 letters" in by_id[long_id]["reason"] and "use 1–100 letters" in by_id["Desk 1"]["reason"]
    assert by_id["UPPER"]["status"] == "completed" and by_id["j9"]["status"] == "completed"
    assert by_id["j9"]["archived_input"].startswith("archive/j9.") and list(outside.iterdir()) == []
    # The rejected job file's input went to its archive folder: it was not run as a CSV of its own.
    assert by_id["Desk 1"]["archived_input"].endswith("/desk.csv")
    assert by_id["huge"]["archived_input"].endswith("/h.csv") and (env.root / by_id["huge"]["archived_input"]).is_file()
    assert not (env.share.input / "h.csv").exists() and not (env.share.input / "desk.csv").exists()
    time.sleep(1.0)
    assert not any(r["input_file"] in ("desk.csv", "h.csv") and r["status"] == "completed" for r in env.results())
    # The folder named like a CSV failed as a job; the badly named file is left alone; the daemon still runs.
    folder_csv = [r for r in env.results() if r["input_file"] == "folder.csv"]
    assert folder_csv and "not a regular file" in folder_csv[0]["reason"]
    assert list(env.share.processing.iterdir()) == []
    assert d.store is not None and not d.stop.is_set()
    env.drop("after.csv")
    wait_for(lambda: any(r["input_file"] == "after.csv" for r in env.results()), 60, "a normal job afterwards")
