"""One writer per output file, registered in ``WRITERS``; the run folder appears whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from outputs.report import RunReport

SCHEMA_VERSION = 1


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def execution_summary(report: RunReport) -> dict[str, Any]:
    """The versioned ``execution_summary.json`` document (schema in docs/execution_summary.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": report.job_id,
        "created_at": report.created_at,
        "heavyopt_version": report.version,
        "input": asdict(report.input),
        "config": report.config,
        "seed": report.seed,
        "database": report.database,
        "compute": report.compute,
        "timings_s": dict(report.timings_s),
        "peak_rss_mb": report.peak_rss_mb,
        "ulta": {
            "enabled": report.ulta_enabled,
            "inverted": len(report.inversions),
            "strategies": [asdict(i) for i in report.inversions],
        },
        "correlation": {
            "universe_average": report.universe_average_correlation,
            "top_pairs": [asdict(p) for p in report.top_pairs],
        },
        "skipped_algorithms": list(report.skipped_algorithms),
        "results": [
            {
                "size": r.size,
                "algorithm": r.algorithm,
                "status": r.status,
                "fitness": r.fitness,
                "evaluations": r.evaluations,
                "seconds": r.seconds,
                "timed_out": r.timed_out,
                "spawn_key": list(r.spawn_key),
                "strategies": list(r.strategies),
                "trace": [list(point) for point in r.trace],
                "error": r.error,
            }
            for r in report.results
        ],
        "winner": asdict(report.winner),
    }


def write_execution_summary(report: RunReport, folder: Path) -> None:
    text = json.dumps(execution_summary(report), indent=2, ensure_ascii=False, allow_nan=False)
    write_atomic(folder / "execution_summary.json", text + "\n")


def write_best_portfolios(report: RunReport, folder: Path) -> None:
    """``best_portfolio_size<n>.txt`` per size, as the predecessor wrote them."""
    metric = report.config["GENERAL"]["metric"]
    for size, best in sorted(report.best_by_size().items()):
        lines = [
            f"Best portfolio of size {size}",
            f"Job: {report.job_id}",
            f"Algorithm: {best.algorithm}",
            f"Fitness: {best.fitness:.6f} ({metric} − λ·average correlation)",
            f"Evaluations: {best.evaluations}",
            "",
            "Strategies:",
            *(f"{rank:4d}. {name}" for rank, name in enumerate(best.strategies, start=1)),
        ]
        write_atomic(folder / f"best_portfolio_size{size}.txt", "\n".join(lines) + "\n")


WRITERS: dict[str, Callable[[RunReport, Path], None]] = {
    "execution_summary.json": write_execution_summary,
    "best_portfolio_size<n>.txt": write_best_portfolios,
}


def run_folder_name(report: RunReport, started: time.struct_time) -> str:
    return f"run_{time.strftime('%Y%m%d_%H%M%S', started)}_{report.job_id}"


def write_run_folder(report: RunReport, out_dir: Path, started: time.struct_time) -> tuple[Path, list[str]]:
    """Write every registered output into ``out_dir/run_<stamp>_<job_id>/``.

    The files are written into a hidden temporary folder that is renamed into place
    only when every writer has run, so a reader never sees a partial run folder. A
    failing writer is recorded (returned and written to ``error_log.txt``); the others
    still run.

    Returns
    -------
    The run folder, and one line per failed writer.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / run_folder_name(report, started)
    tmp = out_dir / f".{final.name}.partial-{os.getpid()}"
    tmp.mkdir()
    errors: list[str] = []
    try:
        for name, writer in WRITERS.items():
            try:
                writer(report, tmp)
            except Exception as exc:  # noqa: BLE001 - one failing file must not cost the others
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        if errors:
            write_atomic(tmp / "error_log.txt", "\n".join(errors) + "\n")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, errors
