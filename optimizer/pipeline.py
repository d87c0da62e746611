"""The orchestrator: load → store → ULTA (SQL) → fetch → correlation → search → winner → outputs.

The order is part of the contract (brief §3). Each step reports ``(step, percent)`` to an
optional progress callback and its wall time to the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.correlation import average_pairwise, hedge_stats, scan_pairs, unit_columns
from algorithms.problem import Problem
from dal import Backend, ResultRow
from dal.base import StoredPnl
from dal.fallback import FallbackBackend
from errors import HeavyOptError, InputError, JobFailed
from optimizer import validation
from optimizer.assembly import Optimised, build_report
from optimizer.cluster import open_executor
from optimizer.compute import ComputeChoice, GpuFailed, JobCompute, choose, on_gpu_or_host, release
from optimizer.config import Config
from optimizer.contributions import contributions
from optimizer.history import book_name, since_last_run
from optimizer.loader import Dataset, load_csv, sum_by_date
from optimizer.naming import new_job_id, windows_path
from optimizer.search import (
    check_any_portfolio,
    compute_threads,
    compute_workers,
    limit_strategies,
    objective,
    portfolio_sizes,
    search,
)
from optimizer.store import breaker_outcome, now, open_store, prune, record_failure
from optimizer.ulta import SUFFIX as ULTA_SUFFIX
from optimizer.ulta import ulta_mask
from optimizer.validation import Searched
from optimizer.windows import FOLD_KEY, Plan, Split
from optimizer.windows import plan as plan_windows
from optimizer.zones import check_zones, combine, exclude_rows, zone_mode, zone_names, zone_rows, zone_weights
from outputs import RunReport, write_run_folder
from outputs.report import AlgorithmResult, PairCorrelation, Winner, ZoneRun

ProgressFn = Callable[[str, float], None]
log = logging.getLogger("heavyopt")

# Where each step starts on the 0–100 progress scale; the search fills SEARCH_START..SEARCH_END.
STEP_START = {"load": 0.0, "store": 8.0, "ulta": 12.0, "fetch": 15.0, "correlation": 18.0, "search": 25.0}
SEARCH_END = 93.0  # the validation step follows the search
ZONES_START = 70.0  # in zone mode the combined search ends here and the zones fill the rest
CONTRIBUTIONS_START = 94.0  # why each member of the winner is in
OUTPUTS_START = 95.0
TOP_PAIRS = 20
HEDGE_PAIRS = 400  # offsetting pairs the scan keeps for the data-built candidates (validation only)


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    run_dir: Path
    report: RunReport
    writer_errors: tuple[str, ...]


class _Steps:
    """Times steps and forwards progress, never backwards (walk-forward folds repeat the steps)."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self._forward = progress or (lambda step, pct: None)
        self._last_pct = 0.0
        self.timings: dict[str, float] = {}

    def progress(self, step: str, pct: float) -> None:
        self._last_pct = max(self._last_pct, pct)
        self._forward(step, self._last_pct)

    @contextmanager
    def step(self, name: str, start_pct: float) -> Iterator[None]:
        self.progress(name, start_pct)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


