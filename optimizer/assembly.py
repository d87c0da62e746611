"""The run report: everything a run folder shows, assembled from the job's optimisation."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dal import Backend
from optimizer import __version__
from optimizer.compute import JobCompute
from optimizer.config import Config
from optimizer.loader import Dataset
from optimizer.reporting import best_lines, strategy_table, zone_breakdown
from optimizer.search import compute_threads, compute_workers
from optimizer.ulta import inversions
from optimizer.validation import Searched
from optimizer.zones import zone_names
from outputs import RunReport
from outputs.report import InputSummary, ValidationReport, Winner, ZoneRun


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@dataclass(frozen=True, eq=False)
class Optimised:
    """One optimisation of one stored matrix (the whole input, or one zone), validated."""

    dates: np.ndarray  # (D,) trading days
    final: Searched  # the last split: the job's own search and results
    winner: Winner
    in_sample_winner: Winner
    validation: ValidationReport


def training_days(dataset: Dataset, optimised: Optimised) -> np.ndarray:
    """The input's own daily totals (zones summed) on the days ULTA decided on: (days, S)."""
    dates, daily = dataset.daily()
    last = optimised.dates[optimised.final.split.train.stop - 1]
    return daily[dates <= last]


def build_report(
    job_id: str,
    path: Path,
    dataset: Dataset,
    excluded: int,
    config: Config,
    db: Backend,
    timings: tuple[tuple[str, float], ...],
    created_at: str,
    compute: JobCompute,
    main: Optimised,
    zone_runs: tuple[ZoneRun, ...] | None,
    weights: dict[str, float],
) -> RunReport:
    """Everything the run folder shows, from the job's optimisation."""
    members = np.array(main.winner.members)
    ppy = config.optimization.periods_per_year
    final = main.final
    oriented_rows = np.where(final.inverted, -dataset.pnl, dataset.pnl)[:, final.keep]
    return RunReport(
        job_id=job_id,
        created_at=created_at,
        version=__version__,
        input=_input_summary(path, dataset, excluded, main.dates),
        config=config.to_dict(),
        seed=config.general.seed,
        database=db.url,
        compute=_compute_summary(config, compute),
        timings_s=timings,
        ulta_enabled=config.optimization.apply_ulta_logic,
        # Described on the input's own daily totals; in zone mode the decision was made on the combination.
        inversions=tuple(inversions(training_days(dataset, main), dataset.strategies, final.inverted)),
        universe_average_correlation=final.universe,
        top_pairs=final.pairs,
        results=tuple(final.results),
        winner=main.winner,
        peak_rss_mb=peak_rss_mb(),
        dates=tuple(str(d) for d in main.dates),
        strategy_metrics=strategy_table(final.pnl, final.names, final.inverted[final.keep], ppy),
        winner_daily=tuple(final.pnl[:, members].mean(axis=1).tolist()),
        algorithm_best=best_lines(final.results, final.pnl),
        zone_breakdown=zone_breakdown(oriented_rows, dataset.dates, dataset.zones, members, ppy),
        zone_weights=tuple(weights.items()),
        zone_runs=zone_runs,
        validation=main.validation,
        in_sample_winner=main.in_sample_winner,
        in_sample_winner_daily=tuple(final.pnl[:, list(main.in_sample_winner.members)].mean(axis=1).tolist()),
    )


def _input_summary(path: Path, dataset: Dataset, excluded: int, dates: np.ndarray) -> InputSummary:
    return InputSummary(
        file=path.name,
        sha256=dataset.sha256,
        rows=dataset.n_rows + excluded,
        days=int(dates.shape[0]),
        strategies=len(dataset.strategies),
        blank_cells=dataset.blank_cells,
        date_format=dataset.date_format,
        first_date=str(dates[0]),
        last_date=str(dates[-1]),
        zones=tuple(zone_names(dataset)) if dataset.zones is not None else None,
        excluded_rows=excluded,
    )


def _compute_summary(config: Config, compute: JobCompute) -> dict[str, Any]:
    return {
        "array_module": compute.choice.name,
        "device": compute.choice.device,
        "workers": 1 if compute.choice.on_gpu else compute_workers(config),
        "threads": compute_threads(config),
        **compute.executor.summary(),
    }
