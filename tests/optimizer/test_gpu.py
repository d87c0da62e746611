"""The real CuPy path, on a machine with a CUDA device (tests marked ``gpu``; skipped elsewhere).

Kept apart from ``test_accelerated.py`` so that a GPU machine without the HeavyDB client (the
device tool's image) can run them: ``scripts/gpu-check.sh`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer.pipeline import run_job
from optimizer.synthetic import write_csv
from tests.conftest import cupy_or_skip
from tests.optimizer.small_jobs import cfg, summary


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "in.csv", 200, 30, seed=11)


@pytest.mark.gpu
def test_gpu_and_cpu_give_the_same_winners_and_fitness(tmp_path: Path) -> None:
    cupy_or_skip()
    data = write_csv(tmp_path / "wide.csv", 3000, 60, seed=21)
    sets = ["PORTFOLIO.min_size=20", "PORTFOLIO.max_size=24", "OPTIMIZATION.evaluation_budget=2000"]
    cpu = run_job(data, cfg(tmp_path / "cpu", *sets, "COMPUTE.backend=numpy"), out_dir=tmp_path / "o1")
    gpu = run_job(data, cfg(tmp_path / "gpu", *sets, "COMPUTE.backend=cupy"), out_dir=tmp_path / "o2")
    doc = summary(gpu)
    assert doc["compute"]["array_module"] == "cupy" and doc["fallbacks"] == {}, doc["fallbacks"]
    assert gpu.report.winner.strategies == cpu.report.winner.strategies
    assert gpu.report.winner.fitness == pytest.approx(cpu.report.winner.fitness, rel=1e-9)
    for a, b in zip(cpu.report.results, gpu.report.results, strict=True):
        assert (a.size, a.algorithm, a.strategies) == (b.size, b.algorithm, b.strategies)
        assert b.fitness == pytest.approx(a.fitness, rel=1e-9)
    assert [(p.first, p.second) for p in gpu.report.top_pairs] == [(p.first, p.second) for p in cpu.report.top_pairs]


@pytest.mark.gpu
def test_gpu_batch_fitness_matches_numpy() -> None:
    cupy = cupy_or_skip()
    from algorithms.correlation import unit_columns
    from algorithms.fitness import METRICS, Objective
    from algorithms.problem import Problem
    from optimizer.synthetic import generate_pnl

    pnl = generate_pnl(2000, 82, seed=4)
    units, nonconstant = unit_columns(np, pnl)
    rng = np.random.default_rng(0)
    population = np.stack([rng.choice(2000, 35, replace=False) for _ in range(5000)])
    for metric in METRICS:
        host = Problem.from_pnl(pnl, units, nonconstant, 35, Objective(metric, 10.0))
        device = host.on(cupy)
        np.testing.assert_allclose(device.evaluate(population), host.evaluate(population), rtol=1e-9, atol=0)


@pytest.mark.gpu
def test_a_gpu_memory_cap_too_small_falls_back_with_the_reason(tmp_path: Path, csv_file: Path) -> None:
    cupy_or_skip()
    outcome = run_job(
        csv_file, cfg(tmp_path, "COMPUTE.backend=cupy", "COMPUTE.gpu_memory_limit_mb=1"), out_dir=tmp_path / "out"
    )
    doc = summary(outcome)
    assert (
        doc["compute"]["array_module"] == "numpy" and "COMPUTE.gpu_memory_limit_mb = 1" in doc["fallbacks"]["compute"]
    )
