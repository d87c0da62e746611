"""The two PNG charts, drawn with matplotlib's object API on the Agg canvas (no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from outputs.report import RunReport, ValidationReport, Window

DPI = 100
EQUITY_SIZE_IN = (12.0, 8.0)  # → 1200 × 800 px
COMPARISON_SIZE_IN = (14.0, 10.0)  # → 1400 × 1000 px
ZONE_PANEL_IN = (7.0, 4.0)  # one panel per zone, two across
WIDE_RANGE = 1e3  # fitness spanning more than this factor is drawn on a symmetric-log axis


def _margins(
    figure: Figure, top_in: float = 0.45, gap_in: float = 0.85, wgap_in: float = 1.1, left_in: float = 1.0
) -> None:
    """Fixed margins in inches (room for tick labels, axis labels and titles; ``gap_in`` between rows).

    Not a layout engine: constrained layout measured every text twice and cost about 0.15 s a
    chart, half of drawing it (0.60 s instead of 1.07 s for the three charts of a small job).
    """
    width, height = figure.get_size_inches()
    rows, columns = 1, 1
    for axis in figure.axes:
        spec = axis.get_subplotspec()
        if spec is not None:
            rows, columns = spec.get_gridspec().get_geometry()
            break
    bottom, left, right = 0.6, left_in, 0.3
    axis_height = (height - top_in - bottom - gap_in * (rows - 1)) / rows
    axis_width = (width - left - right - wgap_in * (columns - 1)) / columns
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top_in / height,
        bottom=bottom / height,
        hspace=gap_in / axis_height,
        wspace=wgap_in / axis_width,
    )


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(str(path), dpi=DPI, format="png", metadata={"Software": None})


def _colours(report: RunReport) -> dict[str, str]:
    """One colour per algorithm, the same in every panel of both charts (failed ones included)."""
    names = list(dict.fromkeys(r.algorithm for r in report.results))
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def _plain(text: str) -> str:
    """Text from the input shown as is: a ``$`` would start matplotlib's maths markup."""
    return text.replace("$", r"\$")


def _dates(report: RunReport) -> np.ndarray:
    return np.array(report.dates, dtype="datetime64[D]")


def equity_curves(report: RunReport, path: Path) -> None:
    """Equity and drawdown of the winner, with each algorithm's best portfolio for comparison."""
    days = _dates(report)
    figure = Figure(figsize=EQUITY_SIZE_IN)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    _margins(figure, gap_in=0.55)
    colours = _colours(report)
    for line in report.algorithm_best:
        label = f"{line.label} (best: size {line.size})"
        top.plot(days, np.cumsum(line.daily), color=colours[line.label], linewidth=1.0, alpha=0.8, label=label)
    w = report.winner
    equity = np.cumsum(report.winner_daily)
    top.plot(days, equity, color="black", linewidth=2.4, label=f"winner: {w.algorithm}, size {w.size}")
    top.set_title(f"Equity of the winning portfolio and each algorithm's best — job {report.job_id}")
    top.set_ylabel("Cumulative P&L (currency)")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    drawdown = equity - np.maximum.accumulate(equity)
    bottom.fill_between(days, drawdown, 0.0, color="firebrick", alpha=0.5, step="mid")
    bottom.set_title(f"Drawdown of the winner (max {w.metrics['max_drawdown']:,.6g})")
    bottom.set_ylabel("Drawdown (currency)")
    bottom.set_xlabel("Trading day")
    bottom.grid(True, alpha=0.3)
    _date_axis(bottom)
    _save(figure, path)


def _fitness_axis(axis: object, values: list[float]) -> None:
    finite = np.abs(np.array([v for v in values if np.isfinite(v)] or [1.0]))
    if finite.max() > WIDE_RANGE * max(np.median(finite), 1e-9):
        axis.set_yscale("symlog", linthresh=max(float(np.median(finite)), 1e-6))  # type: ignore[attr-defined]


