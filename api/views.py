"""What the status API and ``heavyopt status`` show, read from the daemon's job database.

Plain functions over a read-only :class:`QueueView`, so the HTTP endpoints and the terminal command
print the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from jobqueue.publisher import result_document
from jobqueue.view import QueueView
from optimizer.naming import windows_path

STATES = ("claiming", "queued", "running", "completed", "failed")
STEP_NAMES = ("load", "store", "ulta", "fetch", "correlation", "search", "validation", "zones", "outputs")


ETA_FROM_PERCENT = 5.0  # before this much progress the pace says too little to extrapolate
PACE_WINDOW = 20.0  # percentage points: the pace is the one over the latest this much progress
SEARCH_START = 25.0  # where the search starts on the progress scale (optimizer.pipeline.STEP_START)


def eta_seconds(row: dict[str, Any], events: list[dict[str, Any]], now: datetime | None = None) -> float | None:
    """A running job's time left at its recent pace: the time its latest ``PACE_WINDOW`` points of
    progress took (from its progress events), scaled to the points left. Recent, because the early
    steps are quicker per point than the search, and the search's larger sizes slower than its first."""
    progress = float(row["progress"] or 0.0)
    if row["state"] != "running" or not row["started_at"] or not ETA_FROM_PERCENT <= progress < 100:
        return None
    since, base = datetime.fromisoformat(row["started_at"]), 0.0
    for event in events:
        at = event["progress"]
        if at is None or (float(at) > progress - PACE_WINDOW and not (base < SEARCH_START <= float(at) < progress)):
            continue
        # The latest point PACE_WINDOW behind, or the search's start if that is later: the steps before
        # the search (load … correlation) cover a quarter of the scale in a few seconds.
        since, base = datetime.fromisoformat(event["at"]), float(at)
    elapsed = ((now or datetime.now(UTC)) - since).total_seconds()
    return round(max(elapsed, 0.0) * (100.0 - progress) / (progress - base), 1)


def _eta(row: dict[str, Any], store: QueueView | None) -> float | None:
    if store is None or row["state"] != "running":
        return None
    return eta_seconds(row, store.events(int(row["seq"])))


