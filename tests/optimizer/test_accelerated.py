"""HeavyDB and CuPy with safe fallbacks: the job always completes on the embedded default, and says so.

Without a HeavyDB server or a GPU here, the HeavyDB client is replaced at our adapter boundary
(``dal.heavydb_backend.connect_client``) and the GPU at ours (``optimizer.compute``'s choice);
``test_gpu.py`` runs the real CuPy path on a machine with a device.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pytest_mock import MockerFixture

from algorithms.base import raised_by_gpu
from errors import BackendUnavailable
from optimizer.compute import ComputeChoice, choose, estimate_gpu_bytes
from optimizer.config import load_config
from optimizer.pipeline import run_job
from optimizer.synthetic import write_csv
from tests.conftest import free_port
from tests.dal.heavydb_standin import DuckDBStandIn
from tests.optimizer.small_jobs import cfg, summary

PASSWORD = "Secr3t-pw"


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "in.csv", 200, 30, seed=11)


def every_output_text(run_dir: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in run_dir.iterdir())


def test_an_unreachable_heavydb_gives_a_completed_job_on_duckdb_that_says_so(
    tmp_path: Path, csv_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"heavydb://admin:{PASSWORD}@127.0.0.1:{port}/heavyai"
    with caplog.at_level(logging.WARNING, logger="heavyopt"):
        outcome = run_job(
            csv_file, cfg(tmp_path, f"DATABASE.url={url}", "DATABASE.connect_timeout_s=3"), out_dir=tmp_path / "out"
        )
    doc = summary(outcome)
    assert doc["database"].startswith("duckdb:///") and doc["database"].endswith("heavyopt.duckdb")
    reason = doc["fallbacks"]["database"]
    assert reason.startswith(f"heavydb://admin:***@127.0.0.1:{port}/heavyai → duckdb:///")
    assert f"HeavyDB at 127.0.0.1:{port}" in reason
    assert "runs on the embedded DuckDB store" in caplog.text and f"127.0.0.1:{port}" in caplog.text
    assert PASSWORD not in every_output_text(outcome.run_dir) and PASSWORD not in caplog.text
    assert "Fell back (database)" in (outcome.run_dir / "performance_report.txt").read_text()
    # The same job on DuckDB directly gives the same winner.
    direct = run_job(csv_file, cfg(tmp_path / "direct"), out_dir=tmp_path / "out2")
    assert outcome.report.winner.fitness == direct.report.winner.fitness
    assert summary(direct)["fallbacks"] == {}


def test_without_fallback_an_unreachable_heavydb_is_an_error(tmp_path: Path, csv_file: Path) -> None:
    url = f"heavydb://admin:{PASSWORD}@127.0.0.1:{free_port()}/heavyai"
    with pytest.raises(BackendUnavailable, match=r"HeavyDB at 127\.0\.0\.1") as info:
        run_job(csv_file, cfg(tmp_path, f"DATABASE.url={url}", "DATABASE.fallback=false"), out_dir=tmp_path / "out")
    assert PASSWORD not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_repeated_failures_open_the_breaker_for_a_cool_down(
    tmp_path: Path, csv_file: Path, mocker: MockerFixture
) -> None:
    connect = mocker.patch(
        "dal.heavydb_backend.connect_client", side_effect=ConnectionRefusedError("[Errno 111] Connection refused")
    )
    url = f"heavydb://admin:{PASSWORD}@gpu-db:6274/heavyai"
    settings = [f"DATABASE.url={url}", "DATABASE.breaker_failures=2", "DATABASE.breaker_cooldown_s=3600"]
    for _ in range(2):
        outcome = run_job(csv_file, cfg(tmp_path, *settings), out_dir=tmp_path / "out")
        assert "ConnectionRefusedError" in summary(outcome)["fallbacks"]["database"]
    assert connect.call_count == 2
    outcome = run_job(csv_file, cfg(tmp_path, *settings), out_dir=tmp_path / "out")
    assert connect.call_count == 2  # not tried while the breaker is open
    reason = summary(outcome)["fallbacks"]["database"]
    assert "HeavyDB skipped: 2 failures in a row" in reason and "DATABASE.breaker_cooldown_s = 3600" in reason
    # After the cool-down it is tried again, and a job that runs on HeavyDB closes the breaker.
    standin = DuckDBStandIn()
    connect.side_effect = None
    connect.return_value = standin
    cooled = [*settings[:-1], "DATABASE.breaker_cooldown_s=0"]
    outcome = run_job(csv_file, cfg(tmp_path, *cooled), out_dir=tmp_path / "out")
    doc = summary(outcome)
    assert doc["database"] == "heavydb://admin:***@gpu-db:6274/heavyai" and doc["fallbacks"] == {}
    assert json.loads((tmp_path / "data" / "heavydb_breaker.json").read_text()) == {}
    assert ("heavyopt_pnl", 30 * 200) in standin.loads


class FailingStandIn(DuckDBStandIn):
    """A server that goes away after the P&L is loaded: ULTA's statement fails."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if sql.lstrip().startswith("UPDATE heavyopt_strategies"):
            raise OSError("TSocket read 0 bytes")
        return super().execute(sql, params)


