"""The backend contract (dal/base.py docstring). Every backend runs this suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pytest_mock import MockerFixture

from dal import Backend, ResultRow, open_backend
from dal.heavydb_backend import HeavyDBBackend
from errors import BackendUnavailable
from optimizer.synthetic import generate_pnl
from tests.dal.heavydb_standin import DuckDBStandIn

HEAVYDB_URL = "heavydb://admin:Secr3t@gpu-db.example:6274/heavyai"


@pytest.fixture(
    params=["duckdb-file", "duckdb-memory", "heavydb-standin", pytest.param("heavydb-live", marks=pytest.mark.heavydb)]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path, mocker: MockerFixture) -> Iterator[Backend]:
    if request.param == "heavydb-standin":
        # No HeavyDB server here: the client at our adapter boundary is replaced (tests/dal/heavydb_standin.py).
        standin = DuckDBStandIn()
        connect = mocker.patch("dal.heavydb_backend.connect_client", return_value=standin)
        db = open_backend(HEAVYDB_URL, timeout_s=3, query_timeout_s=7)
        connect.assert_called_once_with(HEAVYDB_URL, 3, 7)
        assert db.url == "heavydb://admin:***@gpu-db.example:6274/heavyai"
    elif request.param == "heavydb-live":
        live = os.environ.get("HEAVYOPT_TEST_HEAVYDB_URL")
        if not live:
            pytest.skip("set HEAVYOPT_TEST_HEAVYDB_URL=heavydb://user:password@host:6274/db to run against a server")
        # Tables of this test's own on the shared server, dropped after it.
        db = HeavyDBBackend(live, prefix=f"heavyopt_t{uuid.uuid4().hex[:12]}_")
        request.addfinalizer(db.drop_tables)
    else:
        url = f"duckdb:///{tmp_path / 'db' / 'h.duckdb'}" if request.param == "duckdb-file" else "duckdb:///:memory:"
        db = open_backend(url)
    yield db
    db.close()


def _data(days: int = 9, strategies: int = 40, seed: int = 3) -> tuple[np.ndarray, np.ndarray, list[str]]:
    pnl = generate_pnl(strategies, days, seed)
    pnl[:, 5] = 0.0  # a strategy that never traded
    dates = np.arange(np.datetime64("2024-01-04"), np.datetime64("2024-01-04") + 7 * days, 7)
    return pnl, dates, [f"S{j}" for j in range(strategies)]


def test_round_trip_is_bit_exact(backend: Backend) -> None:
    pnl, dates, names = _data()
    backend.store_pnl("j1", dates, None, names, pnl)
    stored = backend.fetch_pnl("j1")
    assert np.array_equal(stored.pnl, pnl)
    assert np.array_equal(stored.dates, dates)
    assert stored.strategies == tuple(names)
    assert stored.zones is None
    assert not stored.inverted.any()


def test_zones_round_trip(backend: Backend) -> None:
    pnl, dates, names = _data(days=8)
    zones = ["A", "B"] * 4
    backend.store_pnl("z", np.repeat(dates[:4], 2), zones, names, pnl)
    assert backend.fetch_pnl("z").zones == tuple(zones)


def test_storing_a_job_again_replaces_it(backend: Backend) -> None:
    pnl, dates, names = _data()
    backend.store_pnl("j", dates, None, names, pnl)
    backend.apply_ulta("j")
    backend.store_pnl("j", dates, None, names, pnl * 2)
    stored = backend.fetch_pnl("j")
    assert np.array_equal(stored.pnl, pnl * 2)
    assert not stored.inverted.any()


def test_ulta_inverts_losers_once_and_renames_them(backend: Backend) -> None:
    pnl, dates, names = _data()
    backend.store_pnl("j", dates, None, names, pnl)
    count = backend.apply_ulta("j")
    losers = pnl.sum(axis=0) < 0
    assert count == int(losers.sum()) > 0
    stored = backend.fetch_pnl("j")
    assert np.array_equal(stored.inverted, losers)
    assert np.array_equal(stored.pnl, np.where(losers, -pnl, pnl))
    assert [n for n in stored.strategies if n.endswith("_inv")] == [
        f"{n}_inv" for n, lost in zip(names, losers, strict=True) if lost
    ]
    assert backend.apply_ulta("j") == count  # nothing more is inverted
    assert np.array_equal(backend.fetch_pnl("j").pnl, stored.pnl)


def test_ulta_decides_on_the_leading_rows_and_inverts_every_row(backend: Backend) -> None:
    """Validation keeps the test window out of ULTA's decision: only rows day_idx < decide_rows count."""
    pnl, dates, names = _data(days=12)
    pnl[:8, 0], pnl[8:, 0] = 10.0, -100.0  # wins in the first 8 rows, loses over all 12
    pnl[:8, 1], pnl[8:, 1] = -10.0, 100.0  # the opposite
    backend.store_pnl("j", dates, None, names, pnl)
    count = backend.apply_ulta("j", 8)
    losers = pnl[:8].sum(axis=0) < 0
    assert not losers[0] and losers[1]
    assert count == int(losers.sum())
    stored = backend.fetch_pnl("j")
    assert np.array_equal(stored.inverted, losers)
    assert np.array_equal(stored.pnl, np.where(losers, -pnl, pnl))  # every row of a chosen strategy
    assert backend.apply_ulta("j", 8) == count  # the same rows: nothing more


