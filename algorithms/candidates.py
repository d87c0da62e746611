"""Portfolios built from what the data says, as candidates for out-of-sample validation.

A search over tens of thousands of strategies and a few months of days fits noise: every
candidate it returns is some variation of one overfit portfolio. These families use far
fewer degrees of freedom (a ranking, a ranking of offsetting pairs, a greedy path) and so
overfit far less; validation then compares them with the searches' results on days none of
them saw. All work on the training window only, in NumPy, and are deterministic.

Every family ranks by the Sharpe ratio of the summed series: unlike ``ratio`` it has no
branch that rewards a drawdown of zero, it is additive-friendly (a hedge shows up as a
lower variance), and scale-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from algorithms.correlation import HedgePair

TINY_VARIANCE = 1e-18


@dataclass(frozen=True)
class Built:
    """One portfolio of a family: sorted strategy indices and the family's name."""

    source: str
    members: tuple[int, ...]


def column_sharpe(pnl: np.ndarray) -> np.ndarray:
    """Each column's mean / std (ddof 1); 0 where the std vanishes. ``pnl`` (T, S) → (S,)."""
    std = pnl.std(axis=0, ddof=1)
    return np.where(std > 1e-12, pnl.mean(axis=0) / np.where(std > 1e-12, std, 1.0), 0.0)


def _prefixes(source: str, order: Sequence[int], sizes: range) -> list[Built]:
    """The first n of ``order`` for every size n it is long enough for."""
    return [Built(source, tuple(sorted(order[:n]))) for n in sizes if n <= len(order)]


def standalone(pnl: np.ndarray, sizes: range) -> list[Built]:
    """The n strategies with the best own Sharpe ratio, for each size n."""
    order = np.argsort(-column_sharpe(pnl), kind="stable").tolist()
    return _prefixes("standalone Sharpe", order, sizes)


def hedged(pnl: np.ndarray, hedges: Sequence[HedgePair], sizes: range) -> list[Built]:
    """Offsetting pairs by their pair Sharpe (each strategy in one pair at most), then the best singles."""
    if not hedges:
        return []
    used: set[int] = set()
    order: list[int] = []
    for pair in hedges:
        if pair.first not in used and pair.second not in used:
            used.update((pair.first, pair.second))
            order += [pair.first, pair.second]
    order += [j for j in np.argsort(-column_sharpe(pnl), kind="stable").tolist() if j not in used]
    return _prefixes("hedged pairs", order, sizes)


def greedy(
    pnl: np.ndarray, hedges: Sequence[HedgePair], sizes: range, start: Sequence[int], source: str
) -> list[Built]:
    """Forward selection: from ``start``, add the strategy or hedge pair that most raises the
    Sharpe ratio of the summed series, until ``sizes.stop − 1`` members; every size passed is kept.

    Each step scores every candidate at once from running sums: with ``c`` the current sum
    series and ``r`` a candidate's, ``Σ(c + r)² = Σc² + 2·c·r + Σr²``, so one matrix-vector
    product per step gives all the variances (O(S·T) a step).
    """
    days, strategies = pnl.shape
    pairs = np.array([(h.first, h.second) for h in hedges], dtype=np.int64).reshape(-1, 2)
    series = np.hstack([pnl, pnl[:, pairs[:, 0]] + pnl[:, pairs[:, 1]]])  # singles, then pairs
    width = np.concatenate([np.ones(strategies, dtype=np.int64), np.full(len(pairs), 2)])
    totals, squares = series.sum(axis=0), (series * series).sum(axis=0)
    members = list(dict.fromkeys(int(j) for j in start))
    inside = np.zeros(strategies, dtype=bool)
    inside[members] = True
    current = pnl[:, members].sum(axis=1)
    out = [Built(source, tuple(sorted(members)))] if len(members) in sizes else []
    largest = sizes.stop - 1
    while len(members) < largest:
        s1 = current.sum() + totals
        s2 = current @ current + 2.0 * (current @ series) + squares
        variance = (s2 - s1 * s1 / days) / (days - 1)
        score = np.where(variance > TINY_VARIANCE, s1 / days / np.sqrt(np.maximum(variance, TINY_VARIANCE)), -np.inf)
        blocked = np.concatenate([inside, inside[pairs[:, 0]] | inside[pairs[:, 1]]])
        score[blocked | (len(members) + width > largest)] = -np.inf
        best = int(np.argmax(score))
        if not np.isfinite(score[best]):
            break
        added = [best] if best < strategies else pairs[best - strategies].tolist()
        members += added
        inside[added] = True
        current = current + pnl[:, added].sum(axis=1)
        if len(members) in sizes:
            out.append(Built(source, tuple(sorted(members))))
    return out


def families(pnl: np.ndarray, hedges: Sequence[HedgePair], sizes: range) -> list[Built]:
    """Every data-built candidate for ``sizes``: standalone ranking, hedged pairs, and two greedy
    paths (from the best hedge pair and from the best single strategy).

    Parameters
    ----------
    pnl : float64, shape (T, S). The search window, after ULTA.
    hedges : the best offsetting pairs of that window (``correlation.scan_pairs``), best first.
    """
    if pnl.shape[0] < 2 or pnl.shape[1] < sizes.start:
        return []
    out = standalone(pnl, sizes) + hedged(pnl, hedges, sizes)
    best_single = int(np.argmax(column_sharpe(pnl)))
    out += greedy(pnl, hedges, sizes, [best_single], "greedy Sharpe from the best strategy")
    if hedges:
        out += greedy(pnl, hedges, sizes, [hedges[0].first, hedges[0].second], "greedy Sharpe from the best hedge")
    return out
