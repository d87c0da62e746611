"""Commands that run the optimiser here: run, generate, demo, bench, version."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import OUTPUT_ERRORS_EXIT, ConfigOpt, SetOpt, app, config_from, err, fail, out, print_validation
from errors import ConfigError, HeavyOptError
from optimizer import __version__


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Strategy P&L CSV: Date, optional metadata, one column per strategy.")],
    config_file: ConfigOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for run folders [OUTPUT.dir].")] = None,
    seed: Annotated[int | None, typer.Option(help="Job seed [GENERAL.seed].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the DuckDB file lives [DATABASE.data_dir].")] = None,
    sets: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Optimise one CSV: load → ULTA → correlation → search every size → validation → winner → run folder."""
    from optimizer.pipeline import run_job

    extra = []
    if seed is not None:
        extra.append(f"GENERAL.seed={seed}")
    if data_dir is not None:
        extra.append(f"DATABASE.data_dir={data_dir}")
    if out_dir is not None:
        extra.append(f"OUTPUT.dir={out_dir}")
    try:
        config = config_from(config_file, sets, extra)
        progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err,
            disable=quiet or not err.is_terminal,
            transient=True,
        )
        with progress:
            task = progress.add_task("load", total=100)

            def report(step: str, pct: float) -> None:
                progress.update(task, description=step, completed=pct)

            outcome = run_job(file, config, out_dir=Path(config.output.dir), progress=report)
    except HeavyOptError as exc:
        raise fail(exc) from None
    w = outcome.report.winner
    metrics = w.metrics
    out.print(
        f"winner: size {w.size}, {w.algorithm}, fitness {w.fitness:.6g} "
        f"(ROI {metrics['total_roi']:,.2f}, max DD {metrics['max_drawdown']:,.6g}, "
        f"avg corr {metrics['avg_correlation']:.3f})",
        highlight=False,
        soft_wrap=True,
    )
    from outputs.validation import validation_summary

    print_validation(validation_summary(outcome.report))
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in outcome.report.timings_s)
    out.print(f"steps: {timings}", highlight=False, soft_wrap=True)
    out.print(str(outcome.run_dir), highlight=False, soft_wrap=True)
    for line in outcome.writer_errors:
        err.print(f"heavyopt: output failed: {line} (see error_log.txt in the run folder)", markup=False)
    if outcome.writer_errors:
        raise typer.Exit(OUTPUT_ERRORS_EXIT)


@app.command()
def generate(
    file: Annotated[Path, typer.Argument(help="CSV to write.")],
    strategies: Annotated[int, typer.Option(min=1, help="Number of strategy columns.")] = 25_544,
    days: Annotated[int, typer.Option(min=2, help="Number of trading days (rows).")] = 82,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same file.")] = 1,
) -> None:
    """Write a realistic synthetic P&L CSV calibrated to the production statistics."""
    from optimizer.synthetic import write_csv

    path = write_csv(file, strategies, days, seed)
    out.print(f"wrote {path} ({strategies} strategies × {days} days, {path.stat().st_size / 1e6:.1f} MB)")


@app.command()
def demo(
    work_dir: Annotated[Path, typer.Option("--dir", help="Where to put the demo CSV and run folders.")] = Path("demo"),
    sets: SetOpt = None,
) -> None:
    """Generate a production-shape file (25,544 × 82) and optimise it with the defaults."""
    from optimizer.synthetic import write_csv

    work_dir.mkdir(parents=True, exist_ok=True)
    csv_path = work_dir / "demo_strategies.csv"
    if not csv_path.exists():
        write_csv(csv_path, 25_544, 82, seed=1)
        out.print(f"generated {csv_path}")
    run(csv_path, None, work_dir / "output", None, work_dir / "data", sets, False)


@app.command()
def bench(
    strategies: Annotated[int, typer.Option(min=100)] = 25_544,
    days: Annotated[int, typer.Option(min=10)] = 82,
    seed: Annotated[int, typer.Option(min=0)] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Threads for the multi-threaded batch figure.")] = 2,
    seeds: Annotated[int, typer.Option(min=0, help="Seeds per algorithm in the quality table (0 = skip it).")] = 5,
    budget: Annotated[int, typer.Option(min=1, help="Evaluations per algorithm in the quality table.")] = 10_000,
    metric: Annotated[str, typer.Option(help="Metric for the quality table.")] = "ratio",
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON.")] = None,
    with_sweep: Annotated[
        bool, typer.Option("--sweep", help="Also time whole jobs (sizes 35..100) on NumPy and, with a GPU, CuPy.")
    ] = False,
    landscapes: Annotated[
        bool,
        typer.Option(
            "--landscapes",
            help="Instead of the timings: each algorithm's share of the planted fitness on the planted "
            "landscapes (--seeds landscapes of each shape, at least 1; --budget evaluations), guided and "
            "blind. The other options do not apply.",
        ),
    ] = False,
) -> None:
    """Time every step on a generated file beside same-run baselines; then compare the algorithms.

    With a working GPU (CuPy) the GPU figures are measured too, beside the NumPy ones."""
    import dataclasses
    import os
    import platform

    from algorithms.fitness import METRICS
    from optimizer.bench import quality, run_bench

    if metric not in METRICS:
        raise fail(ConfigError(f"bench: --metric {metric!r}: must be one of {', '.join(METRICS)}"))
    if landscapes:
        from optimizer.landscapes import shares

        found = shares(max(seeds, 1), budget)
        Console(width=max(out.width, 160)).print(_landscape_table(found, budget))
        if json_file:
            json_file.write_text(
                json.dumps({"budget": budget, "landscapes": [dataclasses.asdict(r) for r in found]}, indent=2) + "\n"
            )
        return
    from optimizer.bench import sweep

    rows, problem = run_bench(strategies, days, seed, threads, Path(tempfile.gettempdir()))
    if with_sweep:
        rows += sweep(strategies, days, seed, Path(tempfile.gettempdir()))
    wide = Console(width=max(out.width, 132))
    wide.print(
        _steps_table(
            rows, f"heavyopt bench: {strategies} × {days}, {os.cpu_count()} CPUs, {platform.processor() or ''}"
        )
    )
    scores: list[Any] = []
    blind: list[Any] = []
    if seeds:
        objective = dataclasses.replace(problem.objective, metric=metric)
        measured = dataclasses.replace(problem, objective=objective)
        # Before/after in one run: guided (the default) and blind (OPTIMIZATION.guided = false).
        scores = quality(measured.guided(True), seeds, budget)
        blind = quality(measured.guided(False), seeds, budget)
        wide.print(_quality_table(scores, blind, metric, problem.size, budget, seeds))
    if json_file:
        json_file.write_text(
            json.dumps(
                _bench_json(rows, scores, blind, strategies, days, seed, threads, metric, problem.size, budget, seeds),
                indent=2,
            )
            + "\n"
        )