def test_a_heavydb_failure_mid_job_moves_the_job_to_duckdb(
    tmp_path: Path, csv_file: Path, mocker: MockerFixture
) -> None:
    standin = FailingStandIn()
    mocker.patch("dal.heavydb_backend.connect_client", return_value=standin)
    url = f"heavydb://admin:{PASSWORD}@gpu-db:6274/heavyai"
    outcome = run_job(csv_file, cfg(tmp_path, f"DATABASE.url={url}"), out_dir=tmp_path / "out")
    doc = summary(outcome)
    assert doc["database"].startswith("duckdb:///")
    assert "HeavyDB at gpu-db:6274: OSError: TSocket read 0 bytes" in doc["fallbacks"]["database"]
    assert ("heavyopt_pnl", 30 * 200) in standin.loads  # it had got that far on HeavyDB
    # The job was replayed on DuckDB (record, P&L, ULTA) and gives the result of a DuckDB-only run.
    direct = run_job(csv_file, cfg(tmp_path / "direct"), out_dir=tmp_path / "out2")
    assert outcome.report.winner == direct.report.winner
    assert doc["ulta"] == summary(direct)["ulta"]
    from dal import open_backend

    stored = open_backend(doc["database"]).job(outcome.job_id)
    assert stored is not None and stored["status"] == "completed"


def test_a_connection_that_fails_to_close_does_not_fail_the_finished_job(
    tmp_path: Path, csv_file: Path, mocker: MockerFixture
) -> None:
    standin = DuckDBStandIn()
    standin.fail_close = True  # the logout of a connection the server has dropped
    mocker.patch("dal.heavydb_backend.connect_client", return_value=standin)
    url = f"heavydb://admin:{PASSWORD}@gpu-db:6274/heavyai"
    outcome = run_job(csv_file, cfg(tmp_path, f"DATABASE.url={url}"), out_dir=tmp_path / "out")
    doc = summary(outcome)
    assert doc["database"] == "heavydb://admin:***@gpu-db:6274/heavyai" and doc["fallbacks"] == {}
    assert outcome.writer_errors == ()


def test_cupy_asked_for_but_missing_runs_on_numpy_and_says_why(tmp_path: Path, csv_file: Path) -> None:
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    outcome = run_job(csv_file, cfg(tmp_path, "COMPUTE.backend=cupy"), out_dir=tmp_path / "out")
    doc = summary(outcome)
    assert doc["compute"]["array_module"] == "numpy"
    assert doc["fallbacks"]["compute"].startswith("CuPy unavailable (ModuleNotFoundError")
    auto = run_job(csv_file, cfg(tmp_path / "auto", "COMPUTE.backend=auto"), out_dir=tmp_path / "out2")
    assert summary(auto)["fallbacks"] == {} and summary(auto)["compute"]["array_module"] == "numpy"