def run_job(
    input_path: str | Path,
    config: Config,
    *,
    out_dir: str | Path,
    job_id: str | None = None,
    progress: ProgressFn | None = None,
) -> JobOutcome:
    """Run one job end to end and write its run folder.

    This is the per-job boundary: any failure after the database is open is recorded on
    the job (status ``failed`` and the reason) before it propagates, and an unexpected
    exception is turned into :class:`JobFailed` with its type and message. A run folder
    is only created after the results are stored, and never partially.

    Raises
    ------
    InputError, ConfigError, BackendUnavailable, JobFailed
        One-line messages for the user; no run folder exists then.
    """
    path = Path(input_path)
    job_id = job_id or new_job_id(path)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", job_id):  # also keeps zone sub-jobs (<job_id>.z<k>) apart
        raise ValueError(f"job id {job_id!r}: use letters, digits, '_' and '-' only")
    started_struct = time.localtime()
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    steps = _Steps(progress)
    if config.optimization.balanced_mode:
        log.warning("OPTIMIZATION.balanced_mode = true has no effect in this version (kept for config_zone.ini)")

    with steps.step("load", STEP_START["load"]):
        fmt, fewest = config.input.date_format, config.portfolio.min_size  # the limit: the queue's, for every run
        dataset = load_csv(path, date_format=fmt, min_strategies=fewest, max_input_mb=config.queue.max_input_mb)
    executor = open_executor(config, compute_workers(config))
    try:
        backend = open_store(config)
    except BaseException:
        executor.close()
        raise
    choice: ComputeChoice | None = None
    try:
        choice = choose(config, len(dataset.strategies), dataset.n_rows, config.portfolio.max_size)
        if not choice.on_gpu:  # (on a GPU the search runs in this process)
            executor.start()  # the search's worker processes start while the rows are stored and correlated
        compute = JobCompute(choice, executor)
        report, run_dir, errors = _run_recorded(
            job_id, path, dataset, config, backend, steps, created_at, compute, Path(out_dir), started_struct
        )
    except BaseException as exc:  # per-job boundary: record why, then report it
        failure = exc
        if isinstance(exc, Exception) and not isinstance(exc, HeavyOptError):
            failure = JobFailed(f"job failed: {type(exc).__name__}: {exc}")
        reason = str(failure) if isinstance(failure, Exception) else "interrupted"
        executor.close()
        record_failure(backend, job_id, reason)
        backend.close()
        if choice is not None:
            release(choice)  # the GPU's memory (again, if a failure mid-search already switched to NumPy)
        if failure is exc:
            raise
        raise failure from exc
    executor.close()
    prune(backend, config.database.keep_pnl_jobs)  # never raises: housekeeping
    backend.close()
    release(compute.choice)
    breaker_outcome(config, backend)
    steps.progress("done", 100.0)
    return JobOutcome(job_id, run_dir, report, tuple(errors))


def _run_recorded(
    job_id: str,
    path: Path,
    dataset: Dataset,
    config: Config,
    backend: Backend,
    steps: _Steps,
    created_at: str,
    compute: JobCompute,
    out_dir: Path,
    started_struct: time.struct_time,
) -> tuple[RunReport, Path, list[str]]:
    """The job on its open store: recorded running, optimised, results stored, run folder written,
    recorded completed. Returns the report, the run folder and the output files that failed."""
    backend.record_job(
        job_id,
        source=str(path),
        status="running",
        created_at=now(),
        n_rows=dataset.n_rows,
        n_strategies=len(dataset.strategies),
        seed=config.general.seed,
        config_json=json.dumps(config.to_dict()),
    )
    report = _run_stored(job_id, path, dataset, config, backend, steps, created_at, compute)
    backend.record_results(job_id, [_result_row(r) for r in report.results])
    report = dataclasses.replace(
        report,
        database=backend.url,
        fallbacks=_fallbacks(backend, compute),
        book=book_name(config.general.book, path.name),
        windows_output_dir=_windows_output_dir(config, out_dir) or "",
    )
    with steps.step("history", OUTPUTS_START):  # reads earlier run folders, maybe over SMB
        report = dataclasses.replace(report, since_last_run=since_last_run(out_dir.absolute(), report))
    report = dataclasses.replace(report, timings_s=tuple(steps.timings.items()))
    with steps.step("outputs", OUTPUTS_START):
        run_dir, errors = write_run_folder(report, out_dir.absolute(), started_struct, offload=compute.executor.submit)
    backend.record_job(
        job_id,
        status="completed",
        finished_at=now(),
        run_dir=str(run_dir),
        winner_json=_winner_json(report.winner),
        error="; ".join(f"output {line}" for line in errors),
    )
    return report, run_dir, list(errors)


def _windows_output_dir(config: Config, out_dir: Path) -> str | None:
    """``out_dir`` as Windows users reach it, when it is on the share and ``QUEUE.unc_root`` is set."""
    share, unc = config.queue.share, config.queue.unc_root
    if not share or not unc:
        return None
    try:
        relative = out_dir.resolve().relative_to(Path(share).resolve())
    except (OSError, ValueError):
        return None
    return windows_path(unc, relative.as_posix())


