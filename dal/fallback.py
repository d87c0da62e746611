"""HeavyDB with a safe fallback: a circuit breaker, and a backend that moves a job to DuckDB mid-way.

- :class:`Breaker` remembers HeavyDB failures across jobs (each job runs in its own process,
  so the state is a small JSON file in the data directory). After ``failures`` failures in a
  row it opens for ``cooldown_s``: jobs go straight to DuckDB without trying HeavyDB. The
  first job after the cool-down tries again; a success closes it.
- :class:`FallbackBackend` runs on HeavyDB and, when HeavyDB fails during a job, replays what
  the job had stored on DuckDB (job record, P&L, ULTA) and carries on there.

Either way the job says so: ``fallback_reason`` goes to the log and ``execution_summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atomicio import atomic_path
from dal.base import Backend, ResultRow, StoredPnl
from errors import BackendUnavailable

log = logging.getLogger("heavyopt")


class Breaker:
    def __init__(self, path: Path, *, failures: int, cooldown_s: float) -> None:
        self.path = path
        self.failures = failures
        self.cooldown_s = cooldown_s

    def _read(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text())
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(state))

    def closed(self) -> tuple[bool, str]:
        """Whether HeavyDB may be tried now; if not, why."""
        state = self._read()
        opened = state.get("opened_at")
        until = float(opened) + self.cooldown_s if opened is not None else 0.0
        if time.time() < until:
            return False, (
                f"HeavyDB skipped: {state.get('failures')} failures in a row, the last: {state.get('last_error')}; "
                f"trying again after {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(until))} "
                f"(DATABASE.breaker_cooldown_s = {self.cooldown_s:g})"
            )
        return True, ""

    def failure(self, reason: str) -> None:
        state = self._read()
        count = int(state.get("failures", 0)) + 1
        state = {"failures": count, "last_error": reason, "last_failure": time.time()}
        if count >= self.failures:
            state["opened_at"] = time.time()  # open for the cool-down configured when it is read
            log.warning("HeavyDB failed %d times in a row: not tried again for %g s", count, self.cooldown_s)
        self._write(state)

    def success(self) -> None:
        if self._read():
            self._write({})


class FallbackBackend:
    """The backend contract on ``primary``, moving to ``open_secondary()`` when the primary fails."""

    def __init__(
        self,
        primary: Backend,
        open_secondary: Callable[[], Backend],
        *,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        self._active = primary
        self._open_secondary = open_secondary
        self._on_fallback = on_fallback
        self.fallback_reason: str | None = None
        self.primary_url = primary.url
        self._records: dict[str, dict[str, Any]] = {}
        self._stored: dict[str, tuple[Any, ...]] = {}
        self._ulta: dict[str, int | None] = {}  # job id -> decide_rows of its ULTA
        self._results: dict[str, Sequence[ResultRow]] = {}

    @classmethod
    def fallen(cls, secondary: Backend, reason: str, primary_url: str) -> FallbackBackend:
        """Already on the secondary (HeavyDB could not be opened, or the breaker is open)."""
        backend = cls(secondary, lambda: secondary)
        backend.fallback_reason = reason
        backend.primary_url = primary_url
        return backend

    @property
    def url(self) -> str:
        return self._active.url

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._active, name)(*args, **kwargs)
        except BackendUnavailable as exc:
            if self.fell_back:
                raise
            self._switch(str(exc))
            return getattr(self._active, name)(*args, **kwargs)

    def _switch(self, reason: str) -> None:
        log.warning("%s; the job goes on with the embedded DuckDB store", reason)
        secondary = self._open_secondary()
        for job_id, fields in self._records.items():
            secondary.record_job(job_id, **fields)
        for job_id, args in self._stored.items():
            secondary.store_pnl(job_id, *args)
            if job_id in self._ulta:
                secondary.apply_ulta(job_id, self._ulta[job_id])
        for job_id, rows in self._results.items():
            secondary.record_results(job_id, rows)
        with contextlib.suppress(BackendUnavailable):  # the primary is gone already
            self._active.close()
        self._active = secondary
        self.fallback_reason = reason
        if self._on_fallback is not None:
            self._on_fallback(reason)

    def store_pnl(
        self, job_id: str, dates: np.ndarray, zones: Sequence[str] | None, strategies: Sequence[str], pnl: np.ndarray
    ) -> None:
        self._stored[job_id] = (dates, zones, strategies, pnl)
        self._ulta.pop(job_id, None)
        self._call("store_pnl", job_id, dates, zones, strategies, pnl)

    def apply_ulta(self, job_id: str, decide_rows: int | None = None) -> int:
        count: int = self._call("apply_ulta", job_id, decide_rows)
        self._ulta[job_id] = decide_rows
        return count

    def fetch_pnl(self, job_id: str) -> StoredPnl:
        stored: StoredPnl = self._call("fetch_pnl", job_id)
        return stored

    def record_job(self, job_id: str, **fields: Any) -> None:
        self._records.setdefault(job_id, {}).update(fields)
        self._call("record_job", job_id, **fields)

    def record_results(self, job_id: str, rows: Sequence[ResultRow]) -> None:
        self._results[job_id] = rows
        self._call("record_results", job_id, rows)

    def job(self, job_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("job", job_id)
        return found

    def results(self, job_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("results", job_id)
        return rows

    def prune(self, keep_pnl_jobs: int) -> int:
        pruned: int = self._call("prune", keep_pnl_jobs)
        return pruned

    def close(self) -> None:
        self._active.close()
