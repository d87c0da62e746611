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

STATES = ("claiming", "queued", "running", "completed", "failed")
STEP_NAMES = ("load", "store", "ulta", "fetch", "correlation", "search", "validation", "zones", "outputs")


def job_summary(row: dict[str, Any]) -> dict[str, Any]:
    result = json.loads(row["result_json"]) if row["result_json"] else {}
    winner = result.get("winner") or {}
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
        "run_folder": row["run_dir"],
        "winner": {k: winner[k] for k in ("size", "algorithm", "fitness") if k in winner} or None,
        "verdict": (result.get("validation") or {}).get("verdict"),
        "reason": row["reason"],
        "duplicate_of": row["duplicate_of"],
    }


def status(store: QueueView) -> dict[str, Any]:
    """``GET /status``: idle or running, the running job's progress and step, the queue."""
    running = store.jobs("running")
    queued = store.waiting()
    daemon = store.daemon()
    job = job_summary(running[0]) if running else None
    return {
        "status": "running" if running else "idle",
        "progress": job["progress"] if job else 0.0,
        "current_step": job["step"] if job else "",
        "job": job,
        "running": [job_summary(r) for r in running],
        "queue": [
            {"job_id": r["job_id"], "input_file": r["input_name"], "submitted_at": r["submitted_at"]} for r in queued
        ],
        "daemon": {k: daemon.get(k) for k in ("state", "host", "pid", "started_at", "last_scan")},
    }


def jobs(store: QueueView, state: str | None, limit: int, offset: int) -> dict[str, Any]:
    """``GET /jobs``: newest first."""
    rows = store.jobs(state)
    rows.reverse()
    return {
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "items": [job_summary(r) for r in rows[offset : offset + limit]],
    }


def job(store: QueueView, job_id: str) -> dict[str, Any] | None:
    """``GET /jobs/{id}``: the latest job of that id, as its result file has it, plus live progress."""
    rows = store.submissions(job_id)
    if not rows:
        return None
    row = rows[-1]
    doc = result_document(row)
    doc.update(
        seq=row["seq"],
        step=row["step"],
        progress=round(float(row["progress"] or 0.0), 1),
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
