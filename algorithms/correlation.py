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


def top_pairs(units: np.ndarray, k: int, block: int = PAIR_BLOCK, xp: Any = np) -> list[CorrelatedPair]:
    """The ``k`` most correlated distinct pairs, by blockwise GEMM over the upper triangle.

    Never forms the S×S matrix: each step multiplies a (block, T) slice by the (T, S−start)
    remainder, keeps its top k, and merges. With ``xp = cupy`` the products and the selection
    run on the GPU and only each block's k candidates come back to the host.
    """
    n = units.shape[1]
    if n < 2 or k <= 0:
        return []
    cols = xp.ascontiguousarray(xp.asarray(units).T)
    best_val = np.empty(0)
    best_i = np.empty(0, dtype=np.int64)
    best_j = np.empty(0, dtype=np.int64)
    threshold = -np.inf  # the k-th best so far: a block value at or below it cannot enter
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        corr = cols[start:stop] @ cols[start:].T  # (rows, n - start); column c is strategy start + c
        rows, width = corr.shape
        # Only pairs j > i: in this block that is the strict upper triangle of its first `rows` columns.
        lower = xp.tril_indices(rows)
        corr[lower[0], lower[1]] = -xp.inf
        flat = corr.ravel()
        candidates = xp.flatnonzero(flat > threshold)
        if candidates.size > k:
            candidates = candidates[xp.argpartition(flat[candidates], candidates.size - k)[candidates.size - k :]]
        values = _host(flat[candidates])
        found = _host(candidates).astype(np.int64)
        best_val = np.concatenate([best_val, values])
        best_i = np.concatenate([best_i, start + found // width])
        best_j = np.concatenate([best_j, start + found % width])
        if best_val.size > k:
            keep = np.argpartition(best_val, best_val.size - k)[best_val.size - k :]
            best_val, best_i, best_j = best_val[keep], best_i[keep], best_j[keep]
        if best_val.size == k:
            threshold = float(best_val.min())
    order = np.lexsort((best_j, best_i, -best_val))
    return [CorrelatedPair(int(best_i[o]), int(best_j[o]), float(best_val[o])) for o in order]


def _host(array: Any) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array)
