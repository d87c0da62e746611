"""Out-of-sample validation: the candidates, the validated choice, and how much to believe it.

The rules and why are in docs/validation.md. Each split of the trading days
(``optimizer/windows.py``) has a training window (the only days ULTA's decision, correlation
and the search see), a selection window (the candidates are compared there, and the headline
portfolio chosen) and a test window that nothing that chooses ever sees. The orchestrator
runs ULTA, correlation and the search of each split; this module pools the candidates,
chooses, and computes the statistics. Everything is deterministic given the job seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from algorithms.candidates import Built, families
from algorithms.correlation import HedgePair, average_pairwise, unit_columns
from algorithms.fitness import max_drawdown, metric_values, portfolio_report
from algorithms.problem import Problem
from algorithms.statistics import (
    auto_block_days,
    bootstrap_intervals,
    cscv_logits,
    deflated_sharpe,
    moments,
    probabilistic_sharpe,
    probability_of_overfitting,
    robust_variance,
    sharpe_per_period,
)
from optimizer.config import Validation
from optimizer.search import make_winner
from optimizer.windows import Plan, Split
from outputs.report import AlgorithmResult, Fold, PairCorrelation, ValidationReport, Window, Winner

CONFIDENCE = 0.95  # of the bootstrap intervals
SKILL_PROBABILITY = 0.95  # a deflated Sharpe probability at or above this (and PBO below ½) is evidence of skill
MAX_PBO_BLOCKS = 10  # C(10, 5) = 252 CSCV splits
MIN_PBO_BLOCK_DAYS = 3
BOOTSTRAP_KEY = (0, 1)  # spawn key of the bootstrap's generator: task keys start with a size ≥ 2


@dataclass(frozen=True, eq=False)
class Searched:
    """One split's correlation and search, on its training window: what validation chooses from."""

    split: Split
    inverted: np.ndarray  # (S,) bool: ULTA's decision on this split's training window
    keep: np.ndarray  # indices of the searched strategies (GENERAL.strat_limit)
    names: tuple[str, ...]  # searched strategies, ULTA names
    pnl: np.ndarray  # (D, searched) every day, oriented by this split's ULTA
    units: np.ndarray  # (training days, searched)
    universe: float
    pairs: tuple[PairCorrelation, ...]
    hedges: list[HedgePair]
    problem: Problem  # on the training window, NumPy
    sizes: range
    results: list[AlgorithmResult]

    @property
    def search_pnl(self) -> np.ndarray:
        return self.pnl[self.split.train.start : self.split.train.stop]


@dataclass(frozen=True)
class Candidate:
    """A portfolio to validate: where it came from and its fitness on the training window."""

    source: str  # an algorithm, or a data-built family
    kind: str  # "best" (a size × algorithm result), "archive" (kept during a search) or "built"
    members: tuple[int, ...]  # sorted indices into the split's searched strategies
    fitness: float


def pool(results: Sequence[AlgorithmResult], built: Sequence[Built], problem: Problem) -> list[Candidate]:
    """Distinct candidates: every size × algorithm best, then the searches' archives, then the built ones.

    Fitness of archived and built portfolios is evaluated here on ``problem`` (the search
    window), outside every algorithm's budget.
    """
    out: dict[tuple[int, ...], Candidate] = {}
    for r in results:
        if r.status == "ok" and r.fitness is not None:
            members = tuple(sorted(r.members))
            out.setdefault(members, Candidate(r.algorithm, "best", members, float(r.fitness)))
    pending = [(r.algorithm, "archive", tuple(p)) for r in results if r.status == "ok" for p in r.archive]
    pending += [(b.source, "built", b.members) for b in built]
    pending = [p for p in dict.fromkeys(pending) if p[2] not in out]
    for size in sorted({len(p[2]) for p in pending}):
        group = [p for p in pending if len(p[2]) == size]
        fitness = problem.with_size(size).evaluate(np.array([p[2] for p in group], dtype=np.int64))
        for (source, kind, members), value in zip(group, fitness.tolist(), strict=True):
            out.setdefault(members, Candidate(source, kind, members, float(value)))
    return list(out.values())


