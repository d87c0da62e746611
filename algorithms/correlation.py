"""Pearson correlation between strategies without the S×S matrix (brief §3.2).

With ``u_i`` the centred column i divided by its norm (0 for a constant column),
``corr(i, j) = u_i · u_j``. So for a set P of n members
``avgcorr(P) = (‖Σ_{i∈P} u_i‖² − c) / (n(n−1))`` with c the non-constant members: O(n·T).
The same identity over all strategies gives the universe average in O(S·T).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PAIR_BLOCK = 256  # strategies per GEMM block: 256 × 25,544 float64 is 52 MB; fastest of 256–2048 here


@dataclass(frozen=True)
class CorrelatedPair:
    first: int
    second: int
    correlation: float


def unit_columns(xp: Any, pnl: Any) -> tuple[Any, Any]:
    """Centred, unit-norm columns.

    Parameters
    ----------
    pnl : float64, shape (T, S).

    Returns
    -------
    units : float64, shape (T, S). Zero for constant columns.
    nonconstant : bool, shape (S,).
    """
    nonconstant = pnl.max(axis=0) != pnl.min(axis=0)
    centred = pnl - pnl.mean(axis=0)
    norms = xp.sqrt((centred * centred).sum(axis=0))
    safe = xp.where(nonconstant, norms, 1.0)
    return xp.where(nonconstant, centred / safe, 0.0), nonconstant


def average_pairwise(units: np.ndarray, members: np.ndarray | None = None) -> float:
    """Average correlation over all pairs of ``members`` (default: all strategies).

    Parameters
    ----------
    units : float64, shape (T, S), from :func:`unit_columns`.
    members : int array, shape (n,), distinct.
    """
    cols = units if members is None else units[:, members]
    n = cols.shape[1]
    if n < 2:
        return 0.0
    total = cols.sum(axis=1)
    nonconstant = int(np.count_nonzero(np.any(cols != 0, axis=0)))
    return float((total @ total - nonconstant) / (n * (n - 1)))


HEDGE_MAX_CORRELATION = -0.5  # a pair offsets (hedges) when its correlation is below this


@dataclass(frozen=True)
class HedgePair:
    """Two strategies whose sum has a higher Sharpe ratio than either alone, and offset each other."""

    first: int
    second: int
    sharpe: float  # of the pair's summed daily P&L, per day
    correlation: float


@dataclass(frozen=True, eq=False)
class HedgeStats:
    """Per-strategy figures the hedge scan needs, each of shape (S,), on the scan's array module.

    ``std`` with ddof 1, ``sharpe`` = mean / std (0 for a constant strategy).
    """

    mean: Any
    std: Any
    sharpe: Any


class _TopK:
    """The ``k`` largest values offered so far, with their (first, second) pairs, on the host."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.values = np.empty(0)
        self.first = np.empty(0, dtype=np.int64)
        self.second = np.empty(0, dtype=np.int64)
        self.threshold = -np.inf  # the k-th best so far: a value at or below it cannot enter

    def add(self, values: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
        self.values = np.concatenate([self.values, values])
        self.first = np.concatenate([self.first, first])
        self.second = np.concatenate([self.second, second])
        if self.values.size > self.k:
            keep = np.argpartition(self.values, self.values.size - self.k)[self.values.size - self.k :]
            self.values, self.first, self.second = self.values[keep], self.first[keep], self.second[keep]
        if self.values.size == self.k:
            self.threshold = float(self.values.min())

    def ordered(self) -> np.ndarray:
        """Indices by value descending, then (first, second) ascending."""
        return np.lexsort((self.second, self.first, -self.values))


def _best_of(xp: Any, values: Any, k: int) -> Any:
    """Positions of the ``k`` largest of ``values`` (all of them if fewer), on ``xp``."""
    if values.size <= k:
        return xp.arange(values.size)
    return xp.argpartition(values, values.size - k)[values.size - k :]


def scan_pairs(
    units: np.ndarray,
    k: int,
    *,
    hedges: int = 0,
    stats: HedgeStats | None = None,
    block: int = PAIR_BLOCK,
    xp: Any = np,
) -> tuple[list[CorrelatedPair], list[HedgePair]]:
    """The ``k`` most correlated distinct pairs and the ``hedges`` best hedge pairs, in one pass.

    Blockwise GEMM over the upper triangle: never forms the S×S matrix; each step multiplies a
    (block, T) slice by the (T, S−start) remainder and keeps its best candidates. A hedge pair
    has correlation below ``HEDGE_MAX_CORRELATION`` and a summed series whose Sharpe ratio,
    ``(m_i + m_j) / √(s_i² + s_j² + 2ρ·s_i·s_j)``, beats both strategies' own; the best by that
    Sharpe are kept (``stats`` is required then). With ``xp = cupy`` the products and the
    selection run on the GPU and only each block's candidates come back to the host.
    """
    n = units.shape[1]
    if n < 2 or (k <= 0 and hedges <= 0):
        return [], []
    if hedges > 0 and stats is None:
        raise ValueError("hedge pairs need the strategies' HedgeStats")
    cols = xp.ascontiguousarray(xp.asarray(units).T)
    if stats is not None:  # on the scan's array module (the GPU's when xp is cupy)
        stats = HedgeStats(xp.asarray(stats.mean), xp.asarray(stats.std), xp.asarray(stats.sharpe))
    correlated, hedging = _TopK(max(k, 0)), _TopK(max(hedges, 0))
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        corr = cols[start:stop] @ cols[start:].T  # (rows, n - start); column c is strategy start + c
        rows, width = corr.shape
        # Only pairs j > i: in this block that is the strict upper triangle of its first `rows` columns.
        lower = xp.tril_indices(rows)
        corr[lower[0], lower[1]] = -xp.inf
        flat = corr.ravel()
        if k > 0:
            found = xp.flatnonzero(flat > correlated.threshold)
            found = found[_best_of(xp, flat[found], k)]  # indices stay on the scan's device
            at = _host(found).astype(np.int64)
            correlated.add(_host(flat[found]), start + at // width, start + at % width)
        if hedges > 0 and stats is not None:
            _hedges_of_block(xp, flat, start, width, stats, hedges, hedging)
    by_corr = correlated.ordered()
    by_sharpe = hedging.ordered()
    first, second = hedging.first[by_sharpe], hedging.second[by_sharpe]
    # Each hedge pair's correlation, in one call (not one device round trip per pair).
    rho = _host((cols[xp.asarray(first)] * cols[xp.asarray(second)]).sum(axis=1)) if len(first) else np.empty(0)
    return (
        [
            CorrelatedPair(int(correlated.first[o]), int(correlated.second[o]), float(correlated.values[o]))
            for o in by_corr
        ],
        [
            HedgePair(int(i), int(j), float(value), float(r))
            for i, j, value, r in zip(first, second, hedging.values[by_sharpe], rho, strict=True)
        ],
    )


def _hedges_of_block(xp: Any, flat: Any, start: int, width: int, stats: HedgeStats, hedges: int, best: _TopK) -> None:
    """Offer the block's hedge pairs (see :func:`scan_pairs`) to ``best``."""
    found = xp.flatnonzero((flat < HEDGE_MAX_CORRELATION) & (flat > -xp.inf))
    if found.size == 0:
        return
    first, second, rho = start + found // width, start + found % width, flat[found]
    s_i, s_j = stats.std[first], stats.std[second]
    variance = s_i * s_i + s_j * s_j + 2.0 * rho * s_i * s_j
    positive = variance > 1e-18
    sharpe = xp.where(
        positive, (stats.mean[first] + stats.mean[second]) / xp.sqrt(xp.where(positive, variance, 1.0)), -xp.inf
    )
    sharpe = xp.where(sharpe > xp.maximum(stats.sharpe[first], stats.sharpe[second]), sharpe, -xp.inf)
    keep = xp.flatnonzero(sharpe > best.threshold)
    keep = keep[_best_of(xp, sharpe[keep], hedges)]
    best.add(_host(sharpe[keep]), _host(first[keep]).astype(np.int64), _host(second[keep]).astype(np.int64))


def hedge_stats(xp: Any, pnl: Any) -> HedgeStats:
    """:class:`HedgeStats` of the columns of ``pnl`` (shape (T, S), T ≥ 2)."""
    mean = pnl.mean(axis=0)
    std = pnl.std(axis=0, ddof=1)
    return HedgeStats(mean, std, xp.where(std > 1e-12, mean / xp.where(std > 1e-12, std, 1.0), 0.0))


def top_pairs(units: np.ndarray, k: int, block: int = PAIR_BLOCK, xp: Any = np) -> list[CorrelatedPair]:
    """The ``k`` most correlated distinct pairs (:func:`scan_pairs` without hedges)."""
    return scan_pairs(units, k, block=block, xp=xp)[0]


def _host(array: Any) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array)
