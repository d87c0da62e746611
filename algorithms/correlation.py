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
SCREEN_SLACK = 4.0  # the float32 screen's margin, as a multiple of its error bound


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
    (block, T) slice by the (T, S−start) remainder, in float32, and computes again in float64 only
    the rows and pairs that float32's error bound (with a margin) cannot rule out; the best of
    those are kept. The result is float64's: the same pairs, values within an ulp or two. A hedge pair
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
    # The products run in float32 first (3–4× faster than float64 here), as a screen: a unit
    # column's float32 dot product is within (T + 2)·2⁻²⁴ of the exact one, so with four times that
    # margin no pair that could enter either list is missed; what passes is computed again in float64.
    screen = cols.astype(xp.float32)
    margin = SCREEN_SLACK * (cols.shape[1] + 2) * 2.0**-24
    correlated, hedging = _TopK(max(k, 0)), _TopK(max(hedges, 0))
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        approx = screen[start:stop] @ screen[start:].T  # (rows, n - start); column c is strategy start + c
        rows, width = approx.shape
        # Only pairs j > i: in this block that is the strict upper triangle of its first `rows` columns.
        lower = xp.tril_indices(rows)
        if k > 0:
            approx[lower[0], lower[1]] = -xp.inf
            # Rows that may hold a pair above the k-th best so far: all of them until k are known.
            rows_in = xp.flatnonzero(approx.max(axis=1) > correlated.threshold - margin)
            if rows_in.size:
                exact = cols[start + rows_in] @ cols[start:].T  # the same float64 products, for those rows
                exact[xp.arange(width)[None, :] <= rows_in[:, None]] = -xp.inf
                flat = exact.ravel()
                found = xp.flatnonzero(flat > correlated.threshold)
                found = found[_best_of(xp, flat[found], k)]  # indices stay on the scan's device
                at = _host(found).astype(np.int64)
                correlated.add(_host(flat[found]), start + _host(rows_in)[at // width], start + at % width)
        if hedges > 0 and stats is not None:
            approx[lower[0], lower[1]] = xp.inf
            flat = approx.ravel()
            near = xp.flatnonzero(flat < HEDGE_MAX_CORRELATION + margin)
            first, second = start + near // width, start + near % width
            # The Sharpe ratio each pair could have at most, its correlation anywhere within the margin:
            # only pairs that could enter are computed again, exactly.
            could = _hedge_sharpe(xp, first, second, flat[near].astype(xp.float64), stats, -margin)
            near = xp.flatnonzero(could > hedging.threshold)
            first, second = first[near], second[near]
            rho = (cols[first] * cols[second]).sum(axis=1)  # exact (float64) correlations of those pairs
            _hedges_of_pairs(xp, first, second, rho, stats, hedges, hedging)
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


def _hedges_of_pairs(xp: Any, first: Any, second: Any, rho: Any, stats: HedgeStats, hedges: int, best: _TopK) -> None:
    """Offer the hedge pairs (see :func:`scan_pairs`) among the pairs (``first``, ``second``) with
    correlations ``rho`` to ``best``."""
    keep = xp.flatnonzero(rho < HEDGE_MAX_CORRELATION)
    if keep.size == 0:
        return
    first, second, rho = first[keep], second[keep], rho[keep]
    sharpe = _hedge_sharpe(xp, first, second, rho, stats)
    keep = xp.flatnonzero(sharpe > best.threshold)
    keep = keep[_best_of(xp, sharpe[keep], hedges)]
    best.add(_host(sharpe[keep]), _host(first[keep]).astype(np.int64), _host(second[keep]).astype(np.int64))


def _hedge_sharpe(xp: Any, first: Any, second: Any, rho: Any, stats: HedgeStats, shift: float = 0.0) -> Any:
    """Each pair's summed Sharpe ratio ``(m_i + m_j) / √(s_i² + s_j² + 2ρ·s_i·s_j)`` where it beats both
    strategies' own, else −inf. With ``shift`` = −δ: the most it can be for any correlation within δ
    of ``rho`` (the variance grows with ρ, so a positive mean is best at ρ − δ and a negative one at ρ + δ)."""
    total = stats.mean[first] + stats.mean[second]
    if shift:
        rho = rho + xp.where(total > 0, shift, -shift)
    s_i, s_j = stats.std[first], stats.std[second]
    variance = s_i * s_i + s_j * s_j + 2.0 * rho * s_i * s_j
    positive = variance > 1e-18
    # No variance: no Sharpe ratio (−inf); but as a bound, a positive mean with a variance that may be
    # tiny could be any Sharpe ratio (+inf).
    degenerate = xp.where(total > 0, xp.inf, -xp.inf) if shift else -xp.inf
    sharpe = xp.where(positive, total / xp.sqrt(xp.where(positive, variance, 1.0)), degenerate)
    return xp.where(sharpe > xp.maximum(stats.sharpe[first], stats.sharpe[second]), sharpe, -xp.inf)


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