def test_jobs_do_not_see_each_other(backend: Backend) -> None:
    pnl, dates, names = _data()
    backend.store_pnl("a", dates, None, names, pnl)
    backend.store_pnl("b", dates, None, names, -pnl)
    backend.apply_ulta("a")
    assert np.array_equal(backend.fetch_pnl("b").pnl, -pnl)


def test_job_records_and_results(backend: Backend) -> None:
    backend.record_job("j", source="x.csv", status="running", n_rows=3)
    backend.record_job("j", status="completed", run_dir="/out/run_1")
    job = backend.job("j")
    assert job is not None
    assert (job["source"], job["status"], job["n_rows"], job["run_dir"]) == ("x.csv", "completed", 3, "/out/run_1")
    assert backend.job("missing") is None
    rows = [
        ResultRow(35, "hill_climbing", "ok", 1.5, 10_000, 0.2, ("S1", "S2")),
        ResultRow(35, "random_search", "failed", None, 3, 0.1, (), "ValueError: x"),
    ]
    backend.record_results("j", rows)
    backend.record_results("j", rows)  # replaces, never duplicates
    got = backend.results("j")
    assert [(r["algorithm"], r["status"], r["fitness"], r["strategies"]) for r in got] == [
        ("hill_climbing", "ok", 1.5, ["S1", "S2"]),
        ("random_search", "failed", None, []),
    ]
    with pytest.raises(ValueError, match="unknown job fields"):
        backend.record_job("j", colour="red")


def test_empty_text_reads_back_as_none(backend: Backend) -> None:
    """HeavyDB stores '' in a TEXT ENCODING NONE column as NULL: every backend reads back the same."""
    backend.record_job("j", status="completed", error="", run_dir="")
    job = backend.job("j")
    assert job is not None and job["error"] is None and job["run_dir"] is None
    backend.record_results("j", [ResultRow(35, "hill_climbing", "ok", 1.5, 10, 0.2, ("S1",), error="")])
    assert backend.results("j")[0]["error"] is None


def test_prune_keeps_records_and_the_newest_pnl(backend: Backend) -> None:
    pnl, dates, names = _data()
    for i, job in enumerate(["old", "mid", "new"]):
        backend.record_job(job, created_at=np.datetime64("2026-01-01") + i, status="completed")  # type: ignore[arg-type]
        backend.store_pnl(job, dates, None, names, pnl)
        backend.record_results(job, [ResultRow(35, "random_search", "ok", 1.0, 1, 0.1, ("S1",))])
    assert backend.prune(2) == 1
    with pytest.raises(KeyError):
        backend.fetch_pnl("old")
    assert backend.job("old") is not None and backend.results("old")
    assert np.array_equal(backend.fetch_pnl("new").pnl, pnl)


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="unsupported scheme 'postgres'") as info:
        open_backend("postgres://u:secret@h/db")
    assert "secret" not in str(info.value)


def test_a_locked_file_names_the_problem(tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r}); print("ready", flush=True); sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(BackendUnavailable, match=r"another process has held it for 0\.3 s"):
            open_backend(f"duckdb:///{path}", lock_wait_s=0.3)
    finally:
        holder.communicate("", timeout=30)
    open_backend(f"duckdb:///{path}", lock_wait_s=0.3).close()


def test_a_busy_file_is_waited_for(tmp_path: Path) -> None:
    """Two jobs in two processes share one DuckDB file: each operation waits for the other's to end."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({str(path)!r}); print("ready", flush=True); time.sleep(1.0); con.close()
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    backend = open_backend(f"duckdb:///{path}", lock_wait_s=60)
    backend.record_job("j1", status="running")
    assert holder.communicate(timeout=30)[0] == ""
    assert holder.returncode == 0
    assert backend.job("j1")["status"] == "running"
