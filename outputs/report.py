"""The one frozen object every output writer reads. Built by the orchestrator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class InputSummary:
    file: str
    sha256: str
    rows: int
    days: int
    strategies: int
    blank_cells: int
    date_format: str
    first_date: str
    last_date: str
    zones: tuple[str, ...] | None
    excluded_rows: int = 0  # rows dropped for an empty or "Outside Market" zone


@dataclass(frozen=True)
class Inversion:
    """One strategy ULTA inverted, described on its original (pre-inversion) series."""

    name: str
    original_total: float
    inverted_total: float
    worst_day: float
    total_to_worst_day: float


@dataclass(frozen=True)
class PairCorrelation:
    first: str
    second: str
    correlation: float


@dataclass(frozen=True)
class AlgorithmResult:
    """One (size, algorithm) outcome; ``status`` is "ok" or "failed" (then ``error`` says why)."""

    size: int
    algorithm: str
    status: str
    fitness: float | None
    evaluations: int
    seconds: float
    strategies: tuple[str, ...]
    spawn_key: tuple[int, ...]
    members: tuple[int, ...] = ()  # indices into the searched strategies, same order as ``strategies``
    trace: tuple[tuple[int, float], ...] = ()
    timed_out: bool = False
    error: str = ""
    on_gpu: bool = False  # failed with an exception of the GPU stack (then the search is repeated on NumPy)
    archive: tuple[tuple[int, ...], ...] = ()  # other distinct good portfolios the search kept (validation)
    selection_sharpe: float | None = None  # annualised, on the selection window (when validated)
    test_sharpe: float | None = None  # annualised, on the test window: how this result held up


@dataclass(frozen=True)
class Winner:
    """A chosen portfolio: the algorithm (or data-built family) that found it, its in-sample
    fitness and ``metrics`` on the days the search saw (every day when validation is off)."""

    size: int
    algorithm: str
    fitness: float
    strategies: tuple[str, ...]
    metrics: dict[str, float]
    members: tuple[int, ...] = ()  # indices into the searched strategies, same order as ``strategies``


@dataclass(frozen=True)
class Contribution:
    """Why one member is in the winner: the portfolio without it, and its best substitute.

    Fitness figures are on the days the search saw (the winner's own fitness there minus the
    fitness of the other members alone); ``test_sharpe_without`` is the others' annualised Sharpe
    ratio on the final test window (None when not validated)."""

    name: str
    fitness_without: float
    contribution: float  # winner fitness − fitness_without: what keeping it adds
    test_sharpe_without: float | None
    substitute: str | None  # the strategy outside the portfolio that scores best in its place
    substitute_fitness: float | None  # the portfolio's fitness with that swap


LOOKBACK = 200  # run folders read, newest first, looking for a book's previous run


@dataclass(frozen=True)
class SinceLastRun:
    """What changed since the previous run of the same book (the newest earlier run folder of it)."""

    book: str
    previous_job_id: str
    previous_run_folder: str  # its folder's name, beside this one
    previous_created_at: str
    came_in: tuple[str, ...]  # in the winner now, not before (names as now, ULTA's _inv included)
    went_out: tuple[str, ...]  # in the winner before, not now (names as then)
    kept: int  # in both, whichever way ULTA turned them
    figures: tuple[tuple[str, float | None, float | None], ...]  # (figure, before, now)
    flipped: tuple[str, ...] = ()  # kept, but ULTA turned them the other way since (names as now)
    has_page: bool = False  # the previous folder has a report.html to link to


@dataclass(frozen=True)
class Window:
    """A span of trading days: ``training`` (what ULTA, correlation and the search saw), ``selection`` (where candidates
    were compared) or ``test`` (seen by nothing that chose)."""

    name: str
    first_date: str
    last_date: str
    days: int


@dataclass(frozen=True)
class Fold:
    """One split of the days: the portfolio chosen on it and how it did on its test window."""

    number: int
    windows: tuple[Window, ...]
    inverted: int  # strategies ULTA inverted, decided on this fold's training window
    candidates: int
    chosen: Winner
    chosen_selection_metrics: dict[str, float] | None
    chosen_test_metrics: dict[str, float]
    in_sample: Winner
    in_sample_test_metrics: dict[str, float]


@dataclass(frozen=True)
class ValidationReport:
    """How the choice holds up on days the search never saw (docs/validation.md).

    ``method`` is what ran: ``none`` when switched off or when the input has too few days
    (``note`` says why); the statistics are then None. Sharpe ratios in ``deflated`` are per day.
    """

    method: str
    selection: str
    note: str
    train_days: int
    test_days: int  # out-of-sample days: the test window, or every walk-forward test window
    folds: tuple[Fold, ...] = ()
    candidate_sources: tuple[tuple[str, int], ...] = ()  # the final fold's candidates by family
    oos_dates: tuple[str, ...] = ()
    oos_daily: tuple[float, ...] = ()  # the chosen portfolios on their test windows, concatenated
    in_sample_oos_daily: tuple[float, ...] = ()  # the same for the in-sample picks
    oos_metrics: dict[str, float] | None = None
    in_sample_oos_metrics: dict[str, float] | None = None
    oos_sharpe_probability: float | None = None  # P(true Sharpe > 0) from the out-of-sample days alone
    deflated: dict[str, float] | None = None  # the deflated Sharpe ratio and its inputs
    pbo: dict[str, float] | None = None  # probability of backtest overfitting (CSCV) and its inputs
    bootstrap: dict[str, tuple[float, float]] | None = None  # 95 % intervals on the out-of-sample days
    bootstrap_settings: dict[str, float] | None = None
    stability: tuple[tuple[str, float], ...] = ()  # walk-forward: share of folds that chose each winner member
    verdict: str = ""

    @property
    def ran(self) -> bool:
        return self.method != "none"

    @property
    def deflated_sharpe_probability(self) -> float | None:
        return None if self.deflated is None else self.deflated["probability"]

    @property
    def probability_of_overfitting(self) -> float | None:
        return None if self.pbo is None else self.pbo["pbo"]


@dataclass(frozen=True, eq=False)
class StrategyMetrics:
    """Every searched strategy's own metrics (after ULTA); arrays of shape (S,).

    ``win_percentage`` is in percent.
    """

    names: tuple[str, ...]
    inverted: np.ndarray
    roi: np.ndarray
    max_drawdown: np.ndarray
    win_percentage: np.ndarray
    profit_factor: np.ndarray
    expectancy: np.ndarray
    sharpe: np.ndarray

    COLUMNS = ("roi", "max_drawdown", "win_percentage", "profit_factor", "expectancy", "sharpe")

    def row(self, j: int) -> dict[str, float]:
        return {c: float(getattr(self, c)[j]) for c in self.COLUMNS}


@dataclass(frozen=True)
class SeriesLine:
    """A portfolio's daily P&L (one value per trading day), for charts."""

    label: str
    size: int
    fitness: float
    daily: tuple[float, ...]