def _fallbacks(backend: Backend, compute: JobCompute) -> dict[str, str]:
    out = {}
    if isinstance(backend, FallbackBackend) and backend.fallback_reason:
        out["database"] = f"{backend.primary_url} → {backend.url}: {backend.fallback_reason}"
    if compute.fallback:
        out["compute"] = compute.fallback
    if compute.executor.fallback:
        out["executor"] = compute.executor.fallback
    return out


def _check_unique_after_ulta(path: Path, original: tuple[str, ...], renamed: tuple[str, ...]) -> None:
    """A column ``X_inv`` next to an inverted ``X`` would make two strategies of one name."""
    seen: dict[str, int] = {}
    for j, name in enumerate(renamed):
        if name in seen:
            i = seen[name]
            raise InputError(
                f"input error: {path.name}, row 1: columns {original[i]!r} and {original[j]!r} are both named "
                f"{name!r} after ULTA inverts one of them; rename one of the columns"
            )
        seen[name] = j


def _winner_json(winner: Winner) -> str:
    return json.dumps({"size": winner.size, "algorithm": winner.algorithm, "fitness": winner.fitness})


def _result_row(r: AlgorithmResult) -> ResultRow:
    return ResultRow(r.size, r.algorithm, r.status, r.fitness, r.evaluations, r.seconds, r.strategies, r.error)


def _optimise(
    key: str,
    dates: np.ndarray,
    zones: tuple[str, ...] | None,
    original: np.ndarray,
    strategies: tuple[str, ...],
    *,
    path: Path,
    config: Config,
    db: Backend,
    sizes: range,
    step: Callable[[str], Any],
    progress: Callable[[str, float], None],
    compute: JobCompute,
    prefix: tuple[int, ...] = (),
) -> Optimised:
    """Store → ULTA in SQL → fetch → correlation → search → validation, for one matrix of rows.

    Rows are stored in date order, so the training window of the last split is the leading
    ``decide_rows`` rows and ULTA's SQL decision covers exactly those (docs/validation.md).
    """
    order = np.argsort(dates, kind="stable")
    dates, original = dates[order], original[order]
    zones = None if zones is None else tuple(zones[i] for i in order.tolist())
    days, original_daily = sum_by_date(dates, original)
    windows = plan_windows(len(days), config.validation)
    ulta = config.optimization.apply_ulta_logic
    decide_rows = _rows_before(dates, days, windows.final) if windows.validating else None
    stored, pnl_all = _store_and_fetch(db, key, dates, zones, strategies, original, ulta, decide_rows, step)
    _check_unique_after_ulta(path, strategies, stored.strategies)
    searched = []
    for k, split in enumerate(windows.splits):
        last = k == len(windows.splits) - 1
        if last:
            oriented, inverted, names = pnl_all, stored.inverted, stored.strategies
        else:
            oriented, inverted, names = _fold_orientation(
                original[: _rows_before(dates, days, split)], original_daily, strategies, ulta, path
            )

        def fold_progress(what: str, share: float, k: int = k) -> None:
            progress(what, (k + share) / len(windows.splits))

        fold_prefix = prefix if last else (*prefix, FOLD_KEY + k)
        searched.append(
            _search_split(
                split,
                oriented,
                inverted,
                names,
                config,
                sizes,
                step,
                fold_progress,
                compute,
                fold_prefix,
                windows.validating,
            )
        )
    return _validate(key, windows, searched, days, config, step, prefix)


def _store_and_fetch(
    db: Backend,
    key: str,
    dates: np.ndarray,
    zones: tuple[str, ...] | None,
    strategies: tuple[str, ...],
    original: np.ndarray,
    ulta: bool,
    decide_rows: int | None,
    step: Callable[[str], Any],
) -> tuple[StoredPnl, np.ndarray]:
    """Store the rows, apply ULTA in SQL (decided on the leading ``decide_rows``; None: all), fetch
    them back; returns the stored matrix and its daily totals."""
    with step("store"):
        db.store_pnl(key, dates, zones, strategies, original)
    with step("ulta"):
        if ulta:
            db.apply_ulta(key, decide_rows)
    with step("fetch"):
        stored = db.fetch_pnl(key)
        _, pnl_all = sum_by_date(stored.dates, stored.pnl)
    return stored, pnl_all


