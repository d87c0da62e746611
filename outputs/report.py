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


@dataclass(frozen=True)
class Winner:
    size: int
    algorithm: str
    fitness: float
    strategies: tuple[str, ...]
    metrics: dict[str, float]
    members: tuple[int, ...] = ()  # indices into the searched strategies, same order as ``strategies``


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
    skipped_algorithms: tuple[str, ...]
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