def candidate_series(candidates: Sequence[Candidate], pnl: np.ndarray) -> np.ndarray:
    """Each candidate's equal-weight daily series: float64, shape (N, D), from ``pnl`` (D, S)."""
    out = np.empty((len(candidates), pnl.shape[0]))
    by_size: dict[int, list[int]] = {}
    for i, c in enumerate(candidates):
        by_size.setdefault(len(c.members), []).append(i)
    for size, rows in by_size.items():
        members = np.array([candidates[i].members for i in rows], dtype=np.int64)  # (G, n)
        out[rows] = pnl[:, members].sum(axis=2).T / size
    return out


@dataclass(frozen=True, eq=False)
class Choice:
    """One split's candidates, their series over every day, and the two picks (indices)."""

    split: Split
    candidates: list[Candidate]
    series: np.ndarray  # (N, D)
    chosen: int
    in_sample: int


def choose(split: Split, candidates: list[Candidate], pnl: np.ndarray, selection: str) -> Choice:
    """The validated pick (the best Sharpe ratio on the selection window; ties: higher in-sample
    fitness, then pool order) and the in-sample pick (highest fitness among the size × algorithm
    bests, first of equals, as without validation). docs/validation.md says why Sharpe."""
    series = candidate_series(candidates, pnl)
    fitness = np.array([c.fitness for c in candidates])
    bests = np.array([c.kind == "best" for c in candidates])
    in_sample = int(np.argmax(np.where(bests, fitness, -np.inf)))
    if selection == "in_sample" or not len(split.selection):
        return Choice(split, candidates, series, in_sample, in_sample)
    scores = sharpe_per_period(series[:, split.selection.start : split.selection.stop])
    order = np.lexsort((np.arange(len(candidates)), -fitness, -scores))
    return Choice(split, candidates, series, int(order[0]), in_sample)


def scored_results(results: Sequence[AlgorithmResult], choice: Choice, ppy: int) -> list[AlgorithmResult]:
    """``results`` with each best portfolio's annualised Sharpe ratio on the selection and test windows."""
    rows = {c.members: i for i, c in enumerate(choice.candidates)}
    split, scale = choice.split, np.sqrt(ppy)

    def sharpe(row: int, days: range) -> float | None:
        if len(days) < 2:
            return None
        return float(sharpe_per_period(choice.series[row, days.start : days.stop])) * scale

    out = []
    for r in results:
        row = rows.get(tuple(sorted(r.members))) if r.status == "ok" else None
        if row is None:
            out.append(r)
            continue
        out.append(
            dataclasses.replace(r, selection_sharpe=sharpe(row, split.selection), test_sharpe=sharpe(row, split.test))
        )
    return out


def _window(name: str, days: range, dates: Sequence[str]) -> Window:
    return Window(name, dates[days.start], dates[days.stop - 1], len(days))


def windows(split: Split, dates: Sequence[str]) -> tuple[Window, ...]:
    named = (("training", split.train), ("selection", split.selection), ("test", split.test))
    return tuple(_window(name, days, dates) for name, days in named if len(days))


def _on(series: np.ndarray, days: range, ppy: int) -> dict[str, float]:
    return portfolio_report(series[days.start : days.stop], ppy)


def fold(
    number: int, choice: Choice, picks: tuple[Winner, Winner], dates: Sequence[str], inverted: int, ppy: int
) -> Fold:
    """The report of one split; ``picks`` are the chosen and in-sample candidates as winners."""
    split, chosen, in_sample = choice.split, choice.series[choice.chosen], choice.series[choice.in_sample]
    return Fold(
        number=number,
        windows=windows(split, dates),
        inverted=inverted,
        candidates=len(choice.candidates),
        chosen=picks[0],
        chosen_selection_metrics=_on(chosen, split.selection, ppy) if len(split.selection) else None,
        chosen_test_metrics=_on(chosen, split.test, ppy),
        in_sample=picks[1],
        in_sample_test_metrics=_on(in_sample, split.test, ppy),
    )


def deflated(choice: Choice) -> dict[str, float]:
    """The deflated Sharpe ratio of the chosen portfolio on the days no search saw (selection and test).

    Trials: the candidates compared, counted as independent ones by their average
    correlation on those days; their Sharpe variance estimated robustly (docs/validation.md).
    """
    unseen = choice.series[:, choice.split.unseen.start : choice.split.unseen.stop]
    units, _ = unit_columns(np, np.ascontiguousarray(unseen.T))
    correlation = average_pairwise(units) if len(unseen) > 1 else 0.0
    sharpes = sharpe_per_period(unseen)
    # More than half the candidates alike (robust spread 0): fall back to the plain variance.
    variance = robust_variance(sharpes) or (float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0)
    result = deflated_sharpe(unseen[choice.chosen], len(unseen), variance, correlation)
    return {**dataclasses.asdict(result), "average_correlation": correlation}


