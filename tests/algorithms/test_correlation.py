"""The correlation identity and the blockwise top pairs (brief §3.2)."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms.correlation import (
    HEDGE_MAX_CORRELATION,
    average_pairwise,
    hedge_stats,
    scan_pairs,
    top_pairs,
    unit_columns,
)
from algorithms.reference import reference_avg_correlation


def test_unit_columns_give_pearson_correlation(small_pnl: np.ndarray) -> None:
    units, nonconstant = unit_columns(np, small_pnl)
    assert nonconstant.all()
    np.testing.assert_allclose(units.T @ units, np.corrcoef(small_pnl.T), atol=1e-12)


def test_constant_columns_correlate_zero(small_pnl: np.ndarray) -> None:
    pnl = small_pnl.copy()
    pnl[:, 3] = 42.0
    pnl[:, 4] = 0.0
    units, nonconstant = unit_columns(np, pnl)
    assert not nonconstant[3] and not nonconstant[4]
    assert not units[:, 3].any() and not units[:, 4].any()
    members = np.array([1, 3, 4, 8, 9])
    assert average_pairwise(units, members) == pytest.approx(reference_avg_correlation(pnl, members), abs=1e-12)


def test_universe_average_equals_mean_of_off_diagonal(small_pnl: np.ndarray) -> None:
    units, _ = unit_columns(np, small_pnl)
    corr = np.corrcoef(small_pnl.T)
    n = corr.shape[0]
    expected = (corr.sum() - n) / (n * (n - 1))
    assert average_pairwise(units) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_top_pairs_match_brute_force(small_pnl: np.ndarray, block: int) -> None:
    units, _ = unit_columns(np, small_pnl)
    corr = units.T @ units
    i, j = np.triu_indices(corr.shape[0], 1)
    order = np.lexsort((j, i, -corr[i, j]))[:15]
    got = top_pairs(units, 15, block=block)
    assert [(p.first, p.second) for p in got] == [(int(i[o]), int(j[o])) for o in order]
    np.testing.assert_allclose([p.correlation for p in got], corr[i[order], j[order]], atol=1e-12)


def test_top_pairs_small_inputs() -> None:
    assert top_pairs(np.zeros((5, 1)), 3) == []
    units, _ = unit_columns(np, np.random.default_rng(1).normal(size=(6, 3)))
    assert len(top_pairs(units, 10)) == 3  # only 3 pairs exist


def brute_force_hedges(pnl: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """Every pair's summed series, its Sharpe ratio by definition, the hedge rule, sorted."""
    corr = np.corrcoef(pnl.T)
    own = pnl.mean(axis=0) / pnl.std(axis=0, ddof=1)
    found = []
    for i in range(pnl.shape[1]):
        for j in range(i + 1, pnl.shape[1]):
            both = pnl[:, i] + pnl[:, j]
            sharpe = both.mean() / both.std(ddof=1)
            if corr[i, j] < HEDGE_MAX_CORRELATION and sharpe > max(own[i], own[j]):
                found.append((i, j, sharpe))
    return sorted(found, key=lambda f: (-f[2], f[0], f[1]))[:k]


@pytest.mark.parametrize("block", [1, 16, 1000])
def test_hedge_pairs_match_brute_force(block: int) -> None:
    rng = np.random.default_rng(11)
    pnl = rng.normal(5.0, 100.0, (30, 60))
    hedge = rng.normal(0.0, 300.0, 30)
    pnl[:, 4] += hedge + 40.0  # 4 and 50 offset each other: their sum keeps both edges, not the swings
    pnl[:, 50] += 40.0 - hedge
    units, _ = unit_columns(np, pnl)
    correlated, hedges = scan_pairs(units, 5, hedges=12, stats=hedge_stats(np, pnl), block=block)
    expected = brute_force_hedges(pnl, 12)
    assert [(h.first, h.second) for h in hedges] == [(i, j) for i, j, _ in expected]
    np.testing.assert_allclose([h.sharpe for h in hedges], [s for _, _, s in expected], rtol=1e-9)
    assert all(h.correlation < HEDGE_MAX_CORRELATION for h in hedges)
    assert [(p.first, p.second) for p in correlated] == [(p.first, p.second) for p in top_pairs(units, 5)]
    assert (hedges[0].first, hedges[0].second) == (4, 50)


def test_hedge_scan_needs_stats() -> None:
    with pytest.raises(ValueError, match="HedgeStats"):
        scan_pairs(np.zeros((4, 3)), 1, hedges=2)


def test_the_float32_screen_misses_no_pair_at_float64_resolution() -> None:
    """Pairs whose correlations differ below float32's resolution (~1e-10 apart) are ranked, cut and
    kept exactly as a float64 brute force does: the float32 products only choose what to compute again."""
    rng = np.random.default_rng(5)
    days, base = 40, rng.normal(0.0, 100.0, 40)
    pnl = rng.normal(0.0, 100.0, (days, 300))
    # 120 near-copies of one series, each nudged by its own noise at 1e-5 of its scale: 7,140 pairs
    # with correlations 1 − O(1e-10), which float32 (resolution 6e-8) cannot tell apart.
    pnl[:, :120] = base[:, None] + rng.normal(0.0, 1e-3, (days, 120))
    # 20 + 20 near-inverses of another series: 400 hedge pairs with correlations −1 + O(1e-10).
    offset = rng.normal(0.0, 100.0, days)
    pnl[:, 120:140] = 7.0 + offset[:, None] + rng.normal(0.0, 1e-3, (days, 20))
    pnl[:, 140:160] = 9.0 - offset[:, None] + rng.normal(0.0, 1e-3, (days, 20))
    units, _ = unit_columns(np, pnl)
    corr = units.T @ units
    i, j = np.triu_indices(corr.shape[0], 1)
    for k in (7, 150):
        order = np.lexsort((j, i, -corr[i, j]))[:k]
        got = top_pairs(units, k, block=64)
        assert [(p.first, p.second) for p in got] == [(int(i[o]), int(j[o])) for o in order]
    _, hedges = scan_pairs(units, 0, hedges=25, stats=hedge_stats(np, pnl), block=64)
    expected = brute_force_hedges(pnl, 25)
    assert [(h.first, h.second) for h in hedges] == [(i, j) for i, j, _ in expected]
    # Sums of near-inverses have a variance ~1e-10 of their members': computed from the members'
    # deviations and correlation it keeps ~5 significant digits (the brute force sums the series).
    np.testing.assert_allclose([h.sharpe for h in hedges], [s for _, _, s in expected], rtol=1e-4)
