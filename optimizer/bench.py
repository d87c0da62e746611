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
from optimizer.loader import load_csv
from optimizer.pipeline import peak_rss_mb
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

    pnl = stored.pnl
    seconds, (units, nonconstant) = _timed(lambda: unit_columns(np, pnl))
    rows.append(Row("unit columns", seconds))
    seconds, _ = _timed(lambda: average_pairwise(units))
    rows.append(Row("universe avg correlation (identity)", seconds))
    seconds, _ = _timed(lambda: top_pairs(units, 20))
    rows.append(Row("top 20 pairs (blockwise GEMM)", seconds, strategies * (strategies - 1) / 2 / seconds, "pairs/s"))

    objective = Objective()
    rng = np.random.default_rng(seed)
    population = random_subsets(rng, strategies, SIZE, BATCH)
    single = Problem.from_pnl(pnl, units, nonconstant, SIZE, objective, threads=1)
    multi = Problem.from_pnl(pnl, units, nonconstant, SIZE, objective, threads=threads)
    loop_n = 1_000
    loop_s = _best_of(lambda: [_one_candidate(single, population[i]) for i in range(loop_n)])
    per_loop = loop_s / loop_n * BATCH
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
    ref_n = 20
    ref_s, _ = _timed(lambda: [reference_fitness(pnl, population[i], objective) for i in range(ref_n)])
    rows.append(
        Row(
            f"reference fitness, plain Python (×{BATCH:,} extrapolated)",
            ref_s / ref_n * BATCH,
            ref_n / ref_s,
            "portfolios/s",
        )
    )

    members = population[0]
    out_pos, incoming = random_swaps(rng, members, strategies, SWAPS)
    per_call = 1_000  # a neighbourhood per call, as the local-search algorithms use it
    seconds = _best_of(
        lambda: [
            single.evaluate_swaps(members, out_pos[i : i + per_call], incoming[i : i + per_call])
            for i in range(0, SWAPS, per_call)
        ]
    )
    full = np.repeat(members[None, :], SWAPS, axis=0)
    full[np.arange(SWAPS), out_pos] = incoming
    full_s = _best_of(partial(single.evaluate, full))
    rows.append(
        Row(f"swap moves n={SIZE}, 1 thread", seconds, SWAPS / seconds, "moves/s", "full recomputation", full_s)
    )
    rows.append(Row("peak memory", 0.0, peak_rss_mb(), "MB RSS"))
    return rows, single.with_size(QUALITY_SIZE)
