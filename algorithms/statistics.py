"""How much to believe a backtest: deflated Sharpe, probability of backtest overfitting, bootstrap.

Pure functions on host arrays (NumPy); each formula is written out in docs/validation.md with
its reference. Sharpe ratios here are per period (per trading day), not annualised, as the
papers define them; callers annualise for display.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.special import ndtr, ndtri

EULER_GAMMA = 0.5772156649015329  # γ of the expected-maximum formula
TINY = 1e-12  # a standard deviation below this counts as zero


def sharpe_per_period(returns: np.ndarray) -> np.ndarray:
    """mean / standard deviation (ddof 1) of each row; 0 where the deviation vanishes.

    Parameters
    ----------
    returns : float64, shape (..., T), T ≥ 2.

    Returns
    -------
    float64, shape (...).
    """
    mean = returns.mean(axis=-1)
    std = returns.std(axis=-1, ddof=1)
    return np.where(std > TINY, mean / np.where(std > TINY, std, 1.0), 0.0)


def moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of one series, population moments; (0, 3) if constant."""
    centred = returns - returns.mean()
    variance = float(np.mean(centred**2))
    if variance <= TINY**2:
        return 0.0, 3.0
    return float(np.mean(centred**3)) / variance**1.5, float(np.mean(centred**4)) / variance**2


def probabilistic_sharpe(
    sharpe: float, benchmark: float, observations: int, skewness: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true Sharpe > ``benchmark``) given an observed per-period ``sharpe`` (Bailey & López de Prado, 2012).

    ``Φ((SR − SR*)·√(T−1) / √(1 − γ₃·SR + (γ₄−1)/4·SR²))``, γ₄ the non-excess kurtosis. A
    variance term that rounding or extreme moments make non-positive is floored at a tiny value.
    """
    if observations < 2:
        return 0.5
    variance = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    z = (sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(max(variance, TINY))
    return float(ndtr(z))


def expected_max_sharpe(trials: float, variance: float) -> float:
    """E[max] of ``trials`` independent Sharpe ratios of zero mean and ``variance`` (the deflation benchmark).

    ``√V·((1−γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))``; 0 for N ≤ 1, where the approximation
    breaks down and the maximum of one trial has mean 0.
    """
    if trials <= 1.0 or variance <= 0.0:
        return 0.0
    value = math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * float(ndtri(1.0 - 1.0 / trials))
        + EULER_GAMMA * float(ndtri(1.0 - 1.0 / (trials * math.e)))
    )
    return max(value, 0.0)


def effective_trials(trials: int, average_correlation: float) -> float:
    """Independent trials among ``trials`` correlated ones: ``ρ̄ + (1 − ρ̄)·N``, ρ̄ clipped to [0, 1]."""
    rho = min(max(average_correlation, 0.0), 1.0)
    return rho + (1.0 - rho) * trials


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of a selected series and what went into it (per-period Sharpe)."""

    probability: float  # DSR: P(true Sharpe > 0 once selection among the trials is accounted for)
    sharpe: float
    benchmark: float  # SR*, the expected maximum Sharpe of the trials under no skill
    observations: int
    trials: int
    effective_trials: float
    trial_variance: float
    skewness: float
    kurtosis: float


def deflated_sharpe(
    selected: np.ndarray, trials: int, trial_variance: float, average_correlation: float = 0.0
) -> DeflatedSharpe:
    """Deflated Sharpe ratio (Bailey & López de Prado, 2014) of the series ``selected`` (shape (T,)).

    The benchmark is the expected maximum Sharpe of ``trials`` candidates with no skill, whose
    Sharpe ratios vary with ``trial_variance``; correlated candidates count as
    :func:`effective_trials` independent ones.
    """
    sharpe = float(sharpe_per_period(selected))
    skewness, kurtosis = moments(selected)
    n_eff = effective_trials(trials, average_correlation)
    benchmark = expected_max_sharpe(n_eff, trial_variance)
    return DeflatedSharpe(
        probability=probabilistic_sharpe(sharpe, benchmark, len(selected), skewness, kurtosis),
        sharpe=sharpe,
        benchmark=benchmark,
        observations=len(selected),
        trials=trials,
        effective_trials=n_eff,
        trial_variance=trial_variance,
        skewness=skewness,
        kurtosis=kurtosis,
    )


