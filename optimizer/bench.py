"""``heavyopt bench``: time each step on a generated production-shape file.

Every speed figure is measured in this run and set beside a baseline measured in the
same run (DuckDB's column-oriented CSV reader; a per-candidate loop; full recomputation
instead of swap deltas), so ratios are comparable across machines.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from algorithms import REGISTRY, RunResult, run_algorithm
from algorithms.correlation import average_pairwise, top_pairs, unit_columns
from algorithms.fitness import Objective, fitness_from_sums
from algorithms.operators import random_subsets, random_swaps
from algorithms.problem import Problem
from algorithms.reference import reference_fitness
from dal.duckdb_backend import DuckDBBackend
from optimizer.assembly import peak_rss_mb
from optimizer.loader import load_csv
from optimizer.search import spawn_key
from optimizer.synthetic import write_csv
from optimizer.ulta import apply_ulta

BATCH = 10_000
QUALITY_SIZE = 35
SIZE = 50
SWAPS = 100_000


@dataclass(frozen=True)
class Row:
    step: str
    seconds: float
    rate: float | None = None  # items per second, when the step has a natural unit
    unit: str = ""
    baseline: str = ""
    baseline_seconds: float | None = None

    @property
    def speedup(self) -> float | None:
        if self.baseline_seconds is None or self.seconds <= 0:
            return None
        return self.baseline_seconds / self.seconds


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs: the figure least disturbed by the rest of the machine."""
    return min(_timed(fn)[0] for _ in range(repeats))


def _one_candidate(problem: Problem, members: np.ndarray) -> float:
    """The naive baseline: one portfolio at a time, summing its member rows, same metric code."""
    sums = problem.rows[members].sum(axis=0)[None, :]
    count = problem.nonconstant[members].sum()[None]
    return float(fitness_from_sums(np, sums, count, len(members), problem.objective)[0])


def _duckdb_read_csv(path: Path) -> int:
    import duckdb

    con = duckdb.connect()
    try:
        rel = con.execute(f"SELECT * FROM read_csv('{path}', header = true, auto_detect = true)")
        return len(rel.fetchall())
    finally:
        con.close()


@dataclass(frozen=True)
class QualityRow:
    """Best fitness of one algorithm over several seeds, and its mean seconds per run."""

    algorithm: str
    mean: float
    std: float
    minimum: float
    median: float
    maximum: float
    seconds: float


def quality(problem: Problem, seeds: int, budget: int) -> list[QualityRow]:
    """Every registered algorithm on ``problem`` at its default settings, ``seeds`` seeds each,
    seeded as a job with that seed would be."""
    out = []
    for flag, cls in REGISTRY.items():
        fitness, seconds = [], []
        for seed in range(seeds):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key(problem.size, flag)))
            result = run_algorithm(cls(), problem, budget, rng)
            if not isinstance(result, RunResult):
                raise RuntimeError(f"bench: {cls.name} failed: {result.error}")
            fitness.append(result.fitness)
            seconds.append(result.seconds)
        values = np.array(fitness)
        out.append(
            QualityRow(
                cls.name,
                float(values.mean()),
                float(values.std()),
                float(values.min()),
                float(np.median(values)),
                float(values.max()),
                float(np.mean(seconds)),
            )
        )
    return out


def run_bench(
    strategies: int, days: int, seed: int, threads: int, work_dir: Path | None = None
) -> tuple[list[Row], Problem]:
    """Per-step timings; also returns the size-35 problem on the ULTA-applied data for :func:`quality`."""
    rows, pnl = _storage_rows(strategies, days, seed, work_dir)
    correlation, units, nonconstant = _correlation_rows(pnl, strategies)
    rows += correlation

    objective = Objective()
    rng = np.random.default_rng(seed)
    population = random_subsets(rng, strategies, SIZE, BATCH)
    single = Problem.from_pnl(pnl, units, nonconstant, SIZE, objective, threads=1)
    multi = Problem.from_pnl(pnl, units, nonconstant, SIZE, objective, threads=threads)
    rows += _batch_fitness_rows(single, multi, population, threads)
    rows.append(_reference_row(pnl, population, objective))

    members = population[0]
    out_pos, incoming = random_swaps(rng, members, strategies, SWAPS)
    rows.append(_swap_row(single, members, out_pos, incoming))
    rows.extend(_gpu_rows(pnl, units, nonconstant, population, members, out_pos, incoming, rows))
    rows.append(Row("peak memory", 0.0, peak_rss_mb(), "MB RSS"))
    return rows, single.with_size(QUALITY_SIZE)


