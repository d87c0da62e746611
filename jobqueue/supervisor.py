"""Supervising runners: one ``python -m jobqueue.runner`` process per job, its events, timeout and end.

Queued jobs start FIFO, ``QUEUE.workers`` at a time, each in its own process group (a timeout
or a stop kills the job with its workers). A reader thread per job hands the runner's JSON
lines to the daemon's thread, which records them. An identical input with an identical
config that already completed is not run again: the job is reported as a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobqueue.checks import merge_layers
from jobqueue.publisher import Publisher
from jobqueue.runner import MARKER
from jobqueue.share import Share
from jobqueue.store import QueueStore, now_iso
from optimizer.config import Layer
from optimizer.config import Queue as QueueConfig

log = logging.getLogger("heavyopt.queue")

KILL_AFTER_TERM_S = 10.0  # a job sent SIGTERM (timeout, stop) is killed this much later


@dataclass
class Running:
    seq: int
    job_id: str
    proc: subprocess.Popen[str]
    started: float
    deadline: float
    final: dict[str, Any] | None = None
    term_sent: float | None = None
    why_stopped: str | None = None
    reader: threading.Thread | None = None


class Supervisor:
    """Starts, watches and stops the runner processes; ``running`` holds the jobs running now, by seq."""

    def __init__(
        self,
        share: Share,
        q: QueueConfig,
        store: QueueStore,
        server_layers: list[Layer],
        publisher: Publisher,
        stop: threading.Event,
        running: dict[int, Running],
    ) -> None:
        self.share = share
        self.q = q
        self.store = store
        self.server_layers = server_layers
        self.publisher = publisher
        self.stop = stop
        self.running = running
        self._events: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()

    # ------------------------------------------------------------------ starting

    def dispatch(self) -> None:
        """Start queued, checked jobs while a worker is free (none once ``stop`` is set)."""
        if self.stop.is_set():
            return
        if len(self.running) >= self.q.workers:
            return
        running = {(r["input_sha256"], r["config_sha256"]) for r in self.store.rows("state = 'running'")}
        for row in self.store.rows("state = 'queued' AND layers_json IS NOT NULL"):
            if len(self.running) >= self.q.workers:
                return
            if self._duplicate(row):
                continue
            key = (row["input_sha256"], row["config_sha256"])
            if key in running:
                continue  # the same input and config is running: it is reported as a duplicate once done
            self._start(row)
            running.add(key)

    def _duplicate(self, row: dict[str, Any]) -> bool:
        earlier = self.store.rows(
            "state = 'completed' AND duplicate_of IS NULL AND input_sha256 = ? AND config_sha256 = ? AND seq < ?",
            (row["input_sha256"], row["config_sha256"], row["seq"]),
        )
        for prev in reversed(earlier):
            if prev["run_dir"] and (self.share.root / prev["run_dir"]).is_dir():
                result = json.loads(prev["result_json"] or "{}")
                result["duplicate_of"] = prev["job_id"]
                self.publisher.finish(
                    row["seq"],
                    "completed",
                    run_dir=prev["run_dir"],
                    result=result,
                    duplicate_of=prev["job_id"],
                    note=f"same input file and settings as job {prev['job_id']}; its results are reused",
                )
                log.info("job %s: identical to job %s; not run again", row["job_id"], prev["job_id"])
                return True
        return False

    def _start(self, row: dict[str, Any]) -> None:
        seq, job_id = row["seq"], row["job_id"]
        proc = self._spawn(row)
        now = time.monotonic()
        job = Running(seq, job_id, proc, now, now + self.q.job_timeout_s)
        job.reader = threading.Thread(target=self._read_events, args=(seq, proc), daemon=True)
        job.reader.start()
        self.running[seq] = job
        self.store.update(
            seq,
            state="running",
            started_at=now_iso(),
            attempts=row["attempts"] + 1,
            pid=proc.pid,
            step="starting",
            progress=0.0,
        )
        log.info("job %s: started (attempt %d, pid %d)", job_id, row["attempts"] + 1, proc.pid)
        self.publisher.write_status(force=True)

    def _spawn(self, row: dict[str, Any]) -> subprocess.Popen[str]:
        """The job's runner process, its spec written to its stdin."""
        seq, job_id = row["seq"], row["job_id"]
        spec = {
            "parent_pid": os.getpid(),
            "job_id": job_id,
            "input": str(self.share.root / row["input_path"]),
            "input_sha256": row["input_sha256"],
            "out_dir": str(self.share.output),
            "layers": merge_layers(self.server_layers, json.loads(row["layers_json"])),
        }
        env = {**os.environ, MARKER: f"{seq}:{job_id}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobqueue.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills the job and its workers
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        return proc

    # ------------------------------------------------------------------ events and ends

    def _read_events(self, seq: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                log.warning("job %d: unreadable line from the runner: %r", seq, line[:200])
                continue
            if isinstance(event, dict):
                self._events.put((seq, event))
        proc.stdout.close()
        self._events.put((seq, None))  # end of stream

    def drain_events(self) -> None:
        """Record the runners' latest progress; keep each job's final event for :meth:`reap`."""
        changed: dict[int, dict[str, Any]] = {}
        while True:
            try:
                seq, event = self._events.get_nowait()
            except queue.Empty:
                break
            job = self.running.get(seq)
            if job is None or event is None:
                continue
            if event.get("event") == "progress":
                changed[seq] = event
            elif event.get("event") in ("completed", "failed"):
                job.final = event
        for seq, event in changed.items():
            self.store.update(
                seq, step=str(event.get("step")), progress=float(event.get("progress", 0.0)), event="progress"
            )

    def reap(self) -> None:
        """End the jobs whose process has exited: completed, failed, or queued again."""
        for seq, job in list(self.running.items()):
            code = job.proc.poll()
            if code is None:
                continue
            if job.reader is not None:
                job.reader.join(timeout=5)
            self.drain_events()
            del self.running[seq]
            self._ended(job, code)

    def _ended(self, job: Running, code: int) -> None:
        seq = job.seq
        final = job.final or {}
        if final.get("event") == "completed" and code == 0:  # finished just as it was being stopped: done
            run_dir = Path(final["run_dir"])
            result = {k: v for k, v in final.items() if k != "event"}
            result["run_dir"] = self.share.rel(run_dir)
            note = None
            if final.get("output_errors"):
                note = "some output files could not be written; see error_log.txt in the run folder"
            self.publisher.finish(seq, "completed", run_dir=self.share.rel(run_dir), result=result, note=note)
        elif job.why_stopped and job.why_stopped.startswith("retry:"):
            self.requeue_or_fail(seq, job.why_stopped[len("retry:") :])
        elif job.why_stopped:
            self.publisher.finish(seq, "failed", reason=job.why_stopped)
        elif final.get("event") == "failed":
            self.publisher.finish(seq, "failed", reason=str(final.get("reason")))
        else:
            self.publisher.finish(seq, "failed", reason=exit_reason(code))

    def requeue_or_fail(self, seq: int, why: str) -> None:
        """A job stopped before its end: queued again, or failed once it has used ``QUEUE.max_attempts``."""
        row = self.store.get(seq)
        if row["attempts"] >= self.q.max_attempts:
            self.publisher.finish(
                seq,
                "failed",
                reason=f"{why} (step {row['step']!r} at {row['progress']:.0f} %), {row['attempts']} time(s) "
                f"out of QUEUE.max_attempts = {self.q.max_attempts}; not retried: check the daemon's log, "
                "then resubmit",
            )
        else:
            self.store.update(seq, state="queued", pid=None, step="queued", progress=0.0, event="requeued", detail=why)
            log.warning(
                "job %s: %s; queued again (attempt %d of %d done)",
                row["job_id"],
                why,
                row["attempts"],
                self.q.max_attempts,
            )

    # ------------------------------------------------------------------ stopping

    def enforce_timeouts(self) -> None:
        """SIGTERM a job past ``QUEUE.job_timeout_s``; SIGKILL one still there ``KILL_AFTER_TERM_S`` later."""
        now = time.monotonic()
        for job in self.running.values():
            if job.term_sent is None and now > job.deadline:
                row = self.store.get(job.seq)
                self.terminate(
                    job,
                    f"timed out after {self.q.job_timeout_s:g} s (QUEUE.job_timeout_s) in step "
                    f"{row['step']!r} at {row['progress']:.0f} %; raise the timeout or shrink the job "
                    "(fewer sizes, a smaller OPTIMIZATION.evaluation_budget)",
                )
            elif job.term_sent is not None and now - job.term_sent > KILL_AFTER_TERM_S:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.proc.pid, signal.SIGKILL)

    def terminate(self, job: Running, reason: str, *, retry: bool = False) -> None:
        """SIGTERM the job's process group; ``reason`` becomes its failure (or, with ``retry``, why it was requeued)."""
        job.why_stopped = f"retry:{reason}" if retry else reason
        job.term_sent = time.monotonic()
        log.warning("job %s: %s; sending SIGTERM", job.job_id, reason)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.proc.pid, signal.SIGTERM)


def exit_reason(code: int) -> str:
    """Why a runner that reported no result ended, as the user reads it."""
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the system may have run out of memory; see the kernel log)" if name == "SIGKILL" else ""
        return f"the job's process was killed by {name}{hint}"
    return f"the job's process ended with exit code {code} without a result; see the daemon's log"


def kill_leftovers(marker: str) -> int:
    """Kill every process still carrying ``marker`` (a runner of a previous daemon and its workers)."""
    wanted = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    alive, deadline = list(found), time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.05)
    return len(found)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
