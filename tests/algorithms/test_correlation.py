"""The correlation identity and the blockwise top pairs (brief §3.2)."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms.correlation import average_pairwise, top_pairs, unit_columns
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