def pbo_blocks(days: int, settings: Validation) -> int:
    """CSCV blocks for ``days``: the configured number, or the most (even, ≤ 10) of ≥ 3 days each."""
    if settings.pbo_blocks:
        return settings.pbo_blocks if settings.pbo_blocks <= days else 0
    blocks = min(MAX_PBO_BLOCKS, days // MIN_PBO_BLOCK_DAYS)
    return blocks - blocks % 2


def overfitting(choices: Sequence[Choice], settings: Validation) -> dict[str, float] | None:
    """PBO of choosing by Sharpe ratio among each split's candidates, by CSCV on its unseen days (logits pooled)."""
    logits: list[float] = []
    used = folds = 0
    for choice in choices:
        unseen = choice.series[:, choice.split.unseen.start : choice.split.unseen.stop]
        blocks = pbo_blocks(unseen.shape[1], settings)
        if blocks < 2 or len(unseen) < 2:
            continue
        used, folds = blocks, folds + 1
        logits += cscv_logits(np.ascontiguousarray(unseen.T), blocks, lambda r: sharpe_per_period(r.T))
    if not logits:
        return None
    result = probability_of_overfitting(logits, used)
    return {
        "pbo": result.pbo,
        "blocks": result.blocks,  # of the last fold; walk-forward folds pool their splits
        "splits": result.splits,
        "folds": folds,
        "median_logit": float(np.median(result.logits)),
    }


def bootstrap(
    series: np.ndarray, settings: Validation, seed: int, prefix: tuple[int, ...], ppy: int
) -> tuple[dict[str, tuple[float, float]] | None, dict[str, float] | None]:
    """Stationary-bootstrap intervals of Sharpe (annualised), ratio and max drawdown of ``series``."""
    if settings.bootstrap_samples == 0 or len(series) < 2:
        return None, None
    block = settings.bootstrap_block_days or auto_block_days(len(series))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(*prefix, *BOOTSTRAP_KEY)))
    statistics = {
        "sharpe_ratio": lambda r: metric_values(np, r, "sharpe", ppy),
        "ratio": lambda r: metric_values(np, r, "ratio", ppy),
        "max_drawdown": lambda r: max_drawdown(np, r),
    }
    intervals = bootstrap_intervals(series, statistics, rng, settings.bootstrap_samples, block, CONFIDENCE)
    return intervals, {"samples": settings.bootstrap_samples, "mean_block_days": block, "confidence": CONFIDENCE}


def stability(
    choices: Sequence[Choice], keys: Sequence[np.ndarray], names: Sequence[str]
) -> tuple[tuple[str, float], ...]:
    """For each member of the last fold's chosen portfolio: the share of folds that chose it.

    ``keys[k]`` identifies fold k's searched strategies across folds: the job's strategy
    column and the side ULTA put it on (``2·column + inverted``), so a strategy held one way
    in one fold and inverted in another is not the same choice. ``names`` are the last fold's.
    """
    picked = [set(keys[k][list(c.candidates[c.chosen].members)].tolist()) for k, c in enumerate(choices)]
    last = choices[-1].candidates[choices[-1].chosen].members
    shares = [(names[m], sum(int(keys[-1][m]) in p for p in picked) / len(picked)) for m in last]
    return tuple(sorted(shares, key=lambda s: (-s[1], s[0])))


def verdict(oos_sharpe: float, dsr: float, pbo: float | None) -> str:
    """Plain words: evidence of skill only if the deflated Sharpe probability, the PBO and the
    out-of-sample Sharpe all say so."""
    if dsr >= SKILL_PROBABILITY and (pbo is None or pbo < 0.5) and oos_sharpe > 0:
        return "evidence of skill"
    reasons = []
    if dsr < SKILL_PROBABILITY:
        reasons.append(f"deflated Sharpe probability {dsr:.3f} < {SKILL_PROBABILITY:.2f}")
    if pbo is not None and pbo >= 0.5:
        reasons.append(f"chance the selection is overfit {pbo:.0%}")
    if oos_sharpe <= 0:
        reasons.append("the out-of-sample Sharpe ratio is not positive")
    return "no evidence of skill: " + "; ".join(reasons)