def _fold_orientation(
    training_rows: np.ndarray, original_daily: np.ndarray, strategies: tuple[str, ...], ulta: bool, path: Path
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """An earlier walk-forward fold's daily P&L, inversions and names: ULTA's array twin, decided
    on that fold's training rows (the SQL decision belongs to the last split)."""
    inverted = ulta_mask(training_rows) if ulta else np.zeros(len(strategies), bool)
    oriented = np.where(inverted, -original_daily, original_daily)
    names = tuple(n + ULTA_SUFFIX if i else n for n, i in zip(strategies, inverted.tolist(), strict=True))
    _check_unique_after_ulta(path, strategies, names)
    return oriented, inverted, names


def _rows_before(dates: np.ndarray, days: np.ndarray, split: Split) -> int:
    """How many of the date-sorted rows fall in ``split``'s training window (the rows ULTA decides on)."""
    end = split.train.stop
    return int(np.searchsorted(dates, days[end])) if end < len(days) else len(dates)


def _search_split(
    split: Split,
    oriented: np.ndarray,
    inverted: np.ndarray,
    names_all: tuple[str, ...],
    config: Config,
    sizes: range,
    step: Callable[[str], Any],
    progress: Callable[[str, float], None],
    compute: JobCompute,
    prefix: tuple[int, ...],
    validating: bool,
) -> Searched:
    """Correlation and search on ``split``'s training window of ``oriented`` (D, S)."""
    hedges_wanted = HEDGE_PAIRS if validating else 0
    with step("correlation"):
        window = oriented[split.train.start : split.train.stop]
        keep = limit_strategies(window, config)
        pnl = np.ascontiguousarray(oriented[:, keep])
        search_pnl = np.ascontiguousarray(window[:, keep])
        names = tuple(names_all[j] for j in keep.tolist())
        units, nonconstant = unit_columns(np, search_pnl)
        universe = average_pairwise(units)
        stats = hedge_stats(np, search_pnl) if validating else None
        found, hedges = on_gpu_or_host(
            compute, lambda xp: scan_pairs(units, TOP_PAIRS, hedges=hedges_wanted, stats=stats, xp=xp)
        )
        pairs = tuple(PairCorrelation(names[p.first], names[p.second], p.correlation) for p in found)
    with step("search"):
        base = Problem.from_pnl(
            search_pnl, units, nonconstant, sizes.start, objective(config), threads=compute_threads(config)
        ).guided(config.optimization.guided)
        chosen = portfolio_sizes(sizes, len(names))
        archive = config.validation.archive_per_run if validating and config.validation.selection == "validated" else 0

        def run_search(xp: Any) -> list[AlgorithmResult]:
            workers = 1 if xp is not np else None  # one GPU: its parallelism is inside each batch
            found = search(
                config,
                base.on(xp),
                names,
                chosen,
                progress,
                prefix,
                workers=workers,
                archive_size=archive,
                executor=compute.executor,
            )
            gpu_failures = [r.error for r in found if r.status == "failed" and r.on_gpu]
            if gpu_failures:
                raise GpuFailed(gpu_failures[0])
            return found

        results = on_gpu_or_host(compute, run_search)
        check_any_portfolio(results)
    return Searched(split, inverted, keep, names, pnl, units, universe, pairs, hedges, base, chosen, results)


def _validate(
    key: str,
    windows: Plan,
    searched: list[Searched],
    days: np.ndarray,
    config: Config,
    step: Callable[[str], Any],
    prefix: tuple[int, ...],
) -> Optimised:
    """Choose on the days the search never saw and measure the choice (its own step when validating)."""
    with step("validation") if windows.validating else contextlib.nullcontext():
        done = validation.validate(
            windows,
            searched,
            days,
            config.validation,
            ppy=config.optimization.periods_per_year,
            seed=config.general.seed,
            prefix=prefix,
        )
    if windows.note:
        log.warning("%s: %s", key, windows.note)
    return Optimised(days, done.final, done.winner, done.in_sample_winner, done.report)


def _zone_runs(
    job_id: str,
    path: Path,
    dataset: Dataset,
    config: Config,
    db: Backend,
    steps: _Steps,
    weights: dict[str, float],
    compute: JobCompute,
) -> tuple[ZoneRun, ...]:
    """Each zone optimised on its own rows: its own ULTA, correlation and search (brief §6)."""
    zones = list(weights)
    runs = []
    with steps.step("zones", ZONES_START):
        for k, zone in enumerate(zones):
            low = ZONES_START + (SEARCH_END - ZONES_START) * k / len(zones)
            high = ZONES_START + (SEARCH_END - ZONES_START) * (k + 1) / len(zones)

            def progress(what: str, share: float, zone: str = zone, low: float = low, high: float = high) -> None:
                steps.progress(f"zone {zone}: {what}", low + (high - low) * share)

            dates, rows = zone_rows(dataset, zone)
            done = _optimise(
                f"{job_id}.z{k + 1}",
                dates,
                None,
                rows,
                dataset.strategies,
                path=path,
                config=config,
                db=db,
                sizes=config.zone_sizes,
                step=lambda name: contextlib.nullcontext(),
                progress=progress,
                compute=compute,
                prefix=(k + 1,),
            )
            members = np.array(done.winner.members)
            runs.append(
                ZoneRun(
                    zone=zone,
                    weight=weights[zone],
                    days=int(dates.shape[0]),
                    inverted=int(done.final.inverted.sum()),
                    results=tuple(done.final.results),
                    winner=done.winner,
                    dates=tuple(str(d) for d in done.dates),
                    daily=tuple(done.final.pnl[:, members].mean(axis=1).tolist()),
                    validation=done.validation,
                )
            )
    return tuple(runs)


def _run_stored(
    job_id: str,
    path: Path,
    dataset: Dataset,
    config: Config,
    db: Backend,
    steps: _Steps,
    created_at: str,
    compute: JobCompute,
) -> RunReport:
    dataset, excluded = exclude_rows(dataset)
    zoned = zone_mode(config) and dataset.zones is not None
    weights = zone_weights(config, zone_names(dataset)) if zoned else {}
    if zoned:
        check_zones(dataset, config, len(dataset.strategies))
    search_end = ZONES_START if zoned else SEARCH_END

    def progress(what: str, share: float) -> None:
        steps.progress(f"search: {what}", STEP_START["search"] + (search_end - STEP_START["search"]) * share)

    def step(name: str) -> Any:
        return steps.step(name, search_end if name == "validation" else STEP_START[name])

    dates, zones, matrix = dataset.dates, dataset.zones, dataset.pnl
    if zoned:  # the combined optimisation: the weighted sum over zones of each date
        (dates, matrix), zones = combine(dataset, weights), None
    main = _optimise(
        job_id,
        dates,
        zones,
        matrix,
        dataset.strategies,
        path=path,
        config=config,
        db=db,
        sizes=config.sizes,
        step=step,
        progress=progress,
        compute=compute,
    )
    zone_runs = _zone_runs(job_id, path, dataset, config, db, steps, weights, compute) if zoned else None
    with steps.step("contributions", CONTRIBUTIONS_START):
        final = main.final
        why = contributions(
            final.problem.on(np),
            main.winner.members,
            final.names,
            final.pnl,
            final.split.test,
            config.optimization.periods_per_year,
            # The search's cores, free again (no more than this host has: a cluster's workers are elsewhere).
            threads=min(compute_workers(config) * compute_threads(config), os.cpu_count() or 1),
        )
    timings = tuple(steps.timings.items())
    report = build_report(
        job_id, path, dataset, excluded, config, db, timings, created_at, compute, main, zone_runs, weights
    )
    return dataclasses.replace(report, contributions=why)
