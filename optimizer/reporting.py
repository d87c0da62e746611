"""Derived figures for the report: per-strategy metrics, chart series, per-zone results."""

from __future__ import annotations

import numpy as np

from algorithms.fitness import portfolio_report, strategy_metrics
from outputs.report import AlgorithmResult, SeriesLine, StrategyMetrics, ZoneResult


def strategy_table(
    pnl: np.ndarray, names: tuple[str, ...], inverted: np.ndarray, periods_per_year: int
) -> StrategyMetrics:
    """Metrics of every searched strategy; ``pnl`` (T, S) after ULTA."""
    values = strategy_metrics(pnl, periods_per_year)
    return StrategyMetrics(names=names, inverted=inverted, **values)


def best_lines(results: list[AlgorithmResult], pnl: np.ndarray) -> tuple[SeriesLine, ...]:
    """Each algorithm's best portfolio over all sizes, as a daily series (algorithms in result order)."""
    best: dict[str, AlgorithmResult] = {}
    for r in results:
        if r.status != "ok" or r.fitness is None:
            continue
        held = best.get(r.algorithm)
        if held is None or held.fitness is None or r.fitness > held.fitness:
            best[r.algorithm] = r
    return tuple(
        SeriesLine(name, r.size, float(r.fitness or 0.0), tuple(pnl[:, list(r.members)].mean(axis=1).tolist()))
        for name, r in best.items()
    )


def zone_breakdown(
    rows_pnl: np.ndarray,
    row_dates: np.ndarray,
    row_zones: tuple[str, ...] | None,
    members: np.ndarray,
    periods_per_year: int,
) -> tuple[ZoneResult, ...] | None:
    """The portfolio's metrics on each zone's rows (dates ascending), or None without zone data.

    Parameters
    ----------
    rows_pnl : float64, shape (rows, S). One row per (date, zone), after ULTA.
    members : int, the portfolio's columns of ``rows_pnl``.
    """
    if row_zones is None:
        return None
    zones = np.array(row_zones, dtype=object)
    out = []
    for zone in sorted(set(row_zones)):
        mask = zones == zone
        order = np.argsort(row_dates[mask], kind="stable")
        daily = rows_pnl[mask][order][:, members].mean(axis=1)
        out.append(
            ZoneResult(
                zone=str(zone),
                days=int(mask.sum()),
                metrics=portfolio_report(daily, periods_per_year),
                dates=tuple(str(d) for d in row_dates[mask][order]),
                daily=tuple(daily.tolist()),
            )
        )
    return tuple(out)