def report(
    plan_: Plan,
    choices: Sequence[Choice],
    folds: Sequence[Fold],
    keys: Sequence[np.ndarray],
    names: Sequence[str],
    dates: Sequence[str],
    settings: Validation,
    *,
    ppy: int,
    seed: int,
    prefix: tuple[int, ...] = (),
) -> ValidationReport:
    """The :class:`ValidationReport` of a job whose splits were searched and chosen."""
    final = plan_.final
    base = ValidationReport(
        method=plan_.method, selection=settings.selection, note=plan_.note, train_days=len(final.train), test_days=0
    )
    if not plan_.validating:
        return base
    oos = np.concatenate([c.series[c.chosen, c.split.test.start : c.split.test.stop] for c in choices])
    oos_in_sample = np.concatenate([c.series[c.in_sample, c.split.test.start : c.split.test.stop] for c in choices])
    oos_dates = tuple(d for c in choices for d in dates[c.split.test.start : c.split.test.stop])
    dsr = deflated(choices[-1])
    pbo = overfitting(choices, settings)
    intervals, boot_settings = bootstrap(oos, settings, seed, prefix, ppy)
    oos_metrics = portfolio_report(oos, ppy)
    oos_sharpe = float(sharpe_per_period(oos))
    return dataclasses.replace(
        base,
        test_days=len(oos),
        folds=tuple(folds),
        candidate_sources=tuple(sorted(_sources(choices[-1].candidates).items())),
        oos_dates=oos_dates,
        oos_daily=tuple(oos.tolist()),
        in_sample_oos_daily=tuple(oos_in_sample.tolist()),
        oos_metrics=oos_metrics,
        in_sample_oos_metrics=portfolio_report(oos_in_sample, ppy),
        oos_sharpe_probability=probabilistic_sharpe(oos_sharpe, 0.0, len(oos), *moments(oos)),
        deflated=dsr,
        pbo=pbo,
        bootstrap=intervals,
        bootstrap_settings=boot_settings,
        stability=stability(choices, keys, names) if len(choices) > 1 else (),
        verdict=verdict(oos_metrics["sharpe_ratio"], dsr["probability"], None if pbo is None else pbo["pbo"]),
    )


def _sources(candidates: Sequence[Candidate]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in candidates:
        key = c.source if c.kind == "built" else f"{c.source} ({'best of a size' if c.kind == 'best' else 'archive'})"
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(frozen=True, eq=False)
class Validated:
    """The outcome: the last split (its results scored out of sample), both winners, the report."""

    final: Searched
    winner: Winner
    in_sample_winner: Winner
    report: ValidationReport


def validate(
    windows: Plan,
    searched: Sequence[Searched],
    days: np.ndarray,
    settings: Validation,
    *,
    ppy: int,
    seed: int,
    prefix: tuple[int, ...] = (),
) -> Validated:
    """Pool each split's candidates, choose, and measure the choice on the days no search saw.

    Without validation (``windows`` of one split of every day) the pool is the size × algorithm
    bests and the choice their highest fitness, as before validation existed.
    """
    dates = tuple(str(d) for d in days)
    choices, folds, picks = [], [], []
    for k, s in enumerate(searched):
        building = windows.validating and settings.selection == "validated"
        built = families(s.search_pnl, s.hedges, s.sizes) if building else []  # the in-sample rule: the bests
        choice = choose(s.split, pool(s.results, built, s.problem), s.pnl, settings.selection)
        chosen, in_sample = (_winner_of(s, choice.candidates[i], ppy) for i in (choice.chosen, choice.in_sample))
        choices.append(choice)
        picks.append((chosen, in_sample))
        if windows.validating:
            folds.append(fold(k + 1, choice, (chosen, in_sample), dates, int(s.inverted.sum()), ppy))
    keys = [2 * s.keep + s.inverted[s.keep] for s in searched]
    validated = report(
        windows, choices, folds, keys, searched[-1].names, dates, settings, ppy=ppy, seed=seed, prefix=prefix
    )
    final = searched[-1]
    if windows.validating:
        final = dataclasses.replace(final, results=scored_results(final.results, choices[-1], ppy))
    return Validated(final, picks[-1][0], picks[-1][1], validated)


def _winner_of(searched: Searched, candidate: Candidate, ppy: int) -> Winner:
    return make_winner(
        candidate.source, candidate.fitness, candidate.members, searched.search_pnl, searched.units, searched.names, ppy
    )
