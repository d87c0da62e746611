"""Realistic synthetic strategy P&L, calibrated to the production statistics of brief §2.

Model, per strategy j and day t::

    R[t, j] = scale_j · (x[t, j] + drift_j) + beta_j · f[t]

- ``x`` is an option-seller's day: a win with probability 0.59 (exponential, mean
  ``WIN_MEAN``) or a loss (exponential, mean ``LOSS_MEAN``), giving a profit factor
  near 0.955 and a slightly negative edge;
- ``f`` is the common day effect (std ``DAY_EFFECT_STD``, the same for every strategy
  that day), which gives the ~0.14 average pairwise correlation and day
  cross-sections whose mean swings by hundreds;
- ``scale`` (log-normal) spreads the strategies' sizes; ``drift`` spreads their edges.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np

from atomicio import atomic_path

WIN_PROBABILITY = 0.59
WIN_MEAN = 1000.0
LOSS_MEAN = 1490.0
DAY_EFFECT_STD = 650.0
SCALE_SIGMA = 0.35
DRIFT_STD = 45.0
BETA_MEAN, BETA_STD = 1.0, 0.35
FIRST_DAY = date(2023, 8, 3)  # a Thursday: weekly expiry days, as in production
DAYS_BETWEEN_ROWS = 7


def generate_pnl(n_strategies: int, n_days: int, seed: int) -> np.ndarray:
    """Synthetic daily P&L.

    Returns
    -------
    float64 array, shape (n_days, n_strategies). Unrounded, like production's sums of fills,
    which is what makes a 25,544 × 82 file about 40 MB.
    """
    rng = np.random.default_rng(seed)
    win = rng.random((n_days, n_strategies)) < WIN_PROBABILITY
    size = rng.exponential(1.0, (n_days, n_strategies))
    x = np.where(win, size * WIN_MEAN, -size * LOSS_MEAN)
    scale = rng.lognormal(-(SCALE_SIGMA**2) / 2, SCALE_SIGMA, n_strategies)
    drift = rng.normal(0.0, DRIFT_STD, n_strategies)
    beta = rng.normal(BETA_MEAN, BETA_STD, n_strategies)
    day_effect = rng.normal(0.0, DAY_EFFECT_STD, (n_days, 1))
    # Centred so the period's common effect does not shift every strategy's total by the same luck.
    day_effect -= day_effect.mean()
    pnl = scale * (x + drift) + beta * day_effect
    return pnl


def strategy_names(n_strategies: int) -> list[str]:
    """Names in the production style: ``SENSEX 1156-1226 SL73%TP42%``."""
    rng = np.random.default_rng(n_strategies)
    names = []
    for j in range(n_strategies):
        start = 915 + int(rng.integers(0, 5)) * 100 + int(rng.integers(0, 60))
        end = min(start + 30 + int(rng.integers(0, 200)), 1529)
        sl, tp = int(rng.integers(10, 100)), int(rng.integers(10, 100))
        index = ("SENSEX", "NIFTY", "BANKNIFTY")[j % 3]
        names.append(f"{index} {start:04d}-{end:04d} SL{sl}%TP{tp}% #{j + 1}")
    return names


def trading_days(n_days: int) -> list[date]:
    return [FIRST_DAY + timedelta(days=DAYS_BETWEEN_ROWS * i) for i in range(n_days)]


def write_csv(path: str | Path, n_strategies: int, n_days: int, seed: int) -> Path:
    """Write a ``Date, Day, <strategies…>`` file like production; returns its path."""
    path = Path(path)
    pnl = generate_pnl(n_strategies, n_days, seed)
    header = ",".join(["Date", "Day", *strategy_names(n_strategies)])
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\r\n")
        for day, row in zip(trading_days(n_days), pnl, strict=True):
            cells = ",".join(map(repr, row.tolist()))
            fh.write(f"{day.isoformat()},{day.strftime('%A')},{cells}\r\n")
    return path