def job_summary(row: dict[str, Any], unc_root: str = "", store: QueueView | None = None) -> dict[str, Any]:
    """One job, short; ``store`` to estimate a running job's time left from its progress events."""
    result = json.loads(row["result_json"]) if row["result_json"] else {}
    winner = result.get("winner") or {}
    validation = result.get("validation") or {}
    return {
        "job_id": row["job_id"],
        "state": row["state"],
        "input_file": row["input_name"],
        "submitted_at": row["submitted_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "step": row["step"],
        "progress": round(float(row["progress"] or 0.0), 1),
        "attempts": row["attempts"],
        "eta_s": _eta(row, store),
        "run_folder": row["run_dir"],
        "run_folder_windows": windows_path(unc_root, row["run_dir"]),
        "report": f"jobs/{row['job_id']}/report.html" if row["state"] == "completed" and row["run_dir"] else None,
        "winner": {k: winner[k] for k in ("size", "algorithm", "fitness") if k in winner} or None,
        "headline": validation.get("headline"),
        "verdict": validation.get("verdict"),
        "reason": row["reason"],
        "duplicate_of": row["duplicate_of"],
    }


def status(store: QueueView, unc_root: str = "") -> dict[str, Any]:
    """``GET /status``: idle or running, the running job's progress, step and time left, the queue,
    and the latest finished job (its headline, and its report page by id)."""
    running = store.jobs("running")
    queued = store.waiting()
    daemon = store.daemon()
    finished = [r for r in store.jobs("completed") if not r["duplicate_of"]]
    job = job_summary(running[0], unc_root, store) if running else None
    return {
        "status": "running" if running else "idle",
        "progress": job["progress"] if job else 0.0,
        "current_step": job["step"] if job else "",
        "job": job,
        "running": [job_summary(r, unc_root, store) for r in running],
        "latest": job_summary(max(finished, key=lambda r: r["finished_at"] or ""), unc_root) if finished else None,
        "queue": [
            {"job_id": r["job_id"], "input_file": r["input_name"], "submitted_at": r["submitted_at"]} for r in queued
        ],
        "daemon": {k: daemon.get(k) for k in ("state", "host", "pid", "started_at", "last_scan")},
    }


def jobs(store: QueueView, state: str | None, limit: int, offset: int, unc_root: str = "") -> dict[str, Any]:
    """``GET /jobs``: newest first."""
    rows = store.jobs(state)
    rows.reverse()
    return {
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "items": [job_summary(r, unc_root) for r in rows[offset : offset + limit]],
    }


def job(store: QueueView, job_id: str, unc_root: str = "") -> dict[str, Any] | None:
    """``GET /jobs/{id}``: the latest job of that id, as its result file has it, plus live progress."""
    rows = store.submissions(job_id)
    if not rows:
        return None
    row = rows[-1]
    doc = result_document(row, unc_root)
    doc.update(
        seq=row["seq"],
        step=row["step"],
        progress=round(float(row["progress"] or 0.0), 1),
        eta_s=_eta(row, store),
        submissions=len(rows),
    )
    return doc


def health(store: QueueView, rescan_s: float) -> tuple[bool, dict[str, Any]]:
    """Liveness: the store answers, the share is there and the daemon scanned it recently."""
    try:
        daemon = store.daemon()
        store.ping()
        reachable = True
    except Exception as exc:  # noqa: BLE001 - reported as the health check's answer
        return False, {"status": "error", "store": f"unreachable: {type(exc).__name__}: {exc}"}
    last_scan = daemon.get("last_scan")
    age = (datetime.now(UTC) - datetime.fromisoformat(last_scan)).total_seconds() if last_scan else None
    fresh = age is not None and age <= 3 * rescan_s + 10
    missing = daemon.get("share_state") == "missing"
    ok = reachable and daemon.get("state") == "running" and fresh and not missing
    return ok, {
        "status": "ok" if ok else "degraded",
        "store": "reachable",
        "daemon": daemon.get("state"),
        "share": f"missing since {daemon.get('share_missing_since')}: the daemon waits for it" if missing else "ok",
        "last_scan": last_scan,
        "last_scan_age_s": round(age, 1) if age is not None else None,
    }


class QueueCollector(Collector):
    """The queue's Prometheus metrics, read from the job database at each scrape."""

    def __init__(self, store: QueueView) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        rows = self.store.jobs()
        yield from _queue_metrics(rows)
        yield from _throughput_metrics([json.loads(r["result_json"]) for r in rows if _counts(r)])


def _counts(row: dict[str, Any]) -> bool:
    """Whether a job's timings and evaluations go into the metrics: completed, not a duplicate, with a result."""
    return row["state"] == "completed" and not row["duplicate_of"] and bool(row["result_json"])


def _queue_metrics(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("heavyopt_jobs", "Jobs in the database by state.", labels=["state"])
    for state in STATES:
        jobs.add_metric([state], sum(r["state"] == state for r in rows))
    yield jobs
    yield GaugeMetricFamily(
        "heavyopt_queue_depth", "Jobs waiting to run.", value=sum(r["state"] in ("claiming", "queued") for r in rows)
    )
    progress = GaugeMetricFamily("heavyopt_job_progress_percent", "Progress of each running job.", labels=["job_id"])
    for r in rows:
        if r["state"] == "running":
            progress.add_metric([r["job_id"]], float(r["progress"] or 0))
    yield progress


def _throughput_metrics(results: list[dict[str, Any]]) -> Iterator[Metric]:
    step_sum: dict[str, float] = {}
    step_count: dict[str, int] = {}
    evaluations = 0
    search_s = 0.0
    last_rate: float | None = None
    for result in results:
        for step, seconds in (result.get("timings_s") or {}).items():
            step_sum[step] = step_sum.get(step, 0.0) + float(seconds)
            step_count[step] = step_count.get(step, 0) + 1
        if result.get("evaluations") and result.get("timings_s", {}).get("search"):
            evaluations += int(result["evaluations"])
            search_s += float(result["timings_s"]["search"])
            last_rate = result["evaluations"] / result["timings_s"]["search"]
    steps = SummaryMetricFamily(
        "heavyopt_step_duration_seconds", "Time spent in each pipeline step by completed jobs.", labels=["step"]
    )
    for step in sorted(step_sum):
        steps.add_metric([step], count_value=step_count[step], sum_value=round(step_sum[step], 6))
    yield steps
    # The family is "heavyopt_evaluations": the client names a counter's sample "<family>_total".
    yield CounterMetricFamily("heavyopt_evaluations", "Portfolio evaluations by completed jobs.", value=evaluations)
    yield GaugeMetricFamily(
        "heavyopt_evaluations_per_second",
        "Evaluations per second of search, over all completed jobs.",
        value=round(evaluations / search_s if search_s else 0.0, 3),
    )
    yield GaugeMetricFamily(
        "heavyopt_last_job_evaluations_per_second",
        "Evaluations per second of the latest completed job.",
        value=round(last_rate or 0.0, 3),
    )


def metrics(store: QueueView) -> bytes:
    """Prometheus text exposition, through a fresh registry per scrape."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(store))
    return generate_latest(registry)
