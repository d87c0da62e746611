"""Portfolios built from the data (algorithms/candidates.py), against brute force and a planted world."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms.candidates import column_sharpe, families, greedy, hedged, standalone
from algorithms.correlation import HedgePair, hedge_stats, scan_pairs, unit_columns
from algorithms.problem import Archive


def _sharpe(series: np.ndarray) -> float:
    return float(series.mean() / series.std(ddof=1))


def _planted(
    seed: int = 0, strategies: int = 80, pairs: int = 4, days: int = 40
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    pnl = rng.normal(0.0, 100.0, (days, strategies))
    planted = []
    for k in range(pairs):
        swing = rng.normal(0.0, 300.0, days)
        a, b = 2 * k, 2 * k + 1
        pnl[:, a] = 20.0 + swing + rng.normal(0.0, 10.0, days)
        pnl[:, b] = 20.0 - swing + rng.normal(0.0, 10.0, days)
        planted.append((a, b))
    return pnl, planted


def _hedges(pnl: np.ndarray, k: int = 20) -> list[HedgePair]:
    units, _ = unit_columns(np, pnl)
    return scan_pairs(units, 0, hedges=k, stats=hedge_stats(np, pnl))[1]


def test_standalone_takes_the_best_own_sharpe_ratios() -> None:
    pnl = np.random.default_rng(1).normal(1.0, 10.0, (30, 25))
    built = standalone(pnl, range(3, 6))
    order = np.argsort(-column_sharpe(pnl), kind="stable")
    assert [b.members for b in built] == [tuple(sorted(order[:n].tolist())) for n in (3, 4, 5)]
    assert all(b.source == "standalone Sharpe" for b in built)


def test_hedged_takes_offsetting_pairs_first_each_strategy_once() -> None:
    pnl, planted = _planted()
    hedges = _hedges(pnl)
    assert {(h.first, h.second) for h in hedges[:4]} == set(planted)
    built = hedged(pnl, hedges, range(8, 9))
    assert set(built[0].members) == {j for pair in planted for j in pair}
    overlapping = [HedgePair(0, 1, 3.0, -0.9), HedgePair(1, 2, 2.0, -0.9), HedgePair(3, 4, 1.0, -0.9)]
    assert hedged(pnl, overlapping, range(4, 5))[0].members == (0, 1, 3, 4)  # (1, 2) skipped: 1 is taken


def test_each_greedy_step_is_the_best_addition_by_brute_force() -> None:
    pnl, _ = _planted(seed=2, strategies=30, pairs=2, days=25)
    hedges = _hedges(pnl, 6)
    path = greedy(pnl, hedges, range(1, 9), [5], "g")
    members = [5]
    for built in path[1:]:
        options = [[j] for j in range(pnl.shape[1]) if j not in members]
        options += [[h.first, h.second] for h in hedges if h.first not in members and h.second not in members]
        scores = [_sharpe(pnl[:, members + add].sum(axis=1)) for add in options if len(members) + len(add) <= 8]
        best = max(scores)
        assert _sharpe(pnl[:, list(built.members)].sum(axis=1)) == pytest.approx(best, rel=1e-9)
        members = list(built.members)
    assert len(path[-1].members) in (7, 8)


def test_families_find_the_planted_hedges_and_stay_in_the_sizes() -> None:
    pnl, planted = _planted(seed=3)
    built = families(pnl, _hedges(pnl), range(8, 11))
    legs = {j for pair in planted for j in pair}
    assert {b.source for b in built} == {
        "standalone Sharpe",
        "hedged pairs",
        "greedy Sharpe from the best strategy",
        "greedy Sharpe from the best hedge",
    }
    assert all(8 <= len(b.members) <= 10 and len(set(b.members)) == len(b.members) for b in built)
    for source in ("hedged pairs", "greedy Sharpe from the best hedge"):
        assert all(legs <= set(b.members) for b in built if b.source == source)
    assert not any(legs <= set(b.members) for b in built if b.source == "standalone Sharpe")  # legs alone look poor
    assert families(pnl, [], range(8, 11)) and all(b.source != "hedged pairs" for b in families(pnl, [], range(8, 11)))


def test_the_archive_keeps_distinct_good_portfolios() -> None:
    archive = Archive(3, 10)  # portfolios of 10: kept ones differ in at least 1 member
    assert archive.min_distance == 1
    base = np.arange(10)
    archive.offer(5.0, base)
    archive.offer(4.0, base)  # the same set: turned away
    archive.offer(6.0, np.arange(1, 11))
    archive.offer(1.0, np.arange(20, 30))
    archive.offer(0.5, np.arange(30, 40))  # full, and worse than every kept one
    assert archive.portfolios() == (tuple(range(1, 11)), tuple(range(10)), tuple(range(20, 30)))
    wide = Archive(3, 40)  # ⌈40/10⌉ = 4 swaps apart
    wide.offer(2.0, np.arange(40))
    wide.offer(3.0, np.r_[np.arange(37), 50, 51, 52])  # 3 swaps from the first and fitter: replaces it
    wide.offer(1.0, np.r_[np.arange(36), 60, 61, 62, 63])  # 4 swaps from the first kept: a second one
    assert [len(set(p) & set(range(37))) for p in wide.portfolios()] == [37, 36]
    assert Archive(1, 10).portfolios() == () and Archive(0, 10).size == 0
