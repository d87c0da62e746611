"""A problem whose best portfolio is provably known."""

from __future__ import annotations

import numpy as np

from algorithms.correlation import unit_columns
from algorithms.fitness import Objective
from algorithms.problem import Problem

PENALTY = 10.0


def planted_problem(
    strategies: int = 400, days: int = 40, size: int = 8, seed: int = 0
) -> tuple[Problem, np.ndarray, np.ndarray]:
    """Noise strategies (mean 0, sd 100 a day) and ``size`` planted ones (+60 ± 10 a day).

    Objective: ``roi − 10·avgcorr``. The roi of a portfolio is the mean of its members'
    totals, so replacing a planted member by a noise one lowers roi by at least
    (min planted total − max noise total)/size, while avgcorr can change by at most 2;
    :func:`optimality_margin` checks the first exceeds 10·2, which proves the planted set
    is the unique optimum. Returns the problem, the planted indices and the P&L.
    """
    rng = np.random.default_rng(seed)
    pnl = rng.normal(0.0, 100.0, (days, strategies))
    planted = np.sort(rng.choice(strategies, size, replace=False))
    pnl[:, planted] = 60.0 + rng.normal(0.0, 10.0, (days, size))
    units, nonconstant = unit_columns(np, pnl)
    problem = Problem.from_pnl(pnl, units, nonconstant, size, Objective(metric="roi", penalty_weight=PENALTY))
    return problem, planted, pnl


def optimality_margin(pnl: np.ndarray, planted: np.ndarray) -> float:
    """How much any swap out of the planted set must lose, minus the most the penalty can give back."""
    totals = pnl.sum(axis=0)
    noise = np.delete(totals, planted)
    return (totals[planted].min() - noise.max()) / len(planted) - PENALTY * 2