def _storage_rows(strategies: int, days: int, seed: int, work_dir: Path | None) -> tuple[list[Row], np.ndarray]:
    """Write, parse, store, ULTA (in SQL and on arrays) and fetch a generated file.

    Returns the rows and the ULTA-applied P&L matrix fetched back from DuckDB; raises
    RuntimeError when ULTA in SQL and on arrays disagree.
    """
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp_name:
        tmp = Path(tmp_name)
        csv_path = tmp / "bench.csv"
        seconds, _ = _timed(lambda: write_csv(csv_path, strategies, days, seed))
        rows.append(Row("generate file", seconds, csv_path.stat().st_size / seconds / 1e6, "MB/s"))

        duck_s, _ = _timed(lambda: _duckdb_read_csv(csv_path))
        seconds, data = _timed(lambda: load_csv(csv_path))
        rows.append(
            Row("parse CSV (row-oriented)", seconds, data.pnl.size / seconds, "cells/s", "duckdb read_csv", duck_s)
        )

        backend = DuckDBBackend(str(tmp / "bench.duckdb"))
        try:
            seconds, _ = _timed(lambda: backend.store_pnl("bench", data.dates, None, data.strategies, data.pnl))
            rows.append(Row("store in DuckDB (long form)", seconds, data.pnl.size / seconds, "rows/s"))
            seconds, inverted = _timed(lambda: backend.apply_ulta("bench"))
            rows.append(Row("ULTA in SQL", seconds, strategies / seconds, "strategies/s"))
            seconds, stored = _timed(lambda: backend.fetch_pnl("bench"))
            rows.append(Row("fetch matrix", seconds, data.pnl.size / seconds, "cells/s"))
        finally:
            backend.close()
        seconds, (arr, _, mask) = _timed(lambda: apply_ulta(data.pnl, data.strategies))
        rows.append(Row("ULTA on arrays", seconds, strategies / seconds, "strategies/s"))
        if int(mask.sum()) != inverted or not np.array_equal(arr, stored.pnl):
            raise RuntimeError("bench: ULTA in SQL and on arrays disagree")
    return rows, stored.pnl


def _correlation_rows(pnl: np.ndarray, strategies: int) -> tuple[list[Row], np.ndarray, np.ndarray]:
    """Unit columns, the universe's average correlation and the top pairs; returns the rows, units, nonconstant."""
    rows: list[Row] = []
    seconds, (units, nonconstant) = _timed(lambda: unit_columns(np, pnl))
    rows.append(Row("unit columns", seconds))
    seconds, _ = _timed(lambda: average_pairwise(units))
    rows.append(Row("universe avg correlation (identity)", seconds))
    seconds, _ = _timed(lambda: top_pairs(units, 20))
    rows.append(Row("top 20 pairs (blockwise GEMM)", seconds, strategies * (strategies - 1) / 2 / seconds, "pairs/s"))
    return rows, units, nonconstant


def _batch_fitness_rows(single: Problem, multi: Problem, population: np.ndarray, threads: int) -> list[Row]:
    """Batch fitness on one thread and on ``threads``, each beside the per-candidate loop."""
    loop_n = 1_000
    loop_s = _best_of(lambda: [_one_candidate(single, population[i]) for i in range(loop_n)])
    per_loop = loop_s / loop_n * BATCH
    rows = []
    for problem, label in ((single, "1 thread"), (multi, f"{threads} threads")):
        seconds = _best_of(partial(problem.evaluate, population))
        rows.append(
            Row(
                f"batch fitness n={SIZE}, {label}",
                seconds,
                BATCH / seconds,
                "portfolios/s",
                "per-candidate loop",
                per_loop,
            )
        )
    return rows


