"""DuckDB backend: the embedded default, one file under the data directory, no server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from dal.base import ALL_ROWS, JOB_FIELDS, ULTA_TOLERANCE, ResultRow, StoredPnl, blank_to_null
from errors import BackendUnavailable

log = logging.getLogger("heavyopt")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id VARCHAR, source VARCHAR, status VARCHAR, created_at TIMESTAMP, finished_at TIMESTAMP,
        n_rows INTEGER, n_strategies INTEGER, seed BIGINT, config_json VARCHAR, winner_json VARCHAR,
        error VARCHAR, run_dir VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS days (job_id VARCHAR, day_idx INTEGER, trade_date DATE, zone VARCHAR)",
    """CREATE TABLE IF NOT EXISTS strategies (
        job_id VARCHAR, strategy_idx INTEGER, name VARCHAR, inverted BOOLEAN)""",
    "CREATE TABLE IF NOT EXISTS pnl (job_id VARCHAR, day_idx INTEGER, strategy_idx INTEGER, pnl DOUBLE)",
    """CREATE TABLE IF NOT EXISTS results (
        job_id VARCHAR, size INTEGER, algorithm VARCHAR, status VARCHAR, fitness DOUBLE,
        evaluations BIGINT, seconds DOUBLE, strategies VARCHAR, error VARCHAR)""",
)

LOCK_WAIT_S = 600.0  # how long an operation waits for another process to release the file

# Portable SQL (DuckDB and HeavyDB share it): the strategies to invert.
ULTA_SELECT = f"""
    SELECT strategy_idx FROM pnl WHERE job_id = ? AND day_idx < ?
    GROUP BY strategy_idx HAVING SUM(pnl) < -{ULTA_TOLERANCE!r} * SUM(ABS(pnl))"""


class DuckDBBackend:
    """Backend over one DuckDB file (``:memory:`` for a throw-away database)."""

    def __init__(self, path: str, *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = path
        self.url = f"duckdb:///{path}"
        self.lock_wait_s = lock_wait_s
        # A file is opened per operation, so jobs in other processes can use it in between (DuckDB allows
        # one writing process at a time); an in-memory database lives as long as this object.
        self._memory = duckdb.connect(":memory:") if path == ":memory:" else None
        with self._connection() as con:
            for statement in SCHEMA:
                con.execute(statement)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                return duckdb.connect(self.path)
            except (duckdb.Error, OSError) as exc:
                first = str(exc).splitlines()[0]
                locked = "lock" in first.lower()
                if locked and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                if locked:
                    hint = (
                        f"another process has held it for {self.lock_wait_s:g} s; stop it or set "
                        "DATABASE.data_dir to another folder"
                    )
                elif "not a valid duckdb database" in first.lower() or "corrupt" in first.lower():
                    hint = (
                        "the file is damaged or not a DuckDB file: move it aside (the next job makes a new one; "
                        "it holds only recent jobs' P&L and results) or restore it from a backup"
                    )
                else:
                    hint = "check DATABASE.data_dir / DATABASE.url and the folder's permissions"
                raise BackendUnavailable(f"database error: cannot open {self.path}: {first}; {hint}") from None

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._memory is not None:
            yield self._memory
            return
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The statements inside commit together or not at all."""
        with self._connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _delete_pnl(self, con: duckdb.DuckDBPyConnection, job_id: str) -> None:
        for table in ("pnl", "days", "strategies"):
            con.execute(f"DELETE FROM {table} WHERE job_id = ?", [job_id])

    def store_pnl(
        self,
        job_id: str,
        dates: np.ndarray,
        zones: Sequence[str] | None,
        strategies: Sequence[str],
        pnl: np.ndarray,
    ) -> None:
        rows, n_strategies = pnl.shape
        tables = {
            "heavyopt_days": {
                "day_idx": np.arange(rows, dtype=np.int32),
                # DuckDB scans datetime64[s] (not [D]); the column is cast back to DATE on insert.
                "trade_date": dates.astype("datetime64[D]").astype("datetime64[s]"),
                "zone": np.array(list(zones) if zones is not None else [None] * rows, dtype=object),
            },
            "heavyopt_strategies": {
                "strategy_idx": np.arange(n_strategies, dtype=np.int32),
                "name": np.array(list(strategies), dtype=object),
            },
            "heavyopt_pnl": {
                "day_idx": np.repeat(np.arange(rows, dtype=np.int32), n_strategies),
                "strategy_idx": np.tile(np.arange(n_strategies, dtype=np.int32), rows),
                "pnl": np.ascontiguousarray(pnl, dtype=np.float64).ravel(),
            },
        }
        with self._transaction() as con:
            try:
                self._delete_pnl(con, job_id)
                for name, columns in tables.items():
                    con.register(name, columns)
                con.execute(
                    "INSERT INTO days SELECT ?, day_idx, CAST(trade_date AS DATE), zone FROM heavyopt_days", [job_id]
                )
                con.execute(
                    "INSERT INTO strategies SELECT ?, strategy_idx, name, FALSE FROM heavyopt_strategies", [job_id]
                )
                con.execute("INSERT INTO pnl SELECT ?, day_idx, strategy_idx, pnl FROM heavyopt_pnl", [job_id])
            finally:
                for name in tables:
                    con.unregister(name)

    def apply_ulta(self, job_id: str, decide_rows: int | None = None) -> int:
        """Invert the job's losing strategies in SQL; returns how many of its strategies are inverted.

        Both updates select with ``ULTA_SELECT`` over the not-yet-updated P&L of the deciding
        rows, so they name the same strategies; an inverted strategy has a positive total there
        and is never selected again, which makes a second call a no-op.
        """
        rows = ALL_ROWS if decide_rows is None else decide_rows
        with self._transaction() as con:
            con.execute(
                f"""UPDATE strategies SET inverted = TRUE, name = name || '_inv'
                    WHERE job_id = ? AND strategy_idx IN ({ULTA_SELECT})""",
                [job_id, job_id, rows],
            )
            con.execute(
                f"UPDATE pnl SET pnl = -pnl WHERE job_id = ? AND strategy_idx IN ({ULTA_SELECT})",
                [job_id, job_id, rows],
            )
            count = con.execute("SELECT COUNT(*) FROM strategies WHERE job_id = ? AND inverted", [job_id]).fetchone()
        return int(count[0]) if count else 0

    def fetch_pnl(self, job_id: str) -> StoredPnl:
        with self._connection() as con:
            return self._fetch_pnl(con, job_id)

    def _fetch_pnl(self, con: duckdb.DuckDBPyConnection, job_id: str) -> StoredPnl:
        days = con.execute("SELECT trade_date, zone FROM days WHERE job_id = ? ORDER BY day_idx", [job_id]).fetchall()
        strat = con.execute(
            "SELECT strategy_idx, name, inverted FROM strategies WHERE job_id = ? ORDER BY strategy_idx", [job_id]
        ).fetchnumpy()
        n_rows, n_strategies = len(days), len(strat["strategy_idx"])
        if n_rows == 0:
            raise KeyError(f"no P&L stored for job {job_id!r}")
        cells = con.execute("SELECT day_idx, strategy_idx, pnl FROM pnl WHERE job_id = ?", [job_id]).fetchnumpy()
        matrix = np.zeros((n_rows, n_strategies), dtype=np.float64)
        matrix[cells["day_idx"], cells["strategy_idx"]] = cells["pnl"]
        zones = [zone for _, zone in days]
        return StoredPnl(
            pnl=matrix,
            dates=np.array([day for day, _ in days], dtype="datetime64[D]"),
            zones=tuple(zones) if any(z is not None for z in zones) else None,
            strategies=tuple(str(n) for n in strat["name"]),
            inverted=np.asarray(strat["inverted"], dtype=bool),
        )

    def record_job(self, job_id: str, **fields: Any) -> None:
        """Create the job's record if needed and set ``fields`` (names from ``JOB_FIELDS``)."""
        unknown = set(fields) - set(JOB_FIELDS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        with self._transaction() as con:
            if not con.execute("SELECT 1 FROM jobs WHERE job_id = ?", [job_id]).fetchone():
                con.execute("INSERT INTO jobs (job_id) VALUES (?)", [job_id])
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)  # names checked above
                values = [blank_to_null(value) for value in fields.values()]
                con.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", [*values, job_id])

    def record_results(self, job_id: str, rows: Sequence[ResultRow]) -> None:
        """Replace the job's stored results with ``rows``."""
        values = [
            [
                job_id,
                r.size,
                r.algorithm,
                r.status,
                r.fitness,
                r.evaluations,
                r.seconds,
                json.dumps(list(r.strategies)),
                blank_to_null(r.error),
            ]
            for r in rows
        ]
        with self._transaction() as con:
            con.execute("DELETE FROM results WHERE job_id = ?", [job_id])
            if values:
                con.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

    def job(self, job_id: str) -> dict[str, Any] | None:
        with self._connection() as con:
            cur = con.execute("SELECT * FROM jobs WHERE job_id = ?", [job_id])
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d[0] for d in cur.description], row, strict=True))

    def results(self, job_id: str) -> list[dict[str, Any]]:
        with self._connection() as con:
            cur = con.execute("SELECT * FROM results WHERE job_id = ? ORDER BY size, algorithm", [job_id])
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        out = [dict(zip(names, row, strict=True)) for row in rows]
        for row in out:
            row["strategies"] = json.loads(row["strategies"])
        return out

    def prune(self, keep_pnl_jobs: int) -> int:
        """Delete the P&L of all but the newest ``keep_pnl_jobs`` jobs; returns how many jobs were pruned."""
        with self._transaction() as con:
            stored = con.execute(
                "SELECT job_id FROM days UNION SELECT job_id FROM strategies UNION SELECT job_id FROM pnl"
            ).fetchall()
            newest = con.execute(
                "SELECT job_id FROM jobs ORDER BY created_at DESC NULLS LAST LIMIT ?", [keep_pnl_jobs]
            ).fetchall()
            keep = {r[0] for r in newest}
            old = sorted(r[0] for r in stored if r[0] not in keep)
            for job_id in old:
                self._delete_pnl(con, job_id)
        return len(old)

    def close(self) -> None:
        if self._memory is not None:
            try:
                self._memory.close()
            except duckdb.Error as exc:  # the contract: close never raises
                log.warning("closing the in-memory DuckDB failed (%s)", exc)
