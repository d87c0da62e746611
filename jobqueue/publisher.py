"""Publishing results: a job's final state, ``jobs/completed|failed/<job_id>.json``, the status file.

The database row is the truth; the files on the share are written from it, and publishing is
repeated (at each rescan and at the next start) until it has succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobqueue.share import Share, write_json_atomic
from jobqueue.store import QueueStore, now_iso
from optimizer.naming import windows_path

log = logging.getLogger("heavyopt.queue")


def result_document(row: Mapping[str, Any], unc_root: str = "") -> dict[str, Any]:
    """What ``jobs/completed|failed/<job_id>.json`` holds (and ``GET /jobs/{id}`` returns); with
    ``QUEUE.unc_root``, the run folder also as Windows users reach it."""
    result = json.loads(row["result_json"]) if row["result_json"] else {}
    return {
        "job_id": row["job_id"],
        "status": row["state"],
        "input_file": row["input_name"],
        "archived_input": row["input_path"] or row["job_dir"],
        "submitted_at": row["submitted_at"],
        "claimed_at": row["claimed_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "attempts": row["attempts"],
        "output_folder": row["run_dir"],
        "output_folder_windows": windows_path(unc_root, row["run_dir"]),
        "reason": row["reason"],
        "duplicate_of": row["duplicate_of"],
        "winner": result.get("winner"),
        "in_sample_winner": result.get("in_sample_winner"),
        "book": result.get("book"),
        "since_last_run": result.get("since_last_run"),
        "validation": result.get("validation"),
        "timings_s": result.get("timings_s"),
        "wall_s": result.get("wall_s"),
        "evaluations": result.get("evaluations"),
        "strategies": result.get("strategies"),
        "days": result.get("days"),
        "inverted": result.get("inverted"),
        "note": result.get("note"),
        "request": json.loads(row["request_json"]) if row["request_json"] else None,
    }


class Publisher:
    """Ends jobs in the database and writes what the share's clients read."""

    def __init__(
        self,
        share: Share,
        store: QueueStore,
        host: str,
        stop: threading.Event,
        running: Mapping[int, object],
        unc_root: str = "",
    ) -> None:
        self.share = share
        self.unc_root = unc_root
        self.store = store
        self.host = host
        self.stop = stop
        self.running = running  # the jobs running now, by seq (the supervisor's)
        self._status_written = 0.0
        self._status_error_logged = 0.0

    def finish(
        self,
        seq: int,
        state: str,
        *,
        reason: str | None = None,
        run_dir: str | None = None,
        result: dict[str, Any] | None = None,
        duplicate_of: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record the job's final state, publish its result file and rewrite the status file."""
        if result is not None and note:
            result["note"] = note
        self.store.update(
            seq,
            state=state,
            reason=reason,
            run_dir=run_dir,
            result_json=json.dumps(result) if result is not None else None,
            duplicate_of=duplicate_of,
            finished_at=now_iso(),
            progress=100.0 if state == "completed" else self.store.get(seq)["progress"],
            step="done" if state == "completed" else "failed",
            published=0,
        )
        row = self.store.get(seq)
        if state == "failed":
            log.error("job %s failed: %s", row["job_id"], reason)
        else:
            log.info("job %s completed: %s", row["job_id"], run_dir)
        self.publish(seq)
        self.write_status(force=True)

    def publish(self, seq: int) -> None:
        """Write ``jobs/<state>/<job_id>.json`` from the row, and clear the job's files from processing/."""
        row = self.store.get(seq)
        job_id = row["job_id"]
        folder = self.share.completed if row["state"] == "completed" else self.share.failed
        try:
            if row["kind"] == "jobfile":  # first: a client that sees its result finds processing/ cleared
                claimed = self.share.processing / Path(row["origin"]).name
                job_dir = self.share.own_dir(row["job_dir"]) if row["job_dir"] else None
                if os.path.lexists(claimed) and job_dir is not None:
                    os.rename(claimed, job_dir / claimed.name)
            write_json_atomic(folder / f"{job_id}.json", result_document(row, self.unc_root))
        except OSError as exc:  # retried at the next rescan and at the next start
            log.error("job %s: cannot publish its result in %s: %s", job_id, self.share.rel(folder), exc)
            return
        self.store.update(seq, published=1, event="published", detail=self.share.rel(folder / f"{job_id}.json"))

    def publish_pending(self) -> None:
        """Publish every ended job whose result file has not been written yet."""
        for row in self.store.rows("state IN ('completed', 'failed') AND published = 0"):
            self.publish(row["seq"])

    def write_status(self, *, force: bool = False, state: str | None = None) -> None:
        """``jobs/status/current_status.json``: at most once a second unless ``force``."""
        now = time.monotonic()
        if not force and now - self._status_written < 1.0:
            return
        self._status_written = now
        doc = self._status(state)
        try:
            write_json_atomic(self.share.status_file, doc)
        except OSError as exc:
            if now - self._status_error_logged > 60:
                self._status_error_logged = now
                log.error("cannot write %s: %s", self.share.rel(self.share.status_file), exc)

    def _status(self, state: str | None) -> dict[str, Any]:
        running = [self.store.get(seq) for seq in self.running]
        queued = self.store.rows("state IN ('claiming', 'queued')")
        return {
            "status": state or ("stopping" if self.stop.is_set() else "running" if running else "idle"),
            "updated_at": now_iso(),
            "daemon": {"host": self.host, "pid": os.getpid()},
            "jobs": [
                {
                    "job_id": r["job_id"],
                    "input_file": r["input_name"],
                    "step": r["step"],
                    "progress": round(r["progress"], 1),
                    "started_at": r["started_at"],
                    "attempt": r["attempts"],
                }
                for r in running
            ],
            "queue": [r["job_id"] for r in queued],
        }
