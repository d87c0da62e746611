"""Plain, obviously-correct fitness of one portfolio, written straight from brief §3.3.

Slow on purpose: a Python loop per portfolio, the correlation matrix of the members built
explicitly. Tests use it as the oracle for the batched kernels; ``heavyopt bench`` uses
it as the naive baseline.
"""

from __future__ import annotations

import math

import numpy as np

from algorithms.fitness import Objective


def reference_metric(s: np.ndarray, metric: str, periods_per_year: int = 252) -> float:
    """Metric of one daily series ``s`` (shape (T,))."""
    days = len(s)
    roi = float(sum(s))
    equity, peak, mdd = 0.0, -math.inf, 0.0
    for value in s:
        equity += value
        peak = max(peak, equity)
        mdd = max(mdd, peak - equity)
    wins = [v for v in s if v > 0]
    losses = [v for v in s if v < 0]
    mean = roi / days
    std = math.sqrt(sum((v - mean) ** 2 for v in s) / max(days - 1, 1))
    sharpe = mean / std * math.sqrt(periods_per_year) if std > 1e-12 else 0.0

    def fallback(num: float, den: float) -> float:
        if den > 1e-6:
            return num / den
        return 100 * num if num > 0 else (10 * num if num < 0 else 0.0)

    if metric == "ratio":
        return fallback(roi, mdd)
    if metric == "roi":
        return roi
    if metric == "less max dd":
        return -mdd
    if metric == "win percentage":
        return len(wins) / days
    if metric == "profit factor":
        gain, loss = sum(wins), -sum(losses)
        return gain / loss if loss > 1e-6 else (1.0 if gain > 0 else 0.0)
    if metric == "expectancy":
        w = len(wins) / days
        avg_win = sum(wins) / len(wins) if wins else 0.0
        avg_loss = -sum(losses) / len(losses) if losses else 0.0
        return w * avg_win - (1 - w) * avg_loss
    if metric == "sharpe":
        return sharpe
    if metric == "sortino":
        downside = math.sqrt(sum(min(v, 0.0) ** 2 for v in s) / days)
        return mean / downside * math.sqrt(periods_per_year) if downside > 1e-12 else sharpe
    if metric == "calmar":
        return fallback(mean * periods_per_year, mdd)
    raise ValueError(metric)


def reference_avg_correlation(pnl: np.ndarray, members: np.ndarray) -> float:
    """Mean of the off-diagonal Pearson correlations of the members; constant columns count as 0."""
    cols = pnl[:, members]
    n = cols.shape[1]
    total = 0.0
    for a in range(n):
        for b in range(a + 1, n):
            x, y = cols[:, a], cols[:, b]
            if np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            total += float(np.corrcoef(x, y)[0, 1])
    return total / (n * (n - 1) / 2)


def reference_fitness(pnl: np.ndarray, members: np.ndarray, objective: Objective) -> float:
    """Fitness of one portfolio of ``pnl`` (shape (T, S)) columns ``members``."""
    s = pnl[:, members].mean(axis=1)
    value = reference_metric(s, objective.metric, objective.periods_per_year)
    if objective.penalty_weight == 0:
        return value
    weight = objective.penalty_weight
    if objective.drawdown_threshold > 0 and -reference_metric(s, "less max dd") < objective.drawdown_threshold:
        weight /= 2
    return value - weight * reference_avg_correlation(pnl, members)
