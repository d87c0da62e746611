"""Why each strategy is in the winner: its marginal contribution and its best substitute.

For a winner of n members, on the search's own problem (the training window, the job's
objective): the fitness of the n − 1 others (one batch of n portfolios), the contribution
``fitness − fitness_without``, and, for each member, the strategy outside the portfolio whose
swap in scores best (every outsider tried, one member at a time, by the O(T) swap kernel; the
best swap is then evaluated in full). Out of sample: the others' Sharpe ratio on the final
test window.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from algorithms.problem import CHUNK_ROWS, Problem
from algorithms.statistics import sharpe_per_period
from outputs.report import Contribution


def contributions(
    problem: Problem,
    members: tuple[int, ...],
    names: tuple[str, ...],
    pnl: np.ndarray,
    test: range,
    periods_per_year: int,
    threads: int = 1,
) -> tuple[Contribution, ...]:
    """One :class:`Contribution` per member of the winner (``members``: indices into ``names``,
    the searched strategies; ``pnl``: (days, searched), every day; ``test``: the final test days).
    Empty for a portfolio of fewer than 3 (the others would be one strategy, with no correlation).
    The members' substitutes are searched on ``threads`` threads on the host."""
    held = np.asarray(members, dtype=np.int64)
    n = len(held)
    if n < 3:
        return ()
    others = np.array([np.delete(held, i) for i in range(n)])
    without = problem.with_size(n - 1).evaluate(others)
    outside = np.setdiff1d(np.arange(problem.n_strategies), held)
    full = problem.with_size(n)
    fitness = float(full.evaluate(held[None, :])[0])  # the winner's, on this problem (equals its reported one)
    best_swaps = _best_swaps(full, held, outside, threads)
    out = []
    for i in range(n):
        test_sharpe = None
        if len(test) >= 2:
            series = pnl[test.start : test.stop][:, others[i]].mean(axis=1)
            test_sharpe = float(sharpe_per_period(series)) * float(np.sqrt(periods_per_year))
        substitute, substitute_fitness = None, None
        if len(outside):
            best = best_swaps[i]
            swapped = held.copy()
            swapped[i] = best
            substitute, substitute_fitness = names[best], float(full.evaluate(swapped[None, :])[0])
        out.append(
            Contribution(
                name=names[held[i]],
                fitness_without=float(without[i]),
                contribution=float(fitness - without[i]),
                test_sharpe_without=test_sharpe,
                substitute=substitute,
                substitute_fitness=substitute_fitness,
            )
        )
    return tuple(out)


def _best_swaps(problem: Problem, held: np.ndarray, outside: np.ndarray, threads: int) -> list[int]:
    """:func:`_best_swap` for every position of ``held``, the positions split over ``threads``
    threads on the host (NumPy's gathers and ufuncs release the GIL); [] when nothing is outside."""
    if not len(outside):
        return []
    positions = range(len(held))
    if threads > 1 and problem.xp is np:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heavyopt-why") as pool:
            return list(pool.map(lambda i: _best_swap(problem, held, i, outside), positions))
    return [_best_swap(problem, held, i, outside) for i in positions]


def _best_swap(problem: Problem, held: np.ndarray, position: int, outside: np.ndarray) -> int:
    """The outsider whose swap in at ``position`` scores best (first on ties), in chunks of
    ``CHUNK_ROWS`` outsiders: the (K, 2T) sums of one chunk stay small at any width."""
    best, best_fit = int(outside[0]), -np.inf
    for start in range(0, len(outside), CHUNK_ROWS):
        chunk = outside[start : start + CHUNK_ROWS]
        fits = problem.evaluate_swaps(held, np.full(len(chunk), position), chunk)
        k = int(np.argmax(fits))
        if fits[k] > best_fit:
            best, best_fit = int(chunk[k]), float(fits[k])
    return best