def _reference_row(pnl: np.ndarray, population: np.ndarray, objective: Objective) -> Row:
    """The plain-Python reference fitness on a few portfolios, extrapolated to a batch."""
    ref_n = 20
    ref_s, _ = _timed(lambda: [reference_fitness(pnl, population[i], objective) for i in range(ref_n)])
    return Row(
        f"reference fitness, plain Python (×{BATCH:,} extrapolated)",
        ref_s / ref_n * BATCH,
        ref_n / ref_s,
        "portfolios/s",
    )


def _neighbourhoods(problem: Problem, members: np.ndarray, out_pos: np.ndarray, incoming: np.ndarray) -> list[Any]:
    """Evaluate the ``SWAPS`` swap moves of ``members``, 1,000 per call.

    A neighbourhood per call, as the local-search algorithms use it.
    """
    per_call = 1_000
    return [
        problem.evaluate_swaps(members, out_pos[i : i + per_call], incoming[i : i + per_call])
        for i in range(0, SWAPS, per_call)
    ]


def _swap_row(single: Problem, members: np.ndarray, out_pos: np.ndarray, incoming: np.ndarray) -> Row:
    """Swap-move deltas on one thread, beside recomputing every swapped portfolio in full."""
    seconds = _best_of(partial(_neighbourhoods, single, members, out_pos, incoming))
    full = np.repeat(members[None, :], SWAPS, axis=0)
    full[np.arange(SWAPS), out_pos] = incoming
    full_s = _best_of(partial(single.evaluate, full))
    return Row(f"swap moves n={SIZE}, 1 thread", seconds, SWAPS / seconds, "moves/s", "full recomputation", full_s)


GPU_BATCH = 100_000


def _gpu_rows(
    pnl: np.ndarray,
    units: np.ndarray,
    nonconstant: np.ndarray,
    population: np.ndarray,
    members: np.ndarray,
    out_pos: np.ndarray,
    incoming: np.ndarray,
    host_rows: list[Row],
) -> list[Row]:
    """The same steps on CuPy, beside the NumPy figures of this run; none without a usable GPU."""
    from optimizer.compute import choose
    from optimizer.config import load_config

    strategies = pnl.shape[1]
    choice = choose(load_config(overrides=["COMPUTE.backend=cupy"], environ={}), strategies, pnl.shape[0], 100)
    if not choice.on_gpu:
        return [Row(f"GPU: not measured ({choice.fallback})", 0.0)]
    cp = choice.xp
    by_step = {r.step: r.seconds for r in host_rows}
    rows = [Row(f"GPU: {choice.device}", 0.0)]
    rows.append(_gpu_pairs_row(cp, units, strategies, by_step["top 20 pairs (blockwise GEMM)"]))
    host = Problem.from_pnl(pnl, units, nonconstant, SIZE, Objective(), threads=1)
    device = host.on(cp)
    cpu_per_batch = min(r.seconds for r in host_rows if r.step.startswith(f"batch fitness n={SIZE}")) / BATCH
    rows.append(_gpu_batch_row(host, device, population, cpu_per_batch * GPU_BATCH))
    seconds = _best_of(partial(_neighbourhoods, device, members, out_pos, incoming))
    rows.append(
        Row(
            f"GPU swap moves n={SIZE}",
            seconds,
            SWAPS / seconds,
            "moves/s",
            "NumPy, 1 thread",
            by_step[f"swap moves n={SIZE}, 1 thread"],
        )
    )
    pool = cp.get_default_memory_pool()
    rows.append(Row("GPU memory pool peak", 0.0, pool.total_bytes() / 2**20, "MB"))
    return rows


