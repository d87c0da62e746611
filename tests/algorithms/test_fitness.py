"""Batched fitness against the plain per-portfolio reference (brief §3.3)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms.correlation import unit_columns
from algorithms.fitness import METRICS, SMALL_BATCH, Objective, max_drawdown, portfolio_report
from algorithms.operators import random_subsets, random_swaps
from algorithms.problem import Problem
from algorithms.reference import reference_avg_correlation, reference_fitness, reference_metric


def make_problem(pnl: np.ndarray, size: int, objective: Objective, threads: int = 1) -> Problem:
    units, nonconstant = unit_columns(np, pnl)
    return Problem.from_pnl(pnl, units, nonconstant, size, objective, threads=threads)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("penalty", [0.0, 10.0])
def test_batch_matches_reference_for_every_metric(small_pnl: np.ndarray, metric: str, penalty: float) -> None:
    objective = Objective(metric=metric, penalty_weight=penalty)
    problem = make_problem(small_pnl, 8, objective)
    population = random_subsets(np.random.default_rng(3), small_pnl.shape[1], 8, 40)
    batch = problem.evaluate(population)
    expected = [reference_fitness(small_pnl, row, objective) for row in population]
    np.testing.assert_allclose(batch, expected, rtol=1e-9, atol=1e-9)


def _edge_pnl() -> np.ndarray:
    """Columns: 0–1 rise every day (no drawdown, no losing day), 2 constant, 3 all zero, 4–9 mixed."""
    rng = np.random.default_rng(11)
    days = 12
    pnl = rng.normal(0, 100, (days, 10))
    pnl[:, 0] = np.linspace(10, 30, days)
    pnl[:, 1] = 5.0 + np.arange(days)
    pnl[:, 2] = 7.0
    pnl[:, 3] = 0.0
    return pnl


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    "members",
    [
        [0, 1],  # zero drawdown, no losing day
        [0, 2],  # with a constant column
        [2, 3],  # constant and all-zero: zero ROI, zero drawdown
        [3, 4, 5],  # includes an all-zero column
        [4, 5, 6, 7],
    ],
)
def test_edge_cases_match_reference(metric: str, members: list[int]) -> None:
    pnl = _edge_pnl()
    objective = Objective(metric=metric, penalty_weight=10.0)
    problem = make_problem(pnl, len(members), objective)
    got = problem.evaluate(np.array([members]))[0]
    assert got == pytest.approx(reference_fitness(pnl, np.array(members), objective), rel=1e-9, abs=1e-9)


def test_ratio_fallbacks_follow_the_historical_rule() -> None:
    rising = np.array([1.0, 2.0, 3.0])
    assert reference_metric(rising, "ratio") == pytest.approx(600.0)  # no drawdown, roi 6 > 0 → 100·roi
    pnl = np.column_stack([rising, rising])
    problem = make_problem(pnl, 2, Objective(penalty_weight=0.0))
    assert problem.evaluate(np.array([[0, 1]]))[0] == pytest.approx(600.0)
    falling = -rising  # drawdown exists: roi/MDD = -6/5
    assert reference_metric(falling, "ratio") == pytest.approx(-6.0 / 5.0)
    flat = np.zeros(3)
    assert reference_metric(flat, "ratio") == 0.0


def test_drawdown_threshold_halves_the_penalty(small_pnl: np.ndarray) -> None:
    members = np.arange(6)
    s = small_pnl[:, members].mean(axis=1)
    mdd = -reference_metric(s, "less max dd")
    corr = reference_avg_correlation(small_pnl, members)
    value = reference_metric(s, "ratio")
    for threshold, weight in ((mdd * 2, 5.0), (mdd / 2, 10.0), (0.0, 10.0)):
        problem = make_problem(small_pnl, 6, Objective(penalty_weight=10.0, drawdown_threshold=threshold))
        assert problem.evaluate(members[None, :])[0] == pytest.approx(value - weight * corr, rel=1e-9)


def test_threads_give_identical_results(small_pnl: np.ndarray) -> None:
    population = random_subsets(np.random.default_rng(5), small_pnl.shape[1], 10, 3000)
    one = make_problem(small_pnl, 10, Objective(), threads=1).evaluate(population)
    two = make_problem(small_pnl, 10, Objective(), threads=2).evaluate(population)
    assert np.array_equal(one, two)


def test_member_order_does_not_change_fitness(small_pnl: np.ndarray) -> None:
    problem = make_problem(small_pnl, 12, Objective())
    row = random_subsets(np.random.default_rng(2), small_pnl.shape[1], 12, 1)[0]
    shuffled = np.random.default_rng(3).permutation(row)
    assert problem.evaluate(row[None, :])[0] == problem.evaluate(shuffled[None, :])[0]


def test_portfolio_report_values() -> None:
    s = np.array([100.0, -50.0, 30.0, -80.0, 60.0, 0.0, 20.0, -10.0, 40.0, 10.0])
    rep = portfolio_report(s, periods_per_year=252)
    assert rep["total_roi"] == pytest.approx(120.0)
    assert rep["max_drawdown"] == pytest.approx(100.0)  # peak 100 after day 1, trough 0 after day 4
    assert rep["win_percentage"] == pytest.approx(60.0)
    assert rep["profit_factor"] == pytest.approx(260.0 / 140.0)
    assert rep["var_95"] == pytest.approx(-np.quantile(s, 0.05))
    assert rep["cvar_95"] >= rep["var_95"]
    assert rep["annualized_return"] == pytest.approx(12.0 * 252)


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, int, str, np.ndarray]:
    days = draw(st.integers(2, 15))
    strategies = draw(st.integers(4, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pnl = np.round(rng.normal(0, 1000, (days, strategies)), 2)
    # Some constant and some zero columns, as real files have.
    pnl[:, rng.random(strategies) < 0.1] = 0.0
    size = draw(st.integers(2, strategies - 1))
    metric = draw(st.sampled_from(METRICS))
    population = random_subsets(rng, strategies, size, draw(st.integers(1, 20)))
    return pnl, size, metric, population


@settings(max_examples=60, deadline=None)
@given(problems())
def test_batch_equals_one_by_one(case: tuple[np.ndarray, int, str, np.ndarray]) -> None:
    pnl, size, metric, population = case
    problem = make_problem(pnl, size, Objective(metric=metric))
    batch = problem.evaluate(population)
    single = np.array([problem.evaluate(row[None, :])[0] for row in population])
    np.testing.assert_allclose(batch, single, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(0, 2**32 - 1))
def test_swap_delta_equals_full_recomputation(case: tuple[np.ndarray, int, str, np.ndarray], seed: int) -> None:
    pnl, size, metric, population = case
    problem = make_problem(pnl, size, Objective(metric=metric))
    members = population[0]
    out_pos, incoming = random_swaps(np.random.default_rng(seed), members, pnl.shape[1], 10)
    delta = problem.evaluate_swaps(members, out_pos, incoming)
    full = np.repeat(members[None, :], len(out_pos), axis=0)
    full[np.arange(len(out_pos)), out_pos] = incoming
    np.testing.assert_allclose(delta, problem.evaluate(full), rtol=1e-9, atol=1e-7)


def test_both_drawdown_paths_agree_bit_for_bit() -> None:
    """Batches over SMALL_BATCH loop over the days, smaller ones accumulate along them: the same sums."""
    rng = np.random.default_rng(5)
    series = np.round(rng.normal(0, 1000, (SMALL_BATCH + 7, 82)), 2)
    looped = max_drawdown(np, series)
    accumulated = np.concatenate([max_drawdown(np, series[i : i + 8]) for i in range(0, len(series), 8)])
    assert np.array_equal(looped, accumulated)
    equity = np.cumsum(series, axis=1)
    assert np.array_equal(looped, (np.maximum.accumulate(equity, axis=1) - equity).max(axis=1))


@settings(max_examples=30, deadline=None)
@given(problems())
def test_direct_kernels_give_the_sparse_classes_sums_bit_for_bit(case: tuple[np.ndarray, int, str, np.ndarray]) -> None:
    """The host path (SciPy's kernels called directly) against the public sparse classes."""
    pnl, size, metric, population = case
    problem = make_problem(pnl, size, Objective(metric=metric))
    count = len(population)
    membership = scipy.sparse.csr_matrix(
        (np.ones(count * size), population.ravel(), np.arange(0, count * size + 1, size)),
        shape=(count, problem.n_strategies),
    ).tocsc()
    assert np.array_equal(problem.sums(population)[0], membership @ problem.rows)
