"""HeavyDB backend (GPU servers): the backend contract over the ``heavyai`` client.

``heavydb://user:password@host:6274/dbname[?protocol=binary|http|https]``. The client is the
optional extra ``heavy-optimizer[heavydb]``; without it, opening the URL raises
:class:`BackendUnavailable` (and the job falls back to DuckDB, see ``dal/fallback.py``).

HeavyDB has no multi-statement transactions, so every change is a single statement or is
safe to repeat:

- P&L is loaded through Arrow (``load_table_arrow``) into ``heavyopt_pnl`` exactly as given
  and never updated. Storing a job again deletes its rows first.
- ULTA is one ``UPDATE`` of ``heavyopt_strategies.inverted`` selected by the portable
  ``SUM(pnl) < -tol · SUM(ABS(pnl))`` over the stored (never inverted) P&L of the deciding
  rows, so a second call with the same rows selects the same strategies and changes nothing.
- ``fetch_pnl`` returns the P&L oriented by that flag (``CASE WHEN inverted THEN -pnl``,
  computed by the server) and names inverted strategies ``<name>_inv``.

Every call into the client goes through :class:`Client`, the adapter boundary that tests
replace; any error there is raised as :class:`BackendUnavailable` with the server named and
the password never shown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from dal.base import ALL_ROWS, JOB_FIELDS, ULTA_TOLERANCE, ResultRow, StoredPnl, redact_url
from errors import BackendUnavailable

DDL = (
    """CREATE TABLE IF NOT EXISTS heavyopt_jobs (
        job_id TEXT ENCODING DICT(32), source TEXT ENCODING NONE, status TEXT ENCODING DICT(8),
        created_at TIMESTAMP(0), finished_at TIMESTAMP(0), n_rows INTEGER, n_strategies INTEGER, seed BIGINT,
        config_json TEXT ENCODING NONE, winner_json TEXT ENCODING NONE, error TEXT ENCODING NONE,
        run_dir TEXT ENCODING NONE)""",
    """CREATE TABLE IF NOT EXISTS heavyopt_days (
        job_id TEXT ENCODING DICT(32), day_idx INTEGER, trade_date DATE ENCODING DAYS(32),
        zone TEXT ENCODING DICT(16))""",
    """CREATE TABLE IF NOT EXISTS heavyopt_strategies (
        job_id TEXT ENCODING DICT(32), strategy_idx INTEGER, name TEXT ENCODING DICT(32), inverted BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS heavyopt_pnl (
        job_id TEXT ENCODING DICT(32), day_idx INTEGER, strategy_idx INTEGER, pnl DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS heavyopt_results (
        job_id TEXT ENCODING DICT(32), size INTEGER, algorithm TEXT ENCODING DICT(8), status TEXT ENCODING DICT(8),
        fitness DOUBLE, evaluations BIGINT, seconds DOUBLE, strategies TEXT ENCODING NONE,
        error TEXT ENCODING NONE)""",
)
JOB_COLUMNS = ("job_id", *JOB_FIELDS)
RESULT_COLUMNS = ("job_id", "size", "algorithm", "status", "fitness", "evaluations", "seconds", "strategies", "error")
PNL_TABLES = ("heavyopt_pnl", "heavyopt_days", "heavyopt_strategies")
ULTA_LOSERS = f"""
    SELECT strategy_idx FROM heavyopt_pnl WHERE job_id = :job_id AND day_idx < :decide_rows
    GROUP BY strategy_idx HAVING SUM(pnl) < -{ULTA_TOLERANCE!r} * SUM(ABS(pnl))"""


class Client(Protocol):
    """The adapter boundary: what the backend needs from a HeavyDB connection."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def load_arrow(self, table: str, data: Any) -> None: ...  # a pyarrow.Table, columns in table order

    def close(self) -> None: ...


class HeavyaiClient:
    """:class:`Client` over ``heavyai.connect`` (DB-API with ``:name`` parameters, Arrow loads)."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self._con.execute(sql, params) if params else self._con.execute(sql)
        try:
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def load_arrow(self, table: str, data: Any) -> None:
        self._con.load_table_arrow(table, data)

    def close(self) -> None:
        self._con.close()


def parse_url(url: str) -> dict[str, Any]:
    """``heavydb://user:password@host:port/dbname?protocol=…`` → ``heavyai.connect`` keyword arguments."""
    parts = urlsplit(url)
    if parts.scheme != "heavydb" or not parts.hostname:
        raise BackendUnavailable("database error: DATABASE.url: expected heavydb://user:password@host:6274/dbname")
    protocol = parse_qs(parts.query).get("protocol", ["binary"])[0]
    return {
        "user": unquote(parts.username or "admin"),
        "password": unquote(parts.password or ""),
        "host": parts.hostname,
        "port": parts.port or 6274,
        "dbname": parts.path.lstrip("/") or "heavyai",
        "protocol": protocol,
    }


def connect_client(url: str, timeout_s: float) -> Client:
    """Connect with the ``heavyai`` package; the one place that imports it."""
    kwargs = parse_url(url)
    try:
        import heavyai
    except ImportError:
        raise BackendUnavailable(
            "database error: DATABASE.url is a heavydb:// URL but the HeavyDB client is not installed; "
            "pip install 'heavy-optimizer[heavydb]'"
        ) from None
    import socket

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # Thrift's socket: a host that does not answer fails within the timeout
    try:
        return HeavyaiClient(heavyai.connect(**kwargs))
    finally:
        socket.setdefaulttimeout(previous)


def _repeat(value: str, count: int) -> Any:
    """``count`` copies of one string as an Arrow string column, built in C++ rather than from a list."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(count, dtype=np.int32)), pa.array([value])).cast(
        pa.string()
    )


class HeavyDBBackend:
    """The backend contract on a HeavyDB server; see the module docstring."""

    def __init__(self, url: str, *, client: Client | None = None, timeout_s: float = 10.0) -> None:
        self.url = redact_url(url)
        parts = parse_url(url)
        self._where = f"HeavyDB at {parts['host']}:{parts['port']}"
        self._client = client if client is not None else self._guard(lambda: connect_client(url, timeout_s))
        for statement in DDL:
            self._run(statement)

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except BackendUnavailable:
            raise
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:300]
            raise BackendUnavailable(f"database error: {self._where}: {type(exc).__name__}: {first}") from exc

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = self._guard(lambda: self._client.execute(sql, params))
        return result

    def _load(self, table: str, columns: dict[str, Any]) -> None:
        import pyarrow as pa

        data = pa.table(columns)
        self._guard(lambda: self._client.load_arrow(table, data))

    def _delete_pnl(self, job_id: str) -> None:
        for table in PNL_TABLES:
            self._run(f"DELETE FROM {table} WHERE job_id = :job_id", {"job_id": job_id})

    def store_pnl(
        self,
        job_id: str,
        dates: np.ndarray,
        zones: Sequence[str] | None,
        strategies: Sequence[str],
        pnl: np.ndarray,
    ) -> None:
        import pyarrow as pa

        rows, n_strategies = pnl.shape
        self._delete_pnl(job_id)
        self._load(
            "heavyopt_days",
            {
                "job_id": _repeat(job_id, rows),
                "day_idx": pa.array(np.arange(rows, dtype=np.int32)),
                "trade_date": pa.array(dates.astype("datetime64[D]"), pa.date32()),
                "zone": pa.array(list(zones) if zones is not None else [None] * rows, pa.string()),
            },
        )
        self._load(
            "heavyopt_strategies",
            {
                "job_id": _repeat(job_id, n_strategies),
                "strategy_idx": pa.array(np.arange(n_strategies, dtype=np.int32)),
                "name": pa.array(list(strategies), pa.string()),
                "inverted": pa.array(np.zeros(n_strategies, dtype=bool)),
            },
        )
        # The P&L last: a job's P&L is complete only if its dimension tables are.
        self._load(
            "heavyopt_pnl",
            {
                "job_id": _repeat(job_id, rows * n_strategies),
                "day_idx": pa.array(np.repeat(np.arange(rows, dtype=np.int32), n_strategies)),
                "strategy_idx": pa.array(np.tile(np.arange(n_strategies, dtype=np.int32), rows)),
                "pnl": pa.array(np.ascontiguousarray(pnl, dtype=np.float64).ravel()),
            },
        )

    def apply_ulta(self, job_id: str, decide_rows: int | None = None) -> int:
        self._run(
            "UPDATE heavyopt_strategies SET inverted = TRUE "
            f"WHERE job_id = :job_id AND strategy_idx IN ({ULTA_LOSERS})",
            {"job_id": job_id, "decide_rows": ALL_ROWS if decide_rows is None else decide_rows},
        )
        rows = self._run(
            "SELECT COUNT(*) FROM heavyopt_strategies WHERE job_id = :job_id AND inverted", {"job_id": job_id}
        )
        return int(rows[0][0]) if rows else 0

    def fetch_pnl(self, job_id: str) -> StoredPnl:
        params = {"job_id": job_id}
        days = self._run("SELECT trade_date, zone FROM heavyopt_days WHERE job_id = :job_id ORDER BY day_idx", params)
        strat = self._run(
            "SELECT strategy_idx, name, inverted FROM heavyopt_strategies WHERE job_id = :job_id ORDER BY strategy_idx",
            params,
        )
        if not days:
            raise KeyError(f"no P&L stored for job {job_id!r}")
        cells = self._run(
            """SELECT p.day_idx, p.strategy_idx, CASE WHEN s.inverted THEN -p.pnl ELSE p.pnl END
               FROM heavyopt_pnl p JOIN heavyopt_strategies s
                 ON p.job_id = s.job_id AND p.strategy_idx = s.strategy_idx
               WHERE p.job_id = :job_id""",
            params,
        )
        matrix = np.zeros((len(days), len(strat)), dtype=np.float64)
        if cells:
            day_idx, strategy_idx, values = (np.asarray(col) for col in zip(*cells, strict=True))
            matrix[day_idx.astype(np.int64), strategy_idx.astype(np.int64)] = values.astype(np.float64)
        inverted = np.array([bool(row[2]) for row in strat], dtype=bool)
        zones = [zone for _, zone in days]
        return StoredPnl(
            pnl=matrix,
            dates=np.array([np.datetime64(day, "D") for day, _ in days], dtype="datetime64[D]"),
            zones=tuple(zones) if any(z is not None for z in zones) else None,
            strategies=tuple(f"{row[1]}_inv" if row[2] else str(row[1]) for row in strat),
            inverted=inverted,
        )

    def record_job(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(JOB_FIELDS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        params = {"job_id": job_id}
        if not self._run("SELECT COUNT(*) FROM heavyopt_jobs WHERE job_id = :job_id", params)[0][0]:
            self._run("INSERT INTO heavyopt_jobs (job_id) VALUES (:job_id)", params)
        if fields:
            assignments = ", ".join(f"{name} = :{name}" for name in fields)  # names checked above
            values = {k: (v.replace(microsecond=0) if isinstance(v, datetime) else v) for k, v in fields.items()}
            self._run(f"UPDATE heavyopt_jobs SET {assignments} WHERE job_id = :job_id", {**values, **params})

    def record_results(self, job_id: str, rows: Sequence[ResultRow]) -> None:
        import pyarrow as pa

        self._run("DELETE FROM heavyopt_results WHERE job_id = :job_id", {"job_id": job_id})
        if not rows:
            return
        self._load(
            "heavyopt_results",
            {
                "job_id": _repeat(job_id, len(rows)),
                "size": pa.array([r.size for r in rows], pa.int32()),
                "algorithm": pa.array([r.algorithm for r in rows], pa.string()),
                "status": pa.array([r.status for r in rows], pa.string()),
                "fitness": pa.array([r.fitness for r in rows], pa.float64()),
                "evaluations": pa.array([r.evaluations for r in rows], pa.int64()),
                "seconds": pa.array([r.seconds for r in rows], pa.float64()),
                "strategies": pa.array([json.dumps(list(r.strategies)) for r in rows], pa.string()),
                "error": pa.array([r.error for r in rows], pa.string()),
            },
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM heavyopt_jobs WHERE job_id = :job_id", {"job_id": job_id}
        )
        return dict(zip(JOB_COLUMNS, rows[0], strict=True)) if rows else None

    def results(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._run(
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM heavyopt_results WHERE job_id = :job_id ORDER BY size, algorithm",
            {"job_id": job_id},
        )
        out = [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in rows]
        for row in out:
            row["strategies"] = json.loads(row["strategies"])
        return out

    def prune(self, keep_pnl_jobs: int) -> int:
        stored = {r[0] for r in self._run("SELECT DISTINCT job_id FROM heavyopt_strategies")}
        stored |= {r[0] for r in self._run("SELECT DISTINCT job_id FROM heavyopt_days")}
        newest = self._run(
            f"SELECT job_id FROM heavyopt_jobs ORDER BY created_at DESC NULLS LAST LIMIT {int(keep_pnl_jobs)}"
        )
        keep = {r[0] for r in newest}
        old = sorted(stored - keep)
        for job_id in old:
            self._delete_pnl(job_id)
        return len(old)

    def close(self) -> None:
        self._guard(self._client.close)
