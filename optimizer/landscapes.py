"""Planted landscapes where a blind search fails, and the portfolio each one plants.

Used by the tests (every algorithm must beat random search on each; the best of the eight must
reach 98 % of the planted portfolio's fitness) and by ``heavyopt bench --landscapes``, which
prints each algorithm's share of the planted fitness on each of ``SHAPES``, guided and blind.

- **plateau**: metric ``ratio``, no ULTA, penalty 10. A universe of losing strategies (−5 ± 0.5
  a day) with ``size`` planted winners (+5 ± 0.5 a day); every strategy loses 10 on one day
  mid-window (so every portfolio has a drawdown and ``ratio`` stays on one scale). A portfolio
  with fewer winners than losers loses every day: ratio ≈ −1 whatever it holds, so the
  landscape is flat where a blind search starts, until about half the members are winners.
  The planted set is the best portfolio; one loser in it costs about 8 % of its fitness.
- **families**: metric ``sharpe``, penalty 10. ``families`` good strategies (+2 ± 1 a day,
  independent) each copied ``copies`` times with small noise (± 0.2), in a universe of
  zero-mean noise (± 4). The best portfolio of ``size = families`` holds one copy of each
  family: two copies of one family instead cost ~6 % of the Sharpe ratio (and add to the
  penalty). The copies all rank near the top on their own, so a search that trusts the
  ranking alone fills the portfolio with copies of a few families; it must spread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from algorithms import REGISTRY, RunResult, run_algorithm
from algorithms.correlation import unit_columns
from algorithms.fitness import Objective
from algorithms.problem import Problem


@dataclass(frozen=True)
class Landscape:
    name: str
    problem: Problem  # blind; ``problem.guided()`` for the guided searches
    planted: np.ndarray  # the planted portfolio, sorted indices
    planted_fitness: float


def _problem(pnl: np.ndarray, size: int, objective: Objective) -> Problem:
    units, nonconstant = unit_columns(np, pnl)
    return Problem.from_pnl(pnl, units, nonconstant, size, objective)


def plateau(strategies: int = 3000, days: int = 60, size: int = 20, seed: int = 0) -> Landscape:
    """See the module docstring."""
    rng = np.random.default_rng(seed)
    pnl = rng.normal(-5.0, 0.5, (days, strategies))
    planted = np.sort(rng.choice(strategies, size, replace=False))
    pnl[:, planted] = rng.normal(5.0, 0.5, (days, size))
    pnl[days // 2] = -10.0
    problem = _problem(pnl, size, Objective(metric="ratio", penalty_weight=10.0))
    return Landscape("plateau", problem, planted, float(problem.evaluate(planted[None, :])[0]))


def families(strategies: int = 3000, days: int = 60, families: int = 12, copies: int = 40, seed: int = 0) -> Landscape:
    """See the module docstring. The planted portfolio is the best one-copy-per-family choice
    found by coordinate ascent over the families (each family's best copy given the others,
    until none changes)."""
    rng = np.random.default_rng(seed)
    pnl = rng.normal(0.0, 4.0, (days, strategies))
    columns = rng.choice(strategies, families * copies, replace=False).reshape(families, copies)
    for family in range(families):
        base = rng.normal(2.0, 1.0, days)
        pnl[:, columns[family]] = base[:, None] + rng.normal(0.0, 0.2, (days, copies))
    problem = _problem(pnl, families, Objective(metric="sharpe", penalty_weight=10.0))
    chosen = columns[:, 0].copy()
    changed = True
    while changed:
        changed = False
        for family in range(families):
            trials = np.repeat(chosen[None, :], copies, axis=0)
            trials[:, family] = columns[family]
            best = int(np.argmax(problem.evaluate(np.sort(trials, axis=1))))
            if columns[family, best] != chosen[family]:
                chosen[family] = columns[family, best]
                changed = True
    planted = np.sort(chosen)
    return Landscape("families", problem, planted, float(problem.evaluate(planted[None, :])[0]))


LANDSCAPES: dict[str, Callable[..., Landscape]] = {"plateau": plateau, "families": families}

# What ``heavyopt bench --landscapes`` runs: the tests' shapes, and each at another scale.
SHAPES: tuple[tuple[str, dict[str, int]], ...] = (
    ("plateau", {}),
    ("plateau", {"strategies": 25_544, "days": 82, "size": 35}),
    ("families", {}),
    ("families", {"families": 20, "copies": 20}),
)


@dataclass(frozen=True)
class LandscapeRow:
    """Each algorithm's best fitness as a share of the planted portfolio's, guided and blind."""

    landscape: str
    shape: dict[str, int]
    seed: int
    guided: dict[str, float]  # algorithm name -> share
    blind: dict[str, float]


def shares(seeds: int, budget: int) -> list[LandscapeRow]:
    """Every registered algorithm on every shape in ``SHAPES``, landscape seeds 0..seeds−1, the
    algorithm seeded with the landscape's seed, guided (the default) and blind."""
    rows = []
    for name, shape in SHAPES:
        for seed in range(seeds):
            land = LANDSCAPES[name](seed=seed, **shape)
            found: dict[bool, dict[str, float]] = {}
            for guided in (True, False):
                problem = land.problem.guided(guided)
                found[guided] = {}
                for cls in REGISTRY.values():
                    result = run_algorithm(cls(), problem, budget, np.random.default_rng(seed))
                    if not isinstance(result, RunResult):
                        raise RuntimeError(f"bench: {cls.name} failed on {name}: {result.error}")
                    found[guided][cls.name] = result.fitness / land.planted_fitness
            rows.append(LandscapeRow(name, shape, seed, found[True], found[False]))
    return rows