class CUDARuntimeError(RuntimeError):
    """Shaped like CuPy's: the GPU stack is recognised by the exception's module, not its text."""


CUDARuntimeError.__module__ = "cupy_backends.cuda.api.runtime"


class _BrokenGpu:
    """Stands in for cupy at our compute boundary: works like NumPy until ``fail_on`` is called."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        if name == self.fail_on:
            raise CUDARuntimeError("cudaErrorMemoryAllocation: out of memory")
        return getattr(np, name)


@pytest.mark.parametrize("fail_on", ["asarray", "tril_indices"])
def test_a_gpu_error_falls_back_to_numpy_with_the_same_result(
    tmp_path: Path, csv_file: Path, mocker: MockerFixture, fail_on: str, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = _BrokenGpu(fail_on)
    mocker.patch("optimizer.pipeline.choose", return_value=ComputeChoice(gpu, "cupy", device="Stand-in GPU (device 0)"))
    mocker.patch("optimizer.pipeline.release")
    with caplog.at_level(logging.WARNING, logger="heavyopt"):
        outcome = run_job(csv_file, cfg(tmp_path), out_dir=tmp_path / "out")
    doc = summary(outcome)
    assert doc["compute"]["array_module"] == "numpy"
    assert "cudaErrorMemoryAllocation" in doc["fallbacks"]["compute"] and "GPU failed" in caplog.text
    direct = run_job(csv_file, cfg(tmp_path / "direct", "COMPUTE.backend=numpy"), out_dir=tmp_path / "out2")
    assert outcome.report.winner == direct.report.winner
    assert [r.fitness for r in outcome.report.results] == [r.fitness for r in direct.report.results]


def test_a_gpu_error_inside_an_algorithm_repeats_the_search_on_numpy(
    tmp_path: Path, csv_file: Path, mocker: MockerFixture
) -> None:
    # Not NumPy, so the evaluation looks for cupyx's sparse module, which is not here: every algorithm fails
    # with a CuPy error, as it would on a broken device; the search is then repeated on NumPy.
    gpu = SimpleNamespace(**{name: getattr(np, name) for name in dir(np) if not name.startswith("__")})
    mocker.patch("optimizer.pipeline.choose", return_value=ComputeChoice(gpu, "cupy", device="Stand-in GPU"))
    mocker.patch("optimizer.pipeline.release")
    outcome = run_job(csv_file, cfg(tmp_path), out_dir=tmp_path / "out")
    doc = summary(outcome)
    assert "GPU failed during the search" in doc["fallbacks"]["compute"] and "cupyx" in doc["fallbacks"]["compute"]
    assert all(r["status"] == "ok" for r in doc["results"])


def test_gpu_memory_estimate_and_error_classification() -> None:
    need = estimate_gpu_bytes(25_544, 82, 100)
    assert 25_544 * 164 * 8 < need < 2 * 1024**3  # the rows plus a batch: well under 2 GB
    assert raised_by_gpu(CUDARuntimeError("cudaErrorIllegalAddress"))
    assert raised_by_gpu(ModuleNotFoundError("No module named 'cupyx'", name="cupyx.scipy"))
    # Our own faults are not the device's, whatever their text says.
    assert not raised_by_gpu(ValueError("population must have shape (P, 5)"))
    assert not raised_by_gpu(RuntimeError("CUDA out of memory"))
    assert not raised_by_gpu(ModuleNotFoundError("No module named 'xlsxwriter'", name="xlsxwriter"))


def test_numpy_is_used_when_asked(tmp_path: Path) -> None:
    choice = choose(load_config(overrides=["COMPUTE.backend=numpy"]), 100, 10, 5)
    assert choice.xp is np and choice.fallback is None and not choice.on_gpu
