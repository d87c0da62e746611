"""Generated worlds whose future is known: more days are made than the job is given.

- :func:`hedged_world`: noisy strategies with a slight edge and a common day effect, plus
  pairs that only pay in combination: each leg swings with a shared factor of its pair
  (in opposite directions), so alone it is mostly noise while the pair's sum is a steady gain.
- :func:`noise_world`: strategies with no edge at all.

A job sees ``days``; the ``future`` days after them judge what it chose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

SIGMA = 1000.0  # a day's P&L swing of one strategy
FIRST_DAY = date(2023, 8, 3)


@dataclass(frozen=True)
class World:
    pnl: np.ndarray  # (days + future, S)
    days: int  # what the job is given
    structure: np.ndarray  # indices of the planted strategies (the hedged legs), empty for noise

    @property
    def names(self) -> list[str]:
        return [f"S{j:05d}" for j in range(self.pnl.shape[1])]

    def write(self, path: Path) -> Path:
        """The first ``days`` rows as a ``Date, <strategies>`` CSV."""
        header = ",".join(["Date", *self.names])
        rows = [
            ",".join([(FIRST_DAY + timedelta(days=7 * t)).isoformat(), *map(repr, self.pnl[t].tolist())])
            for t in range(self.days)
        ]
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        return path

    def future(self, strategies: tuple[str, ...] | list[str]) -> np.ndarray:
        """The equal-weight daily series of a job's chosen strategies on the unseen future,
        oriented as the job oriented them (``<name>_inv`` is the inverted strategy)."""
        columns = [int(name.removesuffix("_inv")[1:]) for name in strategies]
        signs = np.array([-1.0 if name.endswith("_inv") else 1.0 for name in strategies])
        return (self.pnl[self.days :, columns] * signs).mean(axis=1)


def sharpe(series: np.ndarray) -> float:
    """Annualised (252) Sharpe ratio of a daily series."""
    return float(series.mean() / series.std(ddof=1) * np.sqrt(252))


def hedged_world(
    noise: int = 600, pairs: int = 12, days: int = 82, future: int = 82, seed: int = 0, edge: float = 0.02
) -> World:
    """``noise`` strategies (edge ``edge``·σ a day, common day effect) and ``pairs`` hedged pairs.

    A leg is ``0.25σ + ±1.0σ·z + 0.1σ·ε``: alone a Sharpe of about 0.25 a day; the pair's sum
    ``0.5σ + 0.14σ·ε`` a Sharpe of about 3.5 a day, on every day, seen or not.
    """
    rng = np.random.default_rng(seed)
    total = days + future
    day_effect = rng.normal(0.0, 650.0, (total, 1))
    beta = rng.normal(1.0, 0.35, noise)
    crowd = SIGMA * (rng.standard_normal((total, noise)) + edge) + beta * day_effect
    swing = rng.standard_normal((total, pairs))
    legs = [SIGMA * (0.25 + sign * swing + 0.1 * rng.standard_normal((total, pairs))) for sign in (1.0, -1.0)]
    pnl = np.hstack([crowd, *legs])
    order = rng.permutation(pnl.shape[1])
    return World(pnl[:, order], days, np.flatnonzero(order >= noise))


def noise_world(strategies: int = 600, days: int = 82, future: int = 82, seed: int = 0) -> World:
    """No strategy has an edge: any skill a job reports is an artefact of its search."""
    rng = np.random.default_rng(seed)
    total = days + future
    day_effect = rng.normal(0.0, 650.0, (total, 1))
    pnl = SIGMA * rng.standard_normal((total, strategies)) + rng.normal(1.0, 0.35, strategies) * day_effect
    return World(pnl, days, np.empty(0, dtype=np.int64))


def with_test_window_payer(world: World, test_days: int, seed: int = 1) -> tuple[World, int]:
    """The world with one strategy replaced by one that is noise until the last ``test_days`` given
    days and then pays hugely (in the test window and the future): a search that saw the test
    window would take it."""
    rng = np.random.default_rng(seed)
    pnl = world.pnl.copy()
    column = int(rng.integers(pnl.shape[1]))
    start = world.days - test_days
    pnl[:start, column] = SIGMA * rng.standard_normal(start)
    pnl[start:, column] = 20 * SIGMA + SIGMA * rng.standard_normal(pnl.shape[0] - start)
    return World(pnl, world.days, world.structure), column