def robust_variance(values: np.ndarray) -> float:
    """Variance estimated from the median absolute deviation (×1.4826²), so a minority of
    outlying values (real skill among many candidates) does not inflate it."""
    deviation = np.median(np.abs(values - np.median(values)))
    return float((1.4826 * deviation) ** 2)


@dataclass(frozen=True)
class Overfitting:
    """Probability of backtest overfitting by CSCV, and the logits it counts."""

    pbo: float
    blocks: int
    splits: int
    logits: tuple[float, ...]  # λ = ln(ω/(1−ω)) per split; ω the chosen candidate's relative OOS rank


def cscv_logits(returns: np.ndarray, blocks: int, score: Callable[[np.ndarray], np.ndarray]) -> list[float]:
    """Combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu, 2017).

    The rows of ``returns`` (shape (T, N): T days of N candidates) are cut into ``blocks``
    contiguous blocks of (nearly) equal length. For every choice of half of the blocks as the
    in-sample set (the rest out of sample, order kept), the candidate with the best in-sample
    ``score`` is taken and its out-of-sample relative rank ω = rank/(N+1) (rank 1 = worst) gives
    the logit λ = ln(ω/(1−ω)). ``score`` maps a (t, N) matrix to (N,) scores, higher better.
    Ties rank by average.
    """
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be even and at least 2, got {blocks}")
    days, count = returns.shape
    if days < blocks:
        raise ValueError(f"{days} days cannot be cut into {blocks} blocks")
    pieces = np.array_split(np.arange(days), blocks)
    logits = []
    for chosen in combinations(range(blocks), blocks // 2):
        inside = np.concatenate([pieces[b] for b in chosen])
        outside = np.concatenate([pieces[b] for b in range(blocks) if b not in chosen])
        best = int(np.argmax(score(returns[inside])))
        oos = score(returns[outside])
        rank = float(np.sum(oos < oos[best])) + (float(np.sum(oos == oos[best])) + 1.0) / 2.0
        omega = rank / (count + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    return logits


def probability_of_overfitting(logits: list[float], blocks: int) -> Overfitting:
    """PBO = share of splits whose chosen candidate ranks at or below the median out of sample (λ ≤ 0)."""
    if not logits:
        return Overfitting(float("nan"), blocks, 0, ())
    return Overfitting(float(np.mean(np.array(logits) <= 0.0)), blocks, len(logits), tuple(logits))


def stationary_bootstrap_indices(rng: np.random.Generator, length: int, mean_block: float, samples: int) -> np.ndarray:
    """Index paths of the stationary bootstrap (Politis & Romano, 1994).

    Each path starts at a uniform random day; each next day is, with probability
    1/``mean_block``, a new uniform random day, and otherwise the day after the previous one
    (wrapping round to the first). Blocks therefore have geometric lengths of mean ``mean_block``.

    Returns
    -------
    int64, shape (samples, length).
    """
    restart = rng.random((samples, length)) < 1.0 / max(mean_block, 1.0)
    restart[:, 0] = True
    fresh = rng.integers(0, length, size=(samples, length))
    # Position of the latest restart at or before each step, and the steps since it.
    step = np.arange(length)
    last = np.maximum.accumulate(np.where(restart, step, 0), axis=1)
    start = np.take_along_axis(fresh, last, axis=1)
    return (start + (step - last)) % length


def bootstrap_intervals(
    series: np.ndarray,
    statistics: dict[str, Callable[[np.ndarray], np.ndarray]],
    rng: np.random.Generator,
    samples: int,
    mean_block: float,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each statistic over stationary-bootstrap resamples of ``series`` (shape (T,)).

    Each statistic maps a (samples, T) matrix of resampled series to (samples,) values.
    """
    paths = stationary_bootstrap_indices(rng, len(series), mean_block, samples)
    resampled = series[paths]
    tail = (1.0 - confidence) / 2.0
    out = {}
    for name, statistic in statistics.items():
        values = statistic(resampled)
        low, high = np.quantile(values, [tail, 1.0 - tail])
        out[name] = (float(low), float(high))
    return out


def auto_block_days(days: int) -> float:
    """Mean block length when none is configured: T^(1/3), at least 1 (a common rule for short series)."""
    return max(1.0, round(days ** (1.0 / 3.0)))