def algorithm_comparison(report: RunReport, path: Path) -> None:
    """Fitness by algorithm across sizes, seconds per algorithm, and convergence at the winner's size."""
    figure = Figure(figsize=COMPARISON_SIZE_IN)
    grid = figure.add_gridspec(2, 2)
    by_size = figure.add_subplot(grid[0, :])
    seconds_axis = figure.add_subplot(grid[1, 0])
    convergence = figure.add_subplot(grid[1, 1])
    _margins(figure, left_in=1.9)  # room for the seconds panel's algorithm names
    colours = _colours(report)
    algorithms = list(colours)
    fitness_values: list[float] = []
    for name in algorithms:
        mine = [r for r in report.results if r.algorithm == name]
        runs = sorted((r for r in mine if r.fitness is not None), key=lambda r: r.size)
        failed = len(mine) - len(runs)
        label = name + (f" (failed at {failed} size{'s' if failed > 1 else ''})" if failed else "")
        values = [float(r.fitness or 0.0) for r in runs]
        by_size.plot([r.size for r in runs], values, color=colours[name], marker="o", markersize=3, label=label)
        fitness_values += values
    by_size.set_title(f"Best fitness by portfolio size ({report.metric} − λ·avg correlation)")
    by_size.set_xlabel("Portfolio size (strategies)")
    by_size.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_size.set_ylabel("Best fitness")
    _fitness_axis(by_size, fitness_values)
    by_size.grid(True, alpha=0.3)
    by_size.legend(fontsize=8, ncol=4, loc="best")
    totals = [sum(r.seconds for r in report.results if r.algorithm == name) for name in algorithms]
    seconds_axis.barh(algorithms, totals, color=[colours[name] for name in algorithms])
    seconds_axis.invert_yaxis()  # first algorithm on top, as in the legends
    seconds_axis.set_title("Time per algorithm, all sizes")
    seconds_axis.set_xlabel("Seconds")
    seconds_axis.grid(True, axis="x", alpha=0.3)
    size = report.winner.size
    traces: list[float] = []
    for r in report.results:
        if r.size == size and r.trace:
            evaluations, best = zip(*r.trace, strict=True)
            convergence.step(
                evaluations, best, where="post", color=colours[r.algorithm], marker="o", markersize=3, label=r.algorithm
            )
            traces += list(best)
    convergence.set_title(f"Convergence at the winner's size ({size})")
    convergence.set_xlabel("Evaluations")
    convergence.set_ylabel("Best fitness so far")
    _fitness_axis(convergence, traces)
    convergence.grid(True, alpha=0.3)
    convergence.legend(fontsize=8, loc="best")
    _save(figure, path)


