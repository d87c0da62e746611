"""The job's store: which backend a job writes to (with HeavyDB's fallback and circuit breaker),
and the bookkeeping around a job that must never hide the job's own outcome."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from dal import Backend, open_backend
from dal.base import redact_url
from dal.fallback import Breaker, FallbackBackend
from errors import HeavyOptError
from optimizer.config import Config, data_dir, database_url, embedded_url

log = logging.getLogger("heavyopt")


def open_store(config: Config) -> Backend:
    """The configured store; a ``heavydb://`` URL with ``DATABASE.fallback`` falls back to DuckDB.

    HeavyDB is not tried while its circuit breaker is open; a failure to connect, or during
    the job, moves the job to the embedded DuckDB file and is recorded on the breaker.
    """
    db = config.database
    url = database_url(config)
    if not url.startswith("heavydb://") or not db.fallback:
        return open_backend(
            url, lock_wait_s=db.lock_wait_s, timeout_s=db.connect_timeout_s, query_timeout_s=db.query_timeout_s
        )
    circuit = breaker(config)

    def secondary() -> Backend:
        return open_backend(embedded_url(config), lock_wait_s=db.lock_wait_s)

    allowed, why = circuit.closed()
    if not allowed:
        log.warning("%s; the job runs on the embedded DuckDB store", why)
        return FallbackBackend.fallen(secondary(), why, redact_url(url))
    try:
        primary = open_backend(url, timeout_s=db.connect_timeout_s, query_timeout_s=db.query_timeout_s)
    except HeavyOptError as exc:
        circuit.failure(str(exc))
        log.warning("%s; the job runs on the embedded DuckDB store", exc)
        return FallbackBackend.fallen(secondary(), str(exc), redact_url(url))
    return FallbackBackend(primary, secondary, on_fallback=circuit.failure)


def breaker(config: Config) -> Breaker:
    return Breaker(
        data_dir(config) / "heavydb_breaker.json",
        failures=config.database.breaker_failures,
        cooldown_s=config.database.breaker_cooldown_s,
    )


def breaker_outcome(config: Config, backend: Backend) -> None:
    """A job that ran on HeavyDB to the end closes the breaker."""
    if isinstance(backend, FallbackBackend) and not backend.fell_back:
        breaker(config).success()


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def record_failure(backend: Backend, job_id: str, reason: str) -> None:
    """Mark the job failed; a broken database must not hide the job's own error."""
    try:
        backend.record_job(job_id, status="failed", error=reason, finished_at=now())
    except Exception as exc:  # noqa: BLE001 - logged; the original failure is what the caller needs
        log.warning("could not record job %s as failed (%s: %s)", job_id, type(exc).__name__, exc)


def prune(backend: Backend, keep: int) -> None:
    """Housekeeping after a completed job: a failure is logged and never fails the job."""
    try:
        backend.prune(keep)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not prune old P&L (%s: %s)", type(exc).__name__, exc)