@dataclass(frozen=True)
class ZoneResult:
    """How a portfolio did on one zone's rows."""

    zone: str
    days: int
    metrics: dict[str, float]
    dates: tuple[str, ...] = ()
    daily: tuple[float, ...] = ()  # the portfolio's series on this zone's rows


@dataclass(frozen=True)
class ZoneRun:
    """One zone optimised on its own rows (zone mode)."""

    zone: str
    weight: float  # normalised weight in the combined optimisation
    days: int
    inverted: int  # strategies ULTA inverted on this zone's rows
    results: tuple[AlgorithmResult, ...]
    winner: Winner
    dates: tuple[str, ...]
    daily: tuple[float, ...]  # the zone winner's daily series
    validation: ValidationReport | None = None


@dataclass(frozen=True)
class RunReport:
    job_id: str
    created_at: str
    version: str
    input: InputSummary
    config: dict[str, dict[str, Any]]
    seed: int
    database: str
    compute: dict[str, Any]
    timings_s: tuple[tuple[str, float], ...]
    ulta_enabled: bool
    inversions: tuple[Inversion, ...]
    universe_average_correlation: float
    top_pairs: tuple[PairCorrelation, ...]
    results: tuple[AlgorithmResult, ...]
    winner: Winner
    peak_rss_mb: float
    dates: tuple[str, ...] = ()
    strategy_metrics: StrategyMetrics | None = None
    winner_daily: tuple[float, ...] = ()
    algorithm_best: tuple[SeriesLine, ...] = ()
    zone_breakdown: tuple[ZoneResult, ...] | None = None
    zone_weights: tuple[tuple[str, float], ...] = ()  # normalised, zone mode only
    zone_runs: tuple[ZoneRun, ...] | None = None  # zone mode only
    fallbacks: dict[str, str] = field(default_factory=dict)  # "database" / "compute": what fell back, and why
    validation: ValidationReport | None = None
    in_sample_winner: Winner | None = None  # the highest in-sample fitness (the winner when selection = in_sample)
    in_sample_winner_daily: tuple[float, ...] = ()  # its daily series on every day, like ``winner_daily``
    contributions: tuple[Contribution, ...] = ()  # the winner's members, in its order
    book: str = ""  # GENERAL.book, or the input file's name
    windows_output_dir: str = ""  # OUTPUT folder as Windows users reach it (QUEUE.unc_root), when on the share
    since_last_run: SinceLastRun | None = None

    @property
    def metric(self) -> str:
        return str(self.config["GENERAL"]["metric"])

    def best_by_size(self) -> dict[int, AlgorithmResult]:
        """Highest-fitness successful result of each size (first in result order on ties)."""
        best: dict[int, AlgorithmResult] = {}
        for r in self.results:
            if r.status != "ok" or r.fitness is None:
                continue
            held = best.get(r.size)
            if held is None or held.fitness is None or r.fitness > held.fitness:
                best[r.size] = r
        return best
