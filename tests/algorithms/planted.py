"""A problem whose best portfolio is known: ``size`` planted strategies that win every day."""

from __future__ import annotations

import numpy as np

from algorithms.correlation import unit_columns
from algorithms.fitness import Objective
from algorithms.problem import Problem


def planted_problem(
    strategies: int = 400, days: int = 40, size: int = 8, seed: int = 0
) -> tuple[Problem, np.ndarray, np.ndarray]:
    """Noise strategies (mean 0, sd 100) plus ``size`` planted ones (+60 ± 10 a day, independent).

    Any portfolio of planted strategies only never draws down, so its ``ratio`` is 100·roi,
    an order of magnitude above any portfolio that holds a noise strategy. Returns the
    problem, the planted indices and the P&L.
    """
    rng = np.random.default_rng(seed)
    pnl = rng.normal(0.0, 100.0, (days, strategies))
    planted = np.sort(rng.choice(strategies, size, replace=False))
    pnl[:, planted] = 60.0 + rng.normal(0.0, 10.0, (days, size))
    units, nonconstant = unit_columns(np, pnl)
    problem = Problem.from_pnl(pnl, units, nonconstant, size, Objective())
    return problem, planted, pnl