def zone_equity_curves(report: RunReport, path: Path) -> None:
    """Zone mode: per zone, its own best portfolio's equity beside the overall winner's in that zone."""
    runs = report.zone_runs or ()
    columns = min(len(runs), 2) or 1
    rows = -(-len(runs) // columns) or 1
    figure = Figure(figsize=(ZONE_PANEL_IN[0] * columns, ZONE_PANEL_IN[1] * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    _margins(figure, top_in=0.8)  # the suptitle above the panels' titles
    overall = {z.zone: z for z in report.zone_breakdown or ()}
    for axis, run in zip(axes, runs, strict=False):
        days = np.array(run.dates, dtype="datetime64[D]")
        axis.plot(
            days,
            np.cumsum(run.daily),
            color="C0",
            linewidth=1.8,
            label=f"zone best: {run.winner.algorithm}, size {run.winner.size}",
        )
        theirs = overall.get(run.zone)
        if theirs is not None and theirs.dates == run.dates:
            axis.plot(
                days,
                np.cumsum(theirs.daily),
                color="black",
                linewidth=1.2,
                linestyle="--",
                label=f"overall winner in this zone (ROI {theirs.metrics['total_roi']:,.0f})",
            )
        axis.set_title(f"Zone {_plain(run.zone)} (weight {run.weight:.2f}, {run.days} days)")
        axis.set_ylabel("Cumulative P&L (currency)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")
        _date_axis(axis)
    for axis in axes[len(runs) :]:
        axis.set_visible(False)
    # 0.1 in below the top at any height (the default y = 0.98 of the height would reach the panels).
    figure.suptitle(
        f"Each zone's best portfolio and the overall winner — job {report.job_id}",
        y=1 - 0.1 / figure.get_size_inches()[1],
        va="top",
    )
    _save(figure, path)


WINDOW_COLOURS = {"training": "#dbe9f6", "selection": "#fdf1c7", "test": "#dcefd9"}


def validation_equity(report: RunReport, path: Path) -> None:
    """In-sample vs out-of-sample equity: the chosen portfolio and the highest in-sample fitness.

    Top: every day, the last fold's windows shaded (training, selection, test). Bottom: only the
    out-of-sample days (each walk-forward fold's test window, joined), where the two choices part.
    """
    v = report.validation
    validated = v is not None and v.ran and bool(v.oos_daily)
    figure = Figure(figsize=EQUITY_SIZE_IN)
    axes = figure.subplots(2, 1, height_ratios=(3, 2)) if validated else [figure.subplots(1, 1)]
    _margins(figure)
    _every_day_panel(axes[0], report, validated)
    if validated and v is not None:
        _out_of_sample_panel(axes[1], v)
    _save(figure, path)


def _every_day_panel(top: Axes, report: RunReport, validated: bool) -> None:
    """Both portfolios' equity on every day: the last fold's windows shaded when validated, else why not."""
    v = report.validation
    days = _dates(report)
    w, other = report.winner, report.in_sample_winner
    top.plot(
        days,
        np.cumsum(report.winner_daily),
        color="black",
        linewidth=2.2,
        label=f"chosen: {w.algorithm}, size {w.size}",
    )
    if other is not None and report.in_sample_winner_daily and other.members != w.members:
        top.plot(
            days,
            np.cumsum(report.in_sample_winner_daily),
            color="C3",
            linewidth=1.4,
            label=f"highest in-sample fitness: {other.algorithm}, size {other.size}",
        )
    if validated and v is not None:
        _shade_windows(top, v.folds[-1].windows)
        top.set_title(f"Chosen on validation vs highest in-sample fitness — job {report.job_id}")
    else:
        why = v.note if v is not None and v.note else "VALIDATION.method = none"
        top.set_title(_plain(f"Not validated ({why}): every day is in sample — job {report.job_id}"), fontsize=10)
    top.set_ylabel("Cumulative P&L (currency)")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    _date_axis(top)


def _shade_windows(axis: Axes, windows: Sequence[Window]) -> None:
    """Each window (training, selection, test) shaded in its colour, from its first day to the next one's."""
    edges = [date2num(np.datetime64(x.first_date)) for x in windows] + [date2num(np.datetime64(windows[-1].last_date))]
    for window, start, stop in zip(windows, edges[:-1], edges[1:], strict=True):
        axis.axvspan(start, stop, color=WINDOW_COLOURS[window.name], zorder=0, label=f"{window.name} window")


def _out_of_sample_panel(bottom: Axes, v: ValidationReport) -> None:
    """Both choices' equity on the out-of-sample days only, a dotted line where each later fold's test starts."""
    oos_days = np.array(v.oos_dates, dtype="datetime64[D]")
    steps = np.arange(len(oos_days))
    bottom.plot(steps, np.cumsum(v.oos_daily), color="black", linewidth=2.0, label="chosen on validation")
    bottom.plot(steps, np.cumsum(v.in_sample_oos_daily), color="C3", linewidth=1.4, label="highest in-sample fitness")
    for f in v.folds[1:]:
        first = np.datetime64(next(x for x in f.windows if x.name == "test").first_date)
        bottom.axvline(int(np.searchsorted(oos_days, first)) - 0.5, color="grey", linestyle=":", linewidth=1.0)
    bottom.set_title(
        f"Out of sample only: {len(oos_days)} days nothing that chose saw"
        + (f", {len(v.folds)} folds" if len(v.folds) > 1 else "")
    )
    bottom.set_xlabel("Out-of-sample trading day")
    bottom.set_ylabel("Cumulative P&L (currency)")
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper left", fontsize=8)


def _date_axis(axis: object) -> None:
    locator = AutoDateLocator()
    axis.xaxis.set_major_locator(locator)  # type: ignore[attr-defined]
    axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[attr-defined]