def _gpu_pairs_row(cp: Any, units: np.ndarray, strategies: int, numpy_seconds: float) -> Row:
    """The top 20 pairs on CuPy (after a warm-up), beside NumPy's time."""
    top_pairs(units, 20, xp=cp)  # warm-up: kernels compiled, pools allocated
    seconds = _best_of(lambda: top_pairs(units, 20, xp=cp))
    return Row(
        "GPU top 20 pairs",
        seconds,
        strategies * (strategies - 1) / 2 / seconds,
        "pairs/s",
        "NumPy",
        numpy_seconds,
    )


def _gpu_batch_row(host: Problem, device: Problem, population: np.ndarray, numpy_seconds: float) -> Row:
    """``GPU_BATCH`` portfolios per call on CuPy (after a warm-up), beside NumPy's best time for as many.

    Raises RuntimeError when the device and the host fitness of ``population`` differ by more than 1e-9 relative.
    """
    big = np.concatenate([population] * (GPU_BATCH // len(population)))
    device.evaluate(big[:1000])  # warm-up
    seconds = _best_of(partial(device.evaluate, big))
    row = Row(
        f"GPU batch fitness n={SIZE} ({GPU_BATCH:,} per call)",
        seconds,
        GPU_BATCH / seconds,
        "portfolios/s",
        "NumPy, best threads",
        numpy_seconds,
    )
    if not np.allclose(device.evaluate(population), host.evaluate(population), rtol=1e-9, atol=0):
        raise RuntimeError("bench: GPU and CPU fitness differ by more than 1e-9 relative")
    return row


def _algorithm_seconds(results: Any) -> dict[str, float]:
    """Seconds each algorithm ran, summed over sizes (where the search step's time goes)."""
    out: dict[str, float] = {}
    for r in results:
        out[r.algorithm] = out.get(r.algorithm, 0.0) + r.seconds
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def sweep(strategies: int, days: int, seed: int, work_dir: Path | None = None) -> list[Row]:
    """The whole job (sizes 35..100, every algorithm, default settings) on NumPy, then on CuPy if a GPU works.

    Each step's time on CuPy is set beside the same step on NumPy in this run.
    """
    from optimizer.compute import choose
    from optimizer.config import load_config
    from optimizer.pipeline import run_job

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp_name:
        tmp = Path(tmp_name)
        csv_path = write_csv(tmp / "sweep.csv", strategies, days, seed)
        gpu = choose(load_config(overrides=["COMPUTE.backend=cupy"], environ={}), strategies, days, 100)
        modules = ["numpy", "cupy"] if gpu.on_gpu else ["numpy"]
        if not gpu.on_gpu:
            rows.append(Row(f"sweep on CuPy: not measured ({gpu.fallback})", 0.0))
        numpy_steps: dict[str, float] = {}
        for module in modules:
            config = load_config(
                overrides=[f"COMPUTE.backend={module}", f"DATABASE.data_dir={tmp / module}"], environ={}
            )
            started = time.perf_counter()
            outcome = run_job(csv_path, config, out_dir=tmp / "out")
            wall = time.perf_counter() - started
            steps = dict(outcome.report.timings_s)
            label = f"{module} ({outcome.report.compute.get('device') or 'host'})"
            if outcome.report.fallbacks:
                raise RuntimeError(f"bench: the {module} sweep fell back: {outcome.report.fallbacks}")
            evaluations = sum(r.evaluations for r in outcome.report.results)
            for step, seconds in steps.items():
                rows.append(
                    Row(
                        f"sweep 35..100 {label}: {step}",
                        seconds,
                        None,
                        "",
                        "NumPy" if module != "numpy" else "",
                        numpy_steps.get(step),
                    )
                )
            rows.append(
                Row(
                    f"sweep 35..100 {label}: whole job",
                    wall,
                    evaluations / steps["search"],
                    "evaluations/s (search)",
                    "NumPy" if module != "numpy" else "",
                    numpy_steps.get("whole job"),
                )
            )
            rows.append(Row(f"sweep {module}: outputs, process start", wall - sum(steps.values())))
            for name, seconds in _algorithm_seconds(outcome.report.results).items():
                rows.append(Row(f"sweep {module}: {name}, all sizes", seconds))
            if module == "numpy":
                numpy_steps = {**steps, "whole job": wall}
    return rows
