"""The validation statistics against worked examples and cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algorithms.statistics import (
    auto_block_days,
    bootstrap_intervals,
    cscv_logits,
    deflated_sharpe,
    effective_trials,
    expected_max_sharpe,
    moments,
    probabilistic_sharpe,
    probability_of_overfitting,
    robust_variance,
    sharpe_per_period,
    stationary_bootstrap_indices,
)


def test_deflated_sharpe_reproduces_the_papers_worked_example() -> None:
    """Bailey & López de Prado (2014), numerical example: 100 trials, annualised SR 2.5 with
    variance 0.5 across trials, 5 years of daily data (1,250 observations, 250 a year),
    skewness −3, kurtosis 10: the expected maximum is 0.1132 a day and DSR = 0.9004."""
    sharpe = 2.5 / math.sqrt(250)
    benchmark = expected_max_sharpe(100, 0.5 / 250)
    assert benchmark == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe(sharpe, benchmark, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=5e-5)


def test_probabilistic_sharpe_by_hand() -> None:
    # Normal returns (skew 0, kurtosis 3): z = SR·√(T−1)/√(1 + SR²/2); SR 0.2, T 101 → z = 2/√1.02.
    assert probabilistic_sharpe(0.2, 0.0, 101) == pytest.approx(0.5 * math.erfc(-(2 / math.sqrt(1.02)) / math.sqrt(2)))
    assert probabilistic_sharpe(0.0, 0.0, 50) == pytest.approx(0.5)


def test_expected_maximum_and_effective_trials_edges() -> None:
    assert expected_max_sharpe(1, 1.0) == 0.0  # one trial: nothing was selected
    assert expected_max_sharpe(1000, 0.0) == 0.0
    assert expected_max_sharpe(1000, 1.0) > expected_max_sharpe(10, 1.0) > 0
    assert effective_trials(100, 0.0) == 100 and effective_trials(100, 1.0) == 1.0
    assert effective_trials(100, 0.5) == pytest.approx(50.5)
    assert effective_trials(100, -0.3) == 100  # negative average correlation is treated as none


def test_deflated_sharpe_of_a_series_uses_its_moments() -> None:
    rng = np.random.default_rng(3)
    series = rng.normal(0.1, 1.0, 60)
    result = deflated_sharpe(series, trials=200, trial_variance=1 / 59, average_correlation=0.5)
    skew, kurt = moments(series)
    assert result.sharpe == pytest.approx(series.mean() / series.std(ddof=1))
    assert result.effective_trials == pytest.approx(100.5)
    assert result.benchmark == pytest.approx(expected_max_sharpe(100.5, 1 / 59))
    assert result.probability == pytest.approx(probabilistic_sharpe(result.sharpe, result.benchmark, 60, skew, kurt))
    assert moments(np.full(10, 3.0)) == (0.0, 3.0)
    assert moments(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx((1.1547005, 2.3333333))


def test_sharpe_per_period_and_robust_variance() -> None:
    assert sharpe_per_period(np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])).tolist() == [2.0, 0.0]
    values = np.concatenate([np.random.default_rng(0).normal(0, 1, 1000), np.full(100, 50.0)])
    assert robust_variance(values) == pytest.approx(1.0, rel=0.2)  # the 9 % outliers do not count
    assert np.var(values) > 100


def test_pbo_two_candidates_that_always_reverse() -> None:
    """By hand: A = [1, 2 | 0, −1], B = [0, 1 | 2, 3], score = mean. Whichever half is in sample,
    the chosen candidate is last of two out of sample: ω = 1/3, λ = ln ½, PBO = 1."""
    returns = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 2.0], [-1.0, 3.0]])
    logits = cscv_logits(returns, 2, lambda r: r.mean(axis=0))
    assert logits == pytest.approx([math.log(0.5), math.log(0.5)])
    assert probability_of_overfitting(logits, 2).pbo == 1.0


def test_pbo_three_candidates_four_blocks_by_hand() -> None:
    """X = [5, 4, 0, 1], Y = [0, 1, 5, 4], Z = [2, 2, 2, 2.5], one day a block, score = mean.

    Splits in lexicographic order ({0,1}, {0,2}, {0,3}, {1,2}, {1,3}, {2,3}) choose X, X, X, Y, X, Y
    (ties go to the first) with OOS ranks 1, 2.5, 1.5, 1, 2.5, 1 of 3: ω = rank/4, so four of
    the six logits are negative and PBO = 2/3.
    """
    returns = np.array([[5.0, 0.0, 2.0], [4.0, 1.0, 2.0], [0.0, 5.0, 2.0], [1.0, 4.0, 2.5]])
    logits = cscv_logits(returns, 4, lambda r: r.mean(axis=0))
    odds = [1 / 3, 5 / 3, 0.6, 1 / 3, 5 / 3, 1 / 3]
    assert logits == pytest.approx([math.log(o) for o in odds])
    result = probability_of_overfitting(logits, 4)
    assert result.pbo == pytest.approx(2 / 3) and result.splits == 6


def test_pbo_is_zero_when_one_candidate_dominates_every_block() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0.0, 1.0, (24, 30))
    returns[:, 7] += 10.0
    logits = cscv_logits(returns, 6, lambda r: r.mean(axis=0))
    assert len(logits) == math.comb(6, 3)
    assert probability_of_overfitting(logits, 6).pbo == 0.0
    assert all(lam == pytest.approx(math.log(30 / 1)) for lam in logits)  # rank 30 of 30: ω = 30/31


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    rng = np.random.default_rng(2)
    pbos = [
        probability_of_overfitting(cscv_logits(rng.normal(0, 1, (40, 50)), 8, lambda r: r.mean(axis=0)), 8).pbo
        for _ in range(20)
    ]
    assert 0.35 < float(np.mean(pbos)) < 0.65


def test_cscv_refuses_odd_or_too_many_blocks() -> None:
    with pytest.raises(ValueError, match="even"):
        cscv_logits(np.zeros((10, 3)), 3, lambda r: r.mean(axis=0))
    with pytest.raises(ValueError, match="cannot be cut"):
        cscv_logits(np.zeros((3, 3)), 4, lambda r: r.mean(axis=0))


def test_stationary_bootstrap_paths_follow_the_rule() -> None:
    rng = np.random.default_rng(4)
    paths = stationary_bootstrap_indices(rng, 25, 5.0, 4000)
    assert paths.shape == (4000, 25) and paths.min() >= 0 and paths.max() < 25
    continues = paths[:, 1:] == (paths[:, :-1] + 1) % 25
    # A block continues with probability 1 − 1/5 (a restart can land on the next day by chance: +1/25·1/5).
    assert continues.mean() == pytest.approx(0.8 + 0.2 / 25, abs=0.01)
    one_block = stationary_bootstrap_indices(np.random.default_rng(5), 10, 1e12, 3)
    assert all(((row - row[0]) % 10 == np.arange(10)).all() for row in one_block)  # wraps round, never restarts


def test_bootstrap_of_the_mean_matches_the_iid_standard_error() -> None:
    """With blocks of one day the stationary bootstrap is the iid bootstrap: the mean's spread is σ/√T."""
    rng = np.random.default_rng(6)
    series = rng.normal(0.0, 2.0, 50)
    interval = bootstrap_intervals(
        series, {"mean": lambda r: r.mean(axis=1)}, np.random.default_rng(7), 20_000, 1.0, confidence=0.95
    )["mean"]
    expected = 1.96 * series.std() / math.sqrt(50)
    assert (interval[1] - interval[0]) / 2 == pytest.approx(expected, rel=0.05)
    assert interval[0] < series.mean() < interval[1]


def test_bootstrap_is_seeded_and_a_constant_has_no_spread() -> None:
    stats = {"mean": lambda r: r.mean(axis=1)}
    series = np.random.default_rng(8).normal(0, 1, 30)
    first = bootstrap_intervals(series, stats, np.random.default_rng(9), 500, 3.0)
    assert first == bootstrap_intervals(series, stats, np.random.default_rng(9), 500, 3.0)
    assert bootstrap_intervals(np.full(12, 4.0), stats, np.random.default_rng(0), 100, 2.0)["mean"] == (4.0, 4.0)
    assert auto_block_days(27) == 3.0 and auto_block_days(1) == 1.0
