"""Since last time: the previous run of the same book, and what changed.

A book is ``GENERAL.book`` or, when that is empty, the input file's name without its extension
(a nightly export keeps its name). The previous run is the newest run folder of the same book,
created before this job, among the latest ``LOOKBACK`` run folders of the same output folder
(the share's ``output/`` for queued jobs), read from its ``execution_summary.json``: the desk's
own history, kept where the desk reads it. A summary that cannot be read or is not one of ours
is passed over; history never fails a job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optimizer.ulta import SUFFIX
from outputs.report import LOOKBACK, RunReport, SinceLastRun

log = logging.getLogger("heavyopt")


def book_name(configured: str, input_file: str) -> str:
    return configured.strip() or Path(input_file).stem


def since_last_run(out_dir: Path, report: RunReport) -> SinceLastRun | None:
    """What changed since the newest earlier run of ``report.book`` in ``out_dir``; None if none."""
    for folder, summary in _earlier(out_dir, report):
        try:
            return _compare(folder, summary, report)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # edited by hand, or copied in
            log.warning(
                "since last run: %s/execution_summary.json is not usable (%s: %s); looking further back",
                folder,
                type(exc).__name__,
                exc,
            )
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _base(name: str) -> str:
    """A strategy's input name: ULTA's suffix off, so a strategy turned the other way is the same one."""
    return name.removesuffix(SUFFIX)


def _compare(folder: Path, summary: dict[str, Any], report: RunReport) -> SinceLastRun:
    before, now = summary["winner"], report.winner
    old_names, new_names = [str(n) for n in before["strategies"]], list(now.strategies)
    old_base, new_base = {_base(n): n for n in old_names}, {_base(n): n for n in new_names}
    v = report.validation
    oos_now = v.oos_metrics.get("sharpe_ratio") if v is not None and v.oos_metrics else None
    validation = summary.get("validation")
    oos = validation.get("out_of_sample") if isinstance(validation, dict) else None
    chosen = oos.get("winner") if isinstance(oos, dict) else None
    oos_before: dict[str, Any] = chosen if isinstance(chosen, dict) else {}
    found = before.get("metrics")
    metrics: dict[str, Any] = found if isinstance(found, dict) else {}
    figures = (
        ("Size", _number(before.get("size")), float(now.size)),
        ("Fitness (in sample)", _number(before.get("fitness")), now.fitness),
        ("Sharpe ratio, in sample", _number(metrics.get("sharpe_ratio")), now.metrics.get("sharpe_ratio")),
        ("Sharpe ratio, out of sample", _number(oos_before.get("sharpe_ratio")), oos_now),
        ("Total ROI, in sample", _number(metrics.get("total_roi")), now.metrics.get("total_roi")),
        ("Max drawdown, in sample", _number(metrics.get("max_drawdown")), now.metrics.get("max_drawdown")),
    )
    return SinceLastRun(
        book=report.book,
        previous_job_id=str(summary["job_id"]),
        previous_run_folder=folder.name,
        previous_created_at=str(summary.get("created_at", "")),
        came_in=tuple(n for n in new_names if _base(n) not in old_base),
        went_out=tuple(n for n in old_names if _base(n) not in new_base),
        kept=len(old_base.keys() & new_base.keys()),
        figures=figures,
        flipped=tuple(new_base[b] for b in new_base if b in old_base and old_base[b] != new_base[b]),
        has_page=(folder / "report.html").is_file(),
    )


def _earlier(out_dir: Path, report: RunReport) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The run folders of ``report.book`` created before this job, newest first, with their summaries.

    Folder names start ``run_<YYYYmmdd_HHMMSS>_``, so sorting them by name sorts them by time;
    the caller stops at the first usable one, and this after ``LOOKBACK`` folders. This job's own folder is
    not there yet (it is written under a hidden name); a job id reused by a later submission is
    another run, told apart by its creation time.
    """
    try:
        folders = sorted((p for p in out_dir.glob("run_*") if p.is_dir()), key=lambda p: p.name, reverse=True)
    except OSError:
        return
    for folder in folders[:LOOKBACK]:
        try:
            summary = json.loads((folder / "execution_summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable, or being written by hand: not history
        if not isinstance(summary, dict) or not isinstance(summary.get("winner"), dict):
            continue
        if str(summary.get("created_at", "")) > report.created_at:
            continue  # created after this job (ISO 8601 UTC strings sort by time)
        entry = summary.get("input")
        theirs = summary.get("book") or (Path(str(entry.get("file", ""))).stem if isinstance(entry, dict) else "")
        if theirs == report.book:
            yield folder, summary
