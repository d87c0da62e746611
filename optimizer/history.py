"""Since last time: the previous run of the same book, and what changed.

A book is ``GENERAL.book`` or, when that is empty, the input file's name without its extension
(a nightly export keeps its name). The previous run is the newest earlier run folder of the
same book in the same output folder (the share's ``output/`` for queued jobs), read from its
``execution_summary.json``: the desk's own history, kept where the desk reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from outputs.report import RunReport, SinceLastRun

LOOKBACK = 200  # run folders read, newest first, before giving up on finding the book


def book_name(configured: str, input_file: str) -> str:
    return configured.strip() or Path(input_file).stem


def since_last_run(out_dir: Path, report: RunReport) -> SinceLastRun | None:
    """What changed since the newest earlier run of ``report.book`` in ``out_dir``; None if none."""
    previous = _previous(out_dir, report.book, report.job_id)
    if previous is None:
        return None
    folder, summary = previous
    before = summary["winner"]
    now = report.winner
    old_names, new_names = list(before["strategies"]), list(now.strategies)
    v = report.validation
    oos_now = v.oos_metrics.get("sharpe_ratio") if v is not None and v.oos_metrics else None
    oos_before = ((summary.get("validation") or {}).get("out_of_sample") or {}).get("winner") or {}
    figures = (
        ("Size", float(before["size"]), float(now.size)),
        ("Fitness (in sample)", before.get("fitness"), now.fitness),
        ("Sharpe ratio, in sample", before["metrics"].get("sharpe_ratio"), now.metrics.get("sharpe_ratio")),
        ("Sharpe ratio, out of sample", oos_before.get("sharpe_ratio"), oos_now),
        ("Total ROI, in sample", before["metrics"].get("total_roi"), now.metrics.get("total_roi")),
        ("Max drawdown, in sample", before["metrics"].get("max_drawdown"), now.metrics.get("max_drawdown")),
    )
    return SinceLastRun(
        book=report.book,
        previous_job_id=str(summary["job_id"]),
        previous_run_folder=folder.name,
        previous_created_at=str(summary.get("created_at", "")),
        came_in=tuple(n for n in new_names if n not in set(old_names)),
        went_out=tuple(n for n in old_names if n not in set(new_names)),
        kept=len(set(old_names) & set(new_names)),
        figures=figures,
    )


def _previous(out_dir: Path, book: str, job_id: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest run folder of ``book`` other than ``job_id``'s, with its summary.

    Folder names start ``run_<YYYYmmdd_HHMMSS>_``, so sorting them by name sorts them by time;
    the search stops at the first match, and after ``LOOKBACK`` folders.
    """
    try:
        folders = sorted((p for p in out_dir.glob("run_*") if p.is_dir()), key=lambda p: p.name, reverse=True)
    except OSError:
        return None
    for folder in folders[:LOOKBACK]:
        if folder.name.endswith(f"_{job_id}"):
            continue
        try:
            summary = json.loads((folder / "execution_summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable, or being written by hand: not history
        if not isinstance(summary, dict) or "winner" not in summary:
            continue
        theirs = summary.get("book") or Path(str((summary.get("input") or {}).get("file", ""))).stem
        if theirs == book:
            return folder, summary
    return None
