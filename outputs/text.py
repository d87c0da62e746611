"""Markdown and plain-text reports, each a pure function of the frozen report.

Everything that differs between two runs of the same job with the same seed (the clock,
durations, memory) is kept in one final "Run measurements" section, so the rest of each
file is byte-identical run to run.
"""

from __future__ import annotations

from outputs.format import METRIC_LABELS, header, markdown_cell, markdown_code, money, number
from outputs.report import AlgorithmResult, RunReport, ZoneRun
from outputs.validation import headline, training_window
from outputs.validation import report_lines as validation_lines

MEASUREMENTS_MARKER = "== Run measurements (these differ from run to run) =="


def ulta_inversion_report(report: RunReport) -> str:
    lines = header(report, "ULTA inversion report")
    total = report.input.strategies
    if not report.ulta_enabled:
        lines += ["ULTA was switched off (`OPTIMIZATION.apply_ulta_logic = False`): no strategy was inverted.", ""]
        return "\n".join(lines)
    rows = sorted(report.inversions, key=lambda inv: (inv.original_total, inv.name))
    window = training_window(report)
    period = (
        "the period"
        if window is None
        else f"the training window (the first {window[0]} days, to {window[1]}; the test days did not count)"
    )
    lines += [
        f"**{len(rows):,} of {total:,} strategies** ({len(rows) / max(total, 1):.1%}) lost money over {period} and "
        "were inverted: every day's P&L multiplied by −1, the strategy renamed `<name>_inv`.",
        "",
        "Rule: invert when the total P&L is negative (beyond rounding: total < −10⁻⁹ × the sum of absolute daily "
        f"P&L). Totals, worst day and the ratio total / |worst day| describe the original series over {period}.",
        "",
    ]
    if report.zone_runs is not None:
        lines += [
            "Zone mode: the decision was made on the zone-weighted combination of each date; the figures below are "
            "the input's own daily totals (all zones summed). Each zone's own inversions are counted in the zone "
            "report.",
            "",
        ]
    if not rows:
        return "\n".join([*lines, "No strategy had a negative total.", ""])
    lines += [
        "| # | strategy | original total | inverted total | worst day | total / \\|worst day\\| |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for k, inv in enumerate(rows, start=1):
        lines.append(
            f"| {k} | {markdown_cell(inv.name)} | {money(inv.original_total)} | {money(inv.inverted_total)} | "
            f"{money(inv.worst_day)} | {inv.total_to_worst_day:.4f} |"
        )
    return "\n".join(lines) + "\n"


def zone_analysis_report(report: RunReport) -> str:
    lines = header(report, "Zone analysis")
    zones = report.zone_breakdown
    if zones is None:
        lines += [
            f"The input {markdown_code(report.input.file)} has no `Zone` column, so there are no zones to analyse. "
            "The portfolio was optimised on whole trading days.",
            "",
        ]
        return "\n".join(lines)
    w = report.winner
    excluded = report.input.excluded_rows
    lines += [
        f"Zones in the input: {', '.join(markdown_code(z.zone) for z in zones)}. "
        + (
            f"{excluded:,} rows with an empty or `Outside Market` zone were left out."
            if excluded
            else "No row had an empty or `Outside Market` zone."
        ),
        "",
    ]
    if report.zone_runs is not None:
        lines += _zone_runs(report)
        basis = "the zone-weighted combination of each date (weights above)"
    else:
        basis = "whole days (each date's zones summed); zone mode (`OPTIMIZATION.zone_optimization_enabled`) was off"
    lines += [
        "## The overall winner in each zone",
        "",
        f"The winning portfolio (size {w.size}, {w.algorithm}) was optimised on {basis}. "
        "Below is how it performed in each zone on its own.",
        "",
        "| zone | rows | total ROI | max drawdown | win % | profit factor | sharpe | VaR 95% |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for z in zones:
        m = z.metrics
        lines.append(
            f"| {markdown_cell(z.zone)} | {z.days} | {money(m['total_roi'])} | {money(m['max_drawdown'])} | "
            f"{m['win_percentage']:.1f} | {number(m['profit_factor'])} | {number(m['sharpe_ratio'])} | "
            f"{money(m['var_95'])} |"
        )
    return "\n".join(lines) + "\n"


def _zone_runs(report: RunReport) -> list[str]:
    """Zone mode: each zone's own best portfolio, and its strategies."""
    runs = report.zone_runs or ()
    sizes = sorted({r.size for run in runs for r in run.results})
    lines = [
        "## Each zone's own best portfolio",
        "",
        "Each zone optimised on its own rows — its own ULTA, correlation and search, sizes "
        f"{sizes[0]}..{sizes[-1]} (`ZONE_SPECIFIC_OPTIMIZATION`, capped at the strategies available)."
        if sizes
        else "Each zone optimised on its own rows.",
        "",
        "| zone | weight | days | inverted | size | algorithm | fitness | total ROI | max drawdown | win % | sharpe |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        m = run.winner.metrics
        lines.append(
            f"| {markdown_cell(run.zone)} | {run.weight:.4f} | {run.days} | {run.inverted} | {run.winner.size} | "
            f"{run.winner.algorithm} | {number(run.winner.fitness)} | {money(m['total_roi'])} | "
            f"{money(m['max_drawdown'])} | {m['win_percentage']:.1f} | {number(m['sharpe_ratio'])} |"
        )
    lines += ["", *(_zone_validation(run) for run in runs)]
    for run in runs:
        lines += ["", f"### Zone {markdown_cell(run.zone)}: {len(run.winner.strategies)} strategies", ""]
        lines += [f"{rank}. {markdown_cell(name)}" for rank, name in enumerate(run.winner.strategies, start=1)]
    return [*lines, ""]


def _zone_validation(run: ZoneRun) -> str:
    """One line: how the zone's own choice held up on its own test days, or why it was not validated."""
    v = run.validation
    if v is None or not v.ran or v.oos_metrics is None:
        why = v.note if v is not None and v.note else "VALIDATION.method = none"
        return f"- Zone {markdown_cell(run.zone)}: not validated ({markdown_cell(why)})."
    return (
        f"- Zone {markdown_cell(run.zone)}: Sharpe {run.winner.metrics['sharpe_ratio']:,.2f} in sample, "
        f"{v.oos_metrics['sharpe_ratio']:,.2f} on its {v.test_days} test days; {v.verdict}."
    )


def _grid(report: RunReport) -> list[str]:
    """Fitness by size (rows) × algorithm (columns)."""
    algorithms = list(dict.fromkeys(r.algorithm for r in report.results))
    cells: dict[tuple[int, str], AlgorithmResult] = {(r.size, r.algorithm): r for r in report.results}
    widths = [max(len(a), 12) for a in algorithms]
    out = ["size  " + "  ".join(a.rjust(wd) for a, wd in zip(algorithms, widths, strict=True))]
    for size in sorted({r.size for r in report.results}):
        row = []
        for a, wd in zip(algorithms, widths, strict=True):
            r = cells.get((size, a))
            row.append(("failed" if r is None or r.status != "ok" else number(r.fitness)).rjust(wd))
        out.append(f"{size:>4}  " + "  ".join(row))
    return out


def _measurements(report: RunReport) -> list[str]:
    lines = ["", MEASUREMENTS_MARKER, f"Created at:            {report.created_at}"]
    lines += [f"Step {step + ':':<17}{seconds:8.3f} s" for step, seconds in report.timings_s]
    per_algorithm: dict[str, float] = {}
    for r in report.results:
        per_algorithm[r.algorithm] = per_algorithm.get(r.algorithm, 0.0) + r.seconds
    lines += [f"Algorithm {name + ':':<23}{seconds:8.3f} s over all sizes" for name, seconds in per_algorithm.items()]
    lines.append(f"Peak memory:           {report.peak_rss_mb:,.0f} MB")
    return lines


def performance_report(report: RunReport) -> str:
    i, w, cfg = report.input, report.winner, report.config
    penalty = cfg["OPTIMIZATION"]["correlation_penalty_weight"]
    sizes = sorted({r.size for r in report.results})
    lines = [
        "HEAVY OPTIMIZER — PERFORMANCE REPORT",
        "=" * 36,
        f"Job:                   {report.job_id}",
        f"Heavy Optimizer:       {report.version}",
        f"Input:                 {i.file} (sha256 {i.sha256[:16]}…)",
        f"Data:                  {i.rows:,} rows"
        + (f" ({i.excluded_rows:,} excluded: empty or Outside Market zone)" if i.excluded_rows else "")
        + f", {i.days} days ({i.first_date} – {i.last_date}), {i.strategies:,} strategies, "
        f"{i.blank_cells:,} blank cells",
        "",
        "PARAMETERS",
        f"Metric:                {report.metric} − {penalty:g} × avg correlation",
        f"Drawdown threshold:    {cfg['OPTIMIZATION']['drawdown_threshold']:g}",
        f"Portfolio sizes:       {sizes[0]}..{sizes[-1]}" if sizes else "Portfolio sizes:       none",
        f"Evaluation budget:     {cfg['OPTIMIZATION']['evaluation_budget']:,} per algorithm per size",
        f"Seed:                  {report.seed}",
        f"ULTA:                  {'on' if report.ulta_enabled else 'off'}, {len(report.inversions):,} inverted",
        f"Universe avg corr:     {report.universe_average_correlation:.4f}",
        f"Database:              {report.database}",
        f"Compute:               {report.compute['array_module']}"
        + (f" on {report.compute['device']}" if report.compute.get("device") else ""),
        *(f"Fell back ({what}):   {why}" for what, why in report.fallbacks.items()),
        "",
        "WINNER" + ("" if report.validation is None or not report.validation.ran else " (chosen on validation)"),
        f"Size {w.size}, {w.algorithm}, fitness {number(w.fitness)}"
        + (
            "" if report.validation is None or not report.validation.ran else " in sample; metrics on the training days"
        ),
        *(f"{label + ':':<30}{number(w.metrics[key])}" for key, label in METRIC_LABELS),
        "",
        f"STRATEGIES OF THE WINNER ({len(w.strategies)}, equal weights)",
        *(f"{rank:4d}. {name}" for rank, name in enumerate(w.strategies, start=1)),
        "",
        *validation_lines(report),
        "",
        "BEST FITNESS BY SIZE AND ALGORITHM (in sample)",
        *_grid(report),
    ]
    if report.zone_runs is not None:
        lines += ["", "ZONE MODE: the winner above optimised the zone-weighted combination; each zone's own best:"]
        lines += [
            f"zone {run.zone} (weight {run.weight:.4f}): size {run.winner.size}, {run.winner.algorithm}, "
            f"fitness {number(run.winner.fitness)}"
            for run in report.zone_runs
        ]
    failed = [r for r in report.results if r.status != "ok"]
    if failed:
        lines += ["", "FAILED RUNS", *(f"size {r.size}, {r.algorithm}: {r.error}" for r in failed)]
    return "\n".join(lines + _measurements(report)) + "\n"


def optimization_summary(report: RunReport) -> str:
    """The predecessor's one-page summary: the best portfolio of each size and the overall winner."""
    w = report.winner
    lines = [
        "OPTIMIZATION SUMMARY",
        f"Job {report.job_id}, input {report.input.file}, metric {report.metric}",
        "",
        f"Best overall: size {w.size}, {w.algorithm}, fitness {number(w.fitness)}, "
        f"ROI {money(w.metrics['total_roi'])}, max drawdown {money(w.metrics['max_drawdown'])}",
        headline(report),
        "",
        f"{'size':>4}  {'algorithm':<24}{'fitness':>16}",
    ]
    for size, best in sorted(report.best_by_size().items()):
        lines.append(f"{size:>4}  {best.algorithm:<24}{number(best.fitness):>16}")
    return "\n".join(lines + _measurements(report)) + "\n"


def best_portfolio(report: RunReport, best: AlgorithmResult) -> str:
    """``best_portfolio_size<n>.txt``, as the predecessor wrote them."""
    lines = [
        f"Best portfolio of size {best.size}",
        f"Job: {report.job_id}",
        f"Algorithm: {best.algorithm}",
        f"Fitness: {best.fitness:.6f} ({report.metric} − λ·average correlation)",
        f"Evaluations: {best.evaluations}",
        "",
        "Strategies:",
        *(f"{rank:4d}. {name}" for rank, name in enumerate(best.strategies, start=1)),
    ]
    return "\n".join(lines) + "\n"


def error_log(errors: list[str]) -> str:
    if not errors:
        return "No errors: every output file was written.\n"
    return "Output files that could not be written:\n" + "".join(f"- {line}\n" for line in errors)
