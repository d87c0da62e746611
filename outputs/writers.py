"""One writer per output file, registered in ``WRITERS``; the run folder appears whole or not at all."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from atomicio import atomic_path, fsync_dir
from errors import JobFailed
from outputs import charts, html, tables, text, validation
from outputs.report import RunReport, SinceLastRun, Winner

log = logging.getLogger("heavyopt")

SCHEMA_VERSION = 3  # 2: the validation block, in_sample_winner; 3: skipped_algorithms removed (always empty)


def write_atomic(path: Path, content: str) -> None:
    """Write ``content`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(content, encoding="utf-8", newline="\n")


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
        "fallbacks": dict(report.fallbacks),
        "timings_s": dict(report.timings_s),
        "peak_rss_mb": report.peak_rss_mb,
        "ulta": {"enabled": report.ulta_enabled, "inverted": len(report.inversions)},
        "correlation": {
            "universe_average": report.universe_average_correlation,
            "top_pairs": [asdict(p) for p in report.top_pairs],
        },
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
                "selection_sharpe": r.selection_sharpe,
                "test_sharpe": r.test_sharpe,
                "error": r.error,
            }
            for r in report.results
        ],
        "winner": _winner(report.winner),
        "contributions": [asdict(c) for c in report.contributions],
        "book": report.book,
        "since_last_run": None if report.since_last_run is None else since_last_run_json(report.since_last_run),
        "in_sample_winner": _winner(report.in_sample_winner or report.winner),
        "validation": None if report.validation is None else validation.validation_json(report.validation),
        "zones": _zones(report),
    }


def since_last_run_json(change: SinceLastRun) -> dict[str, Any]:
    doc = asdict(change)
    doc["figures"] = [{"figure": name, "before": before, "now": now} for name, before, now in change.figures]
    return doc


def _winner(winner: Winner) -> dict[str, Any]:
    return {k: v for k, v in asdict(winner).items() if k != "members"}


def _zones(report: RunReport) -> dict[str, Any] | None:
    """Zone figures: null without a Zone column; ``runs`` only in zone mode."""
    if report.zone_breakdown is None:
        return None
    return {
        "excluded_rows": report.input.excluded_rows,
        "weights": dict(report.zone_weights) or None,
        "winner_by_zone": [{"zone": z.zone, "days": z.days, "metrics": z.metrics} for z in report.zone_breakdown],
        "runs": None
        if report.zone_runs is None
        else [
            {
                "zone": run.zone,
                "weight": run.weight,
                "days": run.days,
                "inverted": run.inverted,
                "winner": _winner(run.winner),
                "results": [
                    {k: getattr(r, k) for k in ("size", "algorithm", "status", "fitness", "evaluations", "seconds")}
                    for r in run.results
                ],
            }
            for run in report.zone_runs
        ],
    }


def _text_writer(name: str, render: Callable[[RunReport], str]) -> Callable[[RunReport, Path], None]:
    def write(report: RunReport, folder: Path) -> None:
        write_atomic(folder / name, render(report))

    return write


def _file_writer(name: str, draw: Callable[[RunReport, Path], None]) -> Callable[[RunReport, Path], None]:
    def write(report: RunReport, folder: Path) -> None:
        with atomic_path(folder / name) as tmp:
            draw(report, tmp)

    return write


def write_workbook(report: RunReport, folder: Path) -> None:
    """``optimization_summary.xlsx``: a module-level function, so a worker process can be handed it."""
    with atomic_path(folder / "optimization_summary.xlsx") as tmp:
        tables.optimization_workbook(report, tmp)


def write_execution_summary(report: RunReport, folder: Path) -> None:
    content = json.dumps(execution_summary(report), indent=2, ensure_ascii=False, allow_nan=False)
    write_atomic(folder / "execution_summary.json", content + "\n")


def write_best_portfolios(report: RunReport, folder: Path) -> None:
    """``best_portfolio_size<n>.txt`` per size."""
    for size, best in sorted(report.best_by_size().items()):
        write_atomic(folder / f"best_portfolio_size{size}.txt", text.best_portfolio(report, best))


def write_zone_chart(report: RunReport, folder: Path) -> None:
    """Only in zone mode: each zone's best portfolio beside the overall winner."""
    if report.zone_runs:
        _file_writer("zone_equity_curves.png", charts.zone_equity_curves)(report, folder)


# The eight files of brief §5 and validation's two, then the predecessor's.
# error_log.txt is written last by write_run_folder.
def write_report_page(report: RunReport, folder: Path) -> None:
    write_atomic(folder / "report.html", html.report_page(report, folder))


WRITERS: dict[str, Callable[[RunReport, Path], None]] = {
    "ulta_inversion_report.md": _text_writer("ulta_inversion_report.md", text.ulta_inversion_report),
    "zone_analysis_report.md": _text_writer("zone_analysis_report.md", text.zone_analysis_report),
    "performance_report.txt": _text_writer("performance_report.txt", text.performance_report),
    "portfolio_composition.csv": _text_writer("portfolio_composition.csv", tables.portfolio_composition),
    "optimization_summary.xlsx": write_workbook,
    "execution_summary.json": write_execution_summary,
    "equity_curves.png": _file_writer("equity_curves.png", charts.equity_curves),
    "validation_report.md": _text_writer("validation_report.md", validation.validation_report),
    "validation_equity.png": _file_writer("validation_equity.png", charts.validation_equity),
    "algorithm_comparison.png": _file_writer("algorithm_comparison.png", charts.algorithm_comparison),
    "best_portfolio_size<n>.txt": write_best_portfolios,
    "strategy_metrics.csv": _text_writer("strategy_metrics.csv", tables.strategy_metrics),
    "optimization_summary.txt": _text_writer("optimization_summary.txt", text.optimization_summary),
    "zone_equity_curves.png": write_zone_chart,
    "report.html": write_report_page,  # LAST: it embeds the charts and links every other file
}

# Written by another process beside the rest when the job offers one: the workbook takes about
# 2.6 s at 25,544 strategies (two thirds of all the files' time), all of it in Python.
OFFLOADED = ("optimization_summary.xlsx",)
# Written once every other file is, the offloaded ones included: the page links the files it finds.
LAST = ("report.html",)
OFFLOADED_WAIT_S = 60.0  # how long a failing job waits for an offloaded writer before removing its folder

Offload = Callable[..., Future[Any] | None]


HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_PARTIAL = re.compile(r"^\.run_.+\.partial-(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)$")


def run_folder_name(report: RunReport, started: time.struct_time) -> str:
    return f"run_{time.strftime('%Y%m%d_%H%M%S', started)}_{report.job_id}"


def sweep_partial_folders(out_dir: Path) -> list[Path]:
    """Delete hidden partial run folders left by killed jobs of this host.

    A folder is named after the host and process writing it; only this host's folders whose
    process no longer exists are removed, so a job on another machine writing to the same
    share is never touched (a reused pid only delays the sweep).
    """
    removed = []
    for entry in out_dir.glob(".run_*.partial-*"):
        match = _PARTIAL.match(entry.name)
        if match is None or not entry.is_dir() or match["host"] != HOST or _alive(int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` … if a run folder of that name exists (same job id, same second)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def write_run_folder(
    report: RunReport, out_dir: Path, started: time.struct_time, offload: Offload | None = None
) -> tuple[Path, list[str]]:
    """Write every registered output into ``out_dir/run_<stamp>_<job_id>/``.

    The files are written into a hidden temporary folder that is flushed to disk and renamed
    into place only when every writer has run, so a reader never sees a partial run folder,
    and a run folder that is visible survives a power loss; hidden folders left by killed
    jobs are swept first. A failing writer is recorded (returned and written to
    ``error_log.txt``); the others still run. A full disk is not such a failure: the folder
    is removed and the job fails (:class:`JobFailed`), as every later file would fail too.

    ``offload(writer, report, folder)``, when given, runs a writer in another process and returns
    its future (None: it cannot; the writer then runs here): the ``OFFLOADED`` writers go there
    first and the others run here meanwhile; the ``LAST`` ones (the page) run once they are done.

    Returns
    -------
    The run folder, and one line per failed writer.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_partial_folders(out_dir)
    final = _unused(out_dir / run_folder_name(report, started))
    tmp = out_dir / f".{final.name}.partial-{HOST}-{os.getpid()}"
    tmp.mkdir()
    errors: list[str] = []
    elsewhere: dict[str, Future[Any]] = {}
    try:
        if offload is not None:
            for name in OFFLOADED:
                future = offload(WRITERS[name], report, tmp)
                if future is not None:
                    elsewhere[name] = future
        for name, writer in WRITERS.items():
            if name not in elsewhere and name not in LAST:
                _write_one(name, partial(writer, report, tmp), out_dir, errors)
        for name, future in elsewhere.items():
            _write_one(name, partial(_result_or_here, name, future, report, tmp), out_dir, errors)
        for name in LAST:
            _write_one(name, partial(WRITERS[name], report, tmp), out_dir, errors)
        try:
            write_atomic(tmp / "error_log.txt", text.error_log(errors))
            _fsync_tree(tmp)
        except OSError as exc:
            _raise_if_full(exc, out_dir, "error_log.txt")
            raise
        os.rename(tmp, final)
        fsync_dir(out_dir)
    except BaseException:
        # A worker may still be writing into the folder: it is done (or stopped) before the folder goes.
        for future in elsewhere.values():
            future.cancel()
        wait(elsewhere.values(), timeout=OFFLOADED_WAIT_S)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, errors


def _write_one(name: str, write: Callable[[], None], out_dir: Path, errors: list[str]) -> None:
    try:
        write()
    except Exception as exc:  # noqa: BLE001 - one failing file must not cost the others
        _raise_if_full(exc, out_dir, name)
        errors.append(f"{name}: {type(exc).__name__}: {exc}")


def _result_or_here(name: str, future: Future[Any], report: RunReport, folder: Path) -> None:
    """Wait for an offloaded writer. If it failed there for any reason (its process died, the call
    could not be sent, the writer raised), the file is written here: a writer's own error is then
    raised here, as for any writer."""
    try:
        future.result()
    except Exception as exc:  # noqa: BLE001 - every failure there gets a second, local try
        log.warning("%s: not written by the worker process (%s: %s); writing it here", name, type(exc).__name__, exc)
        # A worker killed mid-file leaves its temporary file; every writer here has finished by now.
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        WRITERS[name](report, folder)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _raise_if_full(exc: BaseException, out_dir: Path, name: str) -> None:
    """A file that failed for want of space fails the job: no run folder at all, rather than a partial one."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        raise JobFailed(
            f"job failed: no space left in {out_dir} while writing {name} ({exc.strerror}); no run folder was "
            "published. Free space there (or ask the operator to) and submit the job again"
        ) from None


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a freshly written folder, then the folder itself."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(folder)
