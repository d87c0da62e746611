"""One job in its own process: ``python -m jobqueue.runner`` with a JSON spec on stdin.

The daemon starts it in a new session, so a timeout or a stop can kill the job with
every worker process it started (one process group). It reports on stdout, one JSON
object per line: ``progress`` events, then exactly one ``completed`` or ``failed``.
Anything else the job prints goes to stderr (the daemon's log). It dies with the
daemon (``PR_SET_PDEATHSIG``), and its pool workers die with it, so a killed daemon or runner
leaves no process of the job computing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, TextIO

from errors import HeavyOptError, JobFailed
from jobqueue.share import sha256_file
from optimizer.config import build_config
from optimizer.parallel import die_with_parent
from optimizer.pipeline import run_job
from outputs.report import Winner
from outputs.validation import validation_summary
from outputs.writers import since_last_run_json

MARKER = "HEAVYOPT_RUNNER_JOB"  # set in the runner's environment (inherited by its workers): "<seq>:<job_id>"


class _Events:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last: tuple[str, float] = ("", -1.0)
        self.last_at = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self.stream.flush()

    def progress(self, step: str, pct: float) -> None:
        """Every change of step, and otherwise at most 4 a second."""
        now = time.monotonic()
        if step == self.last[0] and (pct - self.last[1] < 0.5 or now - self.last_at < 0.25) and pct < 100:
            return
        self.last, self.last_at = (step, pct), now
        self.emit("progress", step=step, progress=round(pct, 2))


def _check_input(path: str, sha256: str) -> None:
    """The input is still the file the daemon checked: not a link, same bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise JobFailed(f"job failed: the input {path} cannot be opened ({exc}); submit it again") from None
    try:
        same = sha256_file(fd) == sha256
    finally:
        os.close(fd)
    if not same:
        raise JobFailed(f"job failed: the input {path} changed after it was claimed; submit it again")


def main() -> int:
    started = time.perf_counter()
    spec = json.load(sys.stdin)
    die_with_parent(spec["parent_pid"])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    events = _Events(os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8"))
    sys.stdout = sys.stderr  # stray prints must not corrupt the event stream
    try:
        _check_input(spec["input"], spec["input_sha256"])
        config = build_config(
            [{s: {k: tuple(v) for k, v in keys.items()} for s, keys in layer.items()} for layer in spec["layers"]]
        )
        outcome = run_job(
            spec["input"], config, out_dir=spec["out_dir"], job_id=spec["job_id"], progress=events.progress
        )
    except HeavyOptError as exc:
        events.emit("failed", reason=str(exc), exit_code=exc.exit_code)
        return exc.exit_code
    except SystemExit as exc:  # SIGTERM from the daemon (timeout or stop)
        events.emit("failed", reason="stopped by the daemon", exit_code=exc.code)
        raise
    report = outcome.report
    events.emit(
        "completed",
        run_dir=str(outcome.run_dir),
        winner=_winner(report.winner),
        in_sample_winner=_winner(report.in_sample_winner or report.winner),
        validation=validation_summary(report),
        timings_s=dict(report.timings_s),
        inverted=len(report.inversions),
        strategies=report.input.strategies,
        days=report.input.days,
        output_errors=list(outcome.writer_errors),
        peak_rss_mb=report.peak_rss_mb,
        wall_s=time.perf_counter() - started,
        evaluations=sum(r.evaluations for r in report.results),
        book=report.book,
        since_last_run=None if report.since_last_run is None else since_last_run_json(report.since_last_run),
    )
    return 0


def _winner(w: Winner) -> dict[str, Any]:
    return {
        "size": w.size,
        "algorithm": w.algorithm,
        "fitness": w.fitness,
        "metrics": w.metrics,
        "strategies": list(w.strategies),
    }


if __name__ == "__main__":
    sys.exit(main())
