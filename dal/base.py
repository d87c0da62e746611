"""The storage interface every backend implements, and the factory from a URL.

Contract (checked by ``tests/dal/test_contract.py`` for every backend):

- ``store_pnl`` writes one job's P&L in long form ``(job_id, day_idx, strategy_idx, pnl)``
  with dimension tables ``days(job_id, day_idx, trade_date, zone)`` and
  ``strategies(job_id, strategy_idx, name, inverted)``; storing a job id twice replaces it.
- ``apply_ulta`` inverts, inside the database, every strategy whose total is negative
  beyond rounding (``SUM(pnl) < -ULTA_TOLERANCE · SUM(ABS(pnl))``), renames it
  ``<name>_inv`` and returns how many of the job's strategies are inverted. With
  ``decide_rows`` the totals are taken over the rows ``day_idx < decide_rows`` only (the
  training window, when the caller stores rows in date order) and every row of a chosen
  strategy is inverted. Calling it twice with the same rows inverts nothing more.
- ``fetch_pnl`` returns the stored matrix exactly as stored (bit for bit).
- Job records and per size × algorithm results are kept for history; ``prune`` drops the
  P&L of all but the newest jobs and never touches records or results.
- Empty text is no text: a job field or a result's ``error`` given as ``""`` reads back as
  None on every backend (HeavyDB stores ``''`` in a ``TEXT ENCODING NONE`` column as NULL).
- Parameters are bound as plain Python values (a NumPy scalar is converted first: the real
  HeavyDB client renders values into the SQL text and refuses one).
- ``close`` never raises: the job's outcome is decided by then; a failure to close is logged.

Backends are not thread-safe: one job uses one backend from one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from errors import BackendUnavailable


def redact_url(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    cred, _, host = rest.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in cred else url


# A total within 1e-9 of the strategy's gross P&L is zero up to floating-point rounding:
# no summation order can flip the decision, so SQL and arrays agree exactly.
ULTA_TOLERANCE = 1e-9
ALL_ROWS = 2**31 - 1  # ``decide_rows`` when every stored row decides (day_idx is an INTEGER)


@dataclass(frozen=True)
class StoredPnl:
    """One job's P&L as fetched back.

    Attributes
    ----------
    pnl : float64 array, shape (rows, strategies), rows ordered by ``day_idx``.
    dates : datetime64[D] array, shape (rows,).
    zones : zone of each row, or None if the input had no Zone column.
    strategies : names, ``<name>_inv`` for inverted ones.
    inverted : bool array, shape (strategies,).
    """

    pnl: np.ndarray
    dates: np.ndarray
    zones: tuple[str, ...] | None
    strategies: tuple[str, ...]
    inverted: np.ndarray


@dataclass(frozen=True)
class ResultRow:
    """One (size, algorithm) outcome, as stored for history."""

    size: int
    algorithm: str
    status: str  # "ok" or "failed"
    fitness: float | None
    evaluations: int
    seconds: float
    strategies: tuple[str, ...]
    error: str = ""


class Backend(Protocol):
    """A place to keep P&L, run ULTA in SQL, and keep job history."""

    @property
    def url(self) -> str:  # redacted: safe to log
        ...

    def store_pnl(
        self,
        job_id: str,
        dates: np.ndarray,
        zones: Sequence[str] | None,
        strategies: Sequence[str],
        pnl: np.ndarray,
    ) -> None: ...

    def apply_ulta(self, job_id: str, decide_rows: int | None = None) -> int: ...

    def fetch_pnl(self, job_id: str) -> StoredPnl: ...

    def record_job(self, job_id: str, **fields: Any) -> None: ...

    def record_results(self, job_id: str, rows: Sequence[ResultRow]) -> None: ...

    def job(self, job_id: str) -> dict[str, Any] | None: ...

    def results(self, job_id: str) -> list[dict[str, Any]]: ...

    def prune(self, keep_pnl_jobs: int) -> int: ...

    def close(self) -> None: ...


JOB_FIELDS = (
    "source",
    "status",
    "created_at",
    "finished_at",
    "n_rows",
    "n_strategies",
    "seed",
    "config_json",
    "winner_json",
    "error",
    "run_dir",
)


def blank_to_null(value: Any) -> Any:
    """``""`` → None (see the contract: empty text is no text); anything else unchanged."""
    return None if isinstance(value, str) and value == "" else value


def open_backend(
    url: str, *, lock_wait_s: float = 600.0, timeout_s: float = 10.0, query_timeout_s: float = 300.0
) -> Backend:
    """A backend for ``duckdb:///path/to/file.duckdb`` (or ``duckdb:///:memory:``), or
    ``heavydb://user:password@host:6274/dbname`` (``timeout_s`` to connect and log in,
    ``query_timeout_s`` for each statement or load after that).

    A DuckDB file is opened per operation; while another process holds it, an operation
    waits up to ``lock_wait_s`` (``DATABASE.lock_wait_s``) before giving up.

    Raises
    ------
    BackendUnavailable
        Unknown scheme, missing driver, or a database that cannot be opened.
    """
    scheme, sep, rest = url.partition("://")
    if scheme == "duckdb" and sep:
        from dal.duckdb_backend import DuckDBBackend

        return DuckDBBackend(rest[1:] if rest.startswith("/") else rest, lock_wait_s=lock_wait_s)
    if scheme == "heavydb" and sep:
        from dal.heavydb_backend import HeavyDBBackend

        return HeavyDBBackend(url, timeout_s=timeout_s, query_timeout_s=query_timeout_s)
    raise BackendUnavailable(
        f"database error: DATABASE.url {url.split('@')[-1]!r}: unsupported scheme {scheme!r}; "
        "use duckdb:///path/to/file.duckdb (the embedded default) or heavydb://user:password@host:6274/dbname"
    )
