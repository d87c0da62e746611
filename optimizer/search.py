"""The search of one matrix: which algorithms, which sizes, which seeds, the tasks, the winner."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from algorithms import FailedRun, RunResult
from algorithms.correlation import average_pairwise
from algorithms.fitness import Objective, metric_values, portfolio_report
from algorithms.problem import Problem
from errors import JobFailed
from optimizer.cluster import Executor
from optimizer.config import Config
from optimizer.parallel import Task
from outputs.report import AlgorithmResult, Winner

# Algorithms in a fixed order: the index is part of each run's seed (spawn key), so adding
# or disabling one never changes another's random stream.
ALGORITHM_ORDER = (
    "use_genetic_algorithm",
    "use_particle_swarm",
    "use_simulated_annealing",
    "use_differential_evolution",
    "use_ant_colony",
    "use_hill_climbing",
    "use_bayesian_optimization",
    "use_random_search",
)


def spawn_key(size: int, algorithm_flag: str) -> tuple[int, int]:
    """The key that spawns one (size, algorithm)'s generator from the job seed."""
    return (size, ALGORITHM_ORDER.index(algorithm_flag))


def enabled_algorithms(config: Config) -> list[str]:
    """The ``use_…`` flags switched on, in :data:`ALGORITHM_ORDER` (every flag has an algorithm)."""
    return [flag for flag in ALGORITHM_ORDER if getattr(config.algorithms, flag)]


def limit_strategies(pnl: np.ndarray, config: Config) -> np.ndarray:
    """Indices of the strategies to search: all, or the ``GENERAL.strat_limit`` best by the metric alone."""
    n = pnl.shape[1]
    limit = config.general.strat_limit
    if limit == 0 or limit >= n:
        return np.arange(n)
    alone = metric_values(np, pnl.T, config.general.metric, config.optimization.periods_per_year)
    return np.sort(np.argsort(-alone, kind="stable")[:limit])


def objective(config: Config) -> Objective:
    return Objective(
        metric=config.general.metric,
        penalty_weight=config.penalty_weight,
        drawdown_threshold=config.optimization.drawdown_threshold,
        periods_per_year=config.optimization.periods_per_year,
    )


def compute_workers(config: Config) -> int:
    """Processes for the search: ``COMPUTE.workers``, 0 = one per CPU core."""
    return config.compute.workers or (os.cpu_count() or 1)


def compute_threads(config: Config) -> int:
    """Threads inside one batched evaluation: ``COMPUTE.threads``; 0 = the cores left per worker."""
    return config.compute.threads or max((os.cpu_count() or 1) // compute_workers(config), 1)


def portfolio_sizes(sizes: range, n_strategies: int) -> range:
    """``sizes`` capped at the number of strategies available."""
    return range(sizes.start, min(sizes.stop, n_strategies + 1))


def search(
    config: Config,
    base: Problem,
    names: tuple[str, ...],
    sizes: range,
    progress: Callable[[str, float], None],
    prefix: tuple[int, ...] = (),
    workers: int | None = None,
    archive_size: int = 0,
    executor: Executor | None = None,
) -> list[AlgorithmResult]:
    """Every enabled algorithm on every size, on ``COMPUTE.workers`` processes (or ``workers``), or
    on the Ray cluster the job's ``executor`` joined; results in (size, algorithm) order.

    ``prefix`` goes in front of each task's spawn key (a zone's number, a walk-forward fold), so
    no two searches of a job share a random stream. ``progress`` gets the share of tasks done,
    0–1. ``archive_size`` > 1 keeps that many distinct good portfolios per task (validation).
    """
    flags = enabled_algorithms(config)
    tasks = [
        Task(
            size=size,
            algorithm=config.algorithm(flag),
            budget=config.optimization.evaluation_budget,
            job_seed=config.general.seed,
            spawn_key=(*prefix, *spawn_key(size, flag)),
            time_limit_s=config.optimization.algorithm_timeout_s or None,
            archive_size=archive_size,
        )
        for size in sizes
        for flag in flags
    ]
    done = 0

    def report(task: Task, outcome: object) -> None:
        nonlocal done
        done += 1
        progress(f"size {task.size}, {task.algorithm.name}", done / max(len(tasks), 1))

    where = executor or Executor("processes", compute_workers(config))
    try:
        outcomes = where.run(base, tasks, report, workers or compute_workers(config))
    finally:
        if executor is None:  # its own, for this search alone
            where.close()
    return [as_result(outcome, task.spawn_key, names) for task, outcome in zip(tasks, outcomes, strict=True)]


def as_result(outcome: RunResult | FailedRun, key: tuple[int, ...], names: tuple[str, ...]) -> AlgorithmResult:
    if isinstance(outcome, FailedRun):
        return AlgorithmResult(
            size=outcome.size,
            algorithm=outcome.algorithm,
            status="failed",
            fitness=None,
            evaluations=outcome.evaluations,
            seconds=outcome.seconds,
            strategies=(),
            spawn_key=key,
            error=outcome.error,
            on_gpu=outcome.on_gpu,
        )
    return AlgorithmResult(
        size=outcome.size,
        algorithm=outcome.algorithm,
        status="ok",
        fitness=outcome.fitness,
        evaluations=outcome.evaluations,
        seconds=outcome.seconds,
        strategies=tuple(names[i] for i in outcome.portfolio),
        spawn_key=key,
        members=outcome.portfolio,
        trace=outcome.trace,
        timed_out=outcome.timed_out,
        archive=outcome.archive,
    )


def check_any_portfolio(results: list[AlgorithmResult]) -> None:
    """Raise :class:`JobFailed` when no algorithm produced a portfolio."""
    if not any(r.status == "ok" and r.fitness is not None for r in results):
        reasons = "; ".join(f"size {r.size} {r.algorithm}: {r.error}" for r in results[:3])
        raise JobFailed(f"job failed: no algorithm produced a portfolio ({reasons})")


def make_winner(
    source: str,
    fitness: float,
    members: tuple[int, ...],
    pnl: np.ndarray,
    units: np.ndarray,
    names: tuple[str, ...],
    periods_per_year: int,
) -> Winner:
    """A :class:`Winner` with its metrics on ``pnl`` (T, S) and average correlation from ``units``
    (the days the search saw)."""
    chosen = np.array(members)
    metrics = portfolio_report(pnl[:, chosen].mean(axis=1), periods_per_year)
    metrics["avg_correlation"] = average_pairwise(units, chosen)
    return Winner(len(members), source, float(fitness), tuple(names[i] for i in members), metrics, tuple(members))