def _bench_json(
    rows: list[Any],
    scores: list[Any],
    blind: list[Any],
    strategies: int,
    days: int,
    seed: int,
    threads: int,
    metric: str,
    size: int,
    budget: int,
    seeds: int,
) -> dict[str, Any]:
    """``heavyopt bench --json``: the figures of this run and where they were measured."""
    import dataclasses
    import os
    import platform

    return {
        "strategies": strategies,
        "days": days,
        "seed": seed,
        "threads": threads,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "rows": [{**r.__dict__, "speedup": r.speedup} for r in rows],
        "quality": {
            "metric": metric,
            "size": size,
            "budget": budget,
            "seeds": seeds,
            "algorithms": [dataclasses.asdict(q) for q in scores],
            "blind": [dataclasses.asdict(q) for q in blind],
        },
    }


def _landscape_table(found: list[Any], budget: int) -> Table:
    """One row per landscape and seed: each algorithm's share of the planted fitness, guided."""
    names = list(found[0].guided)
    table = Table(
        title=f"planted landscapes: best fitness as a share of the planted portfolio's, {budget:,} evaluations, "
        "guided (default); the best of the eight guided and blind"
    )
    table.add_column("landscape")
    table.add_column("seed", justify="right")
    for name in names:
        table.add_column(_SHORT.get(name, name), justify="right")
    table.add_column("best", justify="right")
    table.add_column("best blind", justify="right")
    for row in found:
        shape = ", ".join(f"{k} {v:,}" for k, v in row.shape.items())
        table.add_row(
            row.landscape + (f" ({shape})" if shape else ""),
            str(row.seed),
            *(f"{row.guided[name]:.1%}" for name in names),
            f"{max(row.guided.values()):.1%}",
            f"{max(row.blind.values()):.1%}",
        )
    return table


_SHORT = {
    "genetic_algorithm": "GA",
    "particle_swarm": "PSO",
    "simulated_annealing": "SA",
    "differential_evolution": "DE",
    "ant_colony": "ACO",
    "hill_climbing": "HC",
    "bayesian_optimization": "BO",
    "random_search": "RS",
}


def _steps_table(rows: list[Any], title: str) -> Table:
    table = Table(title=title)
    for col in ("step", "seconds", "rate", "baseline", "speed-up"):
        table.add_column(col, justify="left" if col in ("step", "baseline") else "right")
    for r in rows:
        rate = f"{r.rate:,.0f} {r.unit}" if r.rate is not None else ""
        base = f"{r.baseline} {r.baseline_seconds:.3f}s" if r.baseline_seconds is not None else ""
        speed = f"{r.speedup:.1f}×" if r.speedup is not None else ""
        table.add_row(r.step, f"{r.seconds:.3f}", rate, base, speed)
    return table


def _quality_table(scores: list[Any], blind: list[Any], metric: str, size: int, budget: int, seeds: int) -> Table:
    """Guided (the default) beside blind (OPTIMIZATION.guided = false), from one run."""
    table = Table(
        title=f"quality: best fitness ({metric} − 10·avgcorr), n = {size}, "
        f"{budget:,} evaluations, {seeds} seeds, ULTA on; guided (default) and blind (OPTIMIZATION.guided=false)"
    )
    for col in ("algorithm", "mean", "std", "min", "median", "max", "s/run", "blind mean", "blind s/run"):
        table.add_column(col, justify="left" if col == "algorithm" else "right")
    for q, b in zip(scores, blind, strict=True):
        table.add_row(
            q.algorithm,
            *(f"{v:,.4g}" for v in (q.mean, q.std, q.minimum, q.median, q.maximum)),
            f"{q.seconds:.3f}",
            f"{b.mean:,.4g}",
            f"{b.seconds:.3f}",
        )
    return table


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"heavyopt {__version__} (Python {sys.version.split()[0]})")
