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

Deadlines: the connect and login within ``DATABASE.connect_timeout_s``, every statement and
load within ``DATABASE.query_timeout_s`` (see :func:`_bounded_transports` and
:class:`HeavyaiClient`). Values are bound as the client binds them: rendered into the SQL text
as literals, so only plain Python values, for exactly the statement's ``:name`` parameters.
Loads are single record batches of at most ``LOAD_BATCH_BYTES``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from dal.base import ALL_ROWS, JOB_FIELDS, ULTA_TOLERANCE, ResultRow, StoredPnl, blank_to_null, redact_url
from errors import BackendUnavailable

log = logging.getLogger("heavyopt")

# One load_table_arrow call carries one record batch of at most this many bytes: a thrift message
# must stay under 2 GiB, and the server holds a whole message in memory before it loads it.
LOAD_BATCH_BYTES = 256 << 20
PARAMETER = re.compile(r"(?<![:\w]):(\w+)")  # a ``:name`` parameter (not ``::type``)

DDL = (
    """CREATE TABLE IF NOT EXISTS {p}jobs (
        job_id TEXT ENCODING DICT(32), source TEXT ENCODING NONE, status TEXT ENCODING DICT(8),
        created_at TIMESTAMP(0), finished_at TIMESTAMP(0), n_rows INTEGER, n_strategies INTEGER, seed BIGINT,
        config_json TEXT ENCODING NONE, winner_json TEXT ENCODING NONE, error TEXT ENCODING NONE,
        run_dir TEXT ENCODING NONE)""",
    """CREATE TABLE IF NOT EXISTS {p}days (
        job_id TEXT ENCODING DICT(32), day_idx INTEGER, trade_date DATE ENCODING DAYS(32),
        zone TEXT ENCODING DICT(16))""",
    """CREATE TABLE IF NOT EXISTS {p}strategies (
        job_id TEXT ENCODING DICT(32), strategy_idx INTEGER, name TEXT ENCODING DICT(32), inverted BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS {p}pnl (
        job_id TEXT ENCODING DICT(32), day_idx INTEGER, strategy_idx INTEGER, pnl DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS {p}results (
        job_id TEXT ENCODING DICT(32), size INTEGER, algorithm TEXT ENCODING DICT(8), status TEXT ENCODING DICT(8),
        fitness DOUBLE, evaluations BIGINT, seconds DOUBLE, strategies TEXT ENCODING NONE,
        error TEXT ENCODING NONE)""",
)
TABLES = ("jobs", "days", "strategies", "pnl", "results")
DEFAULT_PREFIX = "heavyopt_"
JOB_COLUMNS = ("job_id", *JOB_FIELDS)
RESULT_COLUMNS = ("job_id", "size", "algorithm", "status", "fitness", "evaluations", "seconds", "strategies", "error")
PNL_TABLES = ("pnl", "days", "strategies")
ULTA_LOSERS = f"""
    SELECT strategy_idx FROM {{p}}pnl WHERE job_id = :job_id AND day_idx < :decide_rows
    GROUP BY strategy_idx HAVING SUM(pnl) < -{ULTA_TOLERANCE!r} * SUM(ABS(pnl))"""


class Client(Protocol):
    """The adapter boundary: what the backend needs from a HeavyDB connection.

    ``execute`` gets plain Python values (str, int, float, bool, None, datetime, date) for
    exactly the ``:name`` parameters of ``sql``, as the real client renders them into the SQL
    text; ``load_arrow`` one record batch of at most ``LOAD_BATCH_BYTES``."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def load_arrow(self, table: str, data: Any) -> None: ...  # a pyarrow.Table, columns in table order

    def close(self) -> None: ...


class HeavyaiClient:
    """:class:`Client` over ``heavyai.connect`` (DB-API with ``:name`` parameters, Arrow loads).

    Every call has a deadline (``query_timeout_s``) in all: each read and write of the thrift
    socket times out after it, and a timer shuts the socket when the whole call passes it (a
    server trickling bytes would otherwise reset a per-read timeout forever). A connection cut
    by the deadline is not used again: the backend's next call fails and the job falls back.
    """

    def __init__(self, con: Any, query_timeout_s: float = 300.0, logout_timeout_s: float = 10.0) -> None:
        self._con = con
        self._timeout_s = query_timeout_s
        self._logout_timeout_s = logout_timeout_s
        self._expired = False
        self._lock = threading.Lock()
        self._running = 0  # the call in flight (a counter: one per call)
        self._calls = 0
        transport = _transport(con)
        if transport is not None and hasattr(transport, "setTimeout"):
            transport.setTimeout(query_timeout_s * 1000)

    def _within_deadline(self, call: Any, timeout_s: float | None = None) -> Any:
        limit = self._timeout_s if timeout_s is None else timeout_s
        with self._lock:
            self._calls += 1
            self._running = number = self._calls
        timer = threading.Timer(limit, self._expire, args=(number,))
        timer.daemon = True
        timer.start()
        try:
            return call()
        except Exception as exc:
            if self._expired or _timed_out(exc):  # the timer, or the socket's own timeout, first
                self._expire(number)  # half an answer read: the connection is of no further use
                name = "DATABASE.query_timeout_s" if timeout_s is None else "DATABASE.connect_timeout_s"
                raise TimeoutError(f"no complete answer within {limit:g} s ({name})") from exc
            raise
        finally:
            with self._lock:
                self._running = 0  # a timer firing from now on finds nothing to cut
            timer.cancel()

    def _expire(self, number: int) -> None:
        """Call ``number``'s deadline passed: cut the connection, so its blocked read returns now
        (unless that call has returned meanwhile)."""
        with self._lock:
            if self._running != number:
                return
            self._expired = True
        _shut(self._con)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            cursor = self._con.execute(sql, params) if params else self._con.execute(sql)
            try:
                return list(cursor.fetchall()) if cursor.description else []
            finally:
                cursor.close()

        result: list[tuple[Any, ...]] = self._within_deadline(run)
        return result

    def load_arrow(self, table: str, data: Any) -> None:
        self._within_deadline(lambda: self._con.load_table_arrow(table, data))

    def close(self) -> None:
        """Log out (``disconnect``, within the connect timeout), then close the socket: the client's
        own ``close()`` only logs out."""
        try:
            if not self._expired:
                self._within_deadline(self._con.close, self._logout_timeout_s)
        finally:
            transport = _transport(self._con)
            if transport is not None:
                with suppress(Exception):  # an HTTP client cut by a deadline has no connection left
                    transport.close()


def _transport(con: Any) -> Any:
    """The thrift transport under a heavydb connection: its socket (binary) or HTTP client."""
    return getattr(con, "_socket", None) or getattr(con, "_transport", None)


def _shut(con: Any) -> None:
    _shut_transport(_transport(con))


def _shut_transport(transport: Any) -> None:
    """Shut the socket under a thrift transport: wakes a read blocked on it in another thread
    (closing it would not). TSocket / TSSLSocket keep it as ``handle``; THttpClient in its
    ``http.client`` connection."""
    handle = getattr(transport, "handle", None)
    if handle is None:
        handle = getattr(getattr(transport, "_THttpClient__http", None), "sock", None)
    with suppress(OSError):
        if handle is not None:
            handle.shutdown(socket.SHUT_RDWR)


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


_CONNECTING = threading.Lock()


@contextmanager
def _bounded_transports(timeout_s: float) -> Iterator[list[Any]]:
    """While connecting, the thrift transports the client builds time out after ``timeout_s``.

    The client builds ``TSocket`` / ``TSSLSocket`` / ``THttpClient`` itself, and ``TSocket.open``
    sets the socket's timeout to its own (None), so ``socket.setdefaulttimeout`` has no effect:
    a host that drops packets would block for the OS connect timeout (about 2 minutes) and one
    that accepts and never answers, forever. For the length of the connect the client's module
    sees subclasses that start with our timeout (connect, TLS and login all honour it). Yields
    the transports built, so a failed connect can close them.
    """
    import heavydb.connection as client_module
    from thrift.transport import THttpClient, TSocket, TSSLSocket

    built: list[Any] = []

    def bounded(base: type) -> type:
        class Bounded(base):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.setTimeout(timeout_s * 1000)
                built.append(self)

        return Bounded

    with _CONNECTING:
        saved = (client_module.TSocket, client_module.TSSLSocket, client_module.THttpClient)
        client_module.TSocket = SimpleNamespace(TSocket=bounded(TSocket.TSocket))
        client_module.TSSLSocket = SimpleNamespace(TSSLSocket=bounded(TSSLSocket.TSSLSocket))
        client_module.THttpClient = SimpleNamespace(THttpClient=bounded(THttpClient.THttpClient))
        try:
            yield built
        finally:
            client_module.TSocket, client_module.TSSLSocket, client_module.THttpClient = saved


def connect_client(url: str, timeout_s: float, query_timeout_s: float = 300.0) -> Client:
    """Connect with the ``heavyai`` package (the one place that imports it): connect and login
    within ``timeout_s``, every later call within ``query_timeout_s``."""
    kwargs = parse_url(url)
    try:
        import heavyai
    except ImportError:
        raise BackendUnavailable(
            "database error: DATABASE.url is a heavydb:// URL but the HeavyDB client is not installed; "
            "pip install 'heavy-optimizer[heavydb]'"
        ) from None
    with _bounded_transports(timeout_s) as built:
        # Each socket operation times out on its own; this bounds connect and login as a whole
        # (a server trickling its answer byte by byte). The OS resolver's DNS lookup is not bounded.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            for transport in built:
                _shut_transport(transport)

        timer = threading.Timer(timeout_s, expire)
        timer.daemon = True
        timer.start()
        try:
            con = _quiet(heavyai.Connection)(**kwargs)
        except Exception as exc:
            for transport in built:  # the client leaves a half-open connection behind
                with suppress(Exception):
                    transport.close()
            if expired.is_set() or _timed_out(exc):
                raise TimeoutError(
                    f"no answer within {timeout_s:g} s (DATABASE.connect_timeout_s): {type(exc).__name__}"
                ) from exc
            raise
        finally:
            timer.cancel()
        if expired.is_set():  # connected just as the timer fired: the socket may be shut
            with suppress(Exception):
                _transport(con).close()
            raise TimeoutError(f"no answer within {timeout_s:g} s (DATABASE.connect_timeout_s)")
    return HeavyaiClient(con, query_timeout_s, logout_timeout_s=timeout_s)


def _quiet(connection: type) -> type:
    """The client's connection class, whose ``__del__`` (a logout) stays quiet when the connection
    is already cut: a failed connect leaves a half-built one behind, whose socket we closed."""

    class Quiet(connection):
        def __del__(self) -> None:
            with suppress(Exception):
                super().__del__()

    return Quiet


def _timed_out(exc: BaseException) -> bool:
    """Whether a timeout is behind ``exc`` (the client wraps thrift's in ValueError or OperationalError)."""
    from thrift.transport.TTransport import TTransportException

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TimeoutError) or (
            isinstance(current, TTransportException) and current.type == TTransportException.TIMED_OUT
        ):
            return True
        todo += [current.__cause__, current.__context__, getattr(current, "inner", None)]
    return False


def _repeat(value: str, count: int) -> Any:
    """``count`` copies of one string as an Arrow string column, built in C++ rather than from a list."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(count, dtype=np.int32)), pa.array([value])).cast(
        pa.string()
    )


def plain(value: Any) -> Any:
    """A parameter value as the real client can render it: plain Python, never a NumPy scalar
    (SQLAlchemy's literal rendering raises ``CompileError`` on one), timestamps to the second."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime):
        return value.replace(microsecond=0)
    if value is None or isinstance(value, str | bool | int | float | date):
        return value
    raise TypeError(f"cannot bind a {type(value).__name__} as a HeavyDB parameter")


class HeavyDBBackend:
    """The backend contract on a HeavyDB server; see the module docstring.

    ``prefix`` starts every table name (``heavyopt_`` by default; a test against a shared
    server uses one of its own)."""

    def __init__(
        self,
        url: str,
        *,
        client: Client | None = None,
        timeout_s: float = 10.0,
        query_timeout_s: float = 300.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", prefix):
            raise ValueError(f"table prefix {prefix!r}: letters, digits and '_' only")
        self.url = redact_url(url)
        self._p = prefix
        parts = parse_url(url)
        self._where = f"HeavyDB at {parts['host']}:{parts['port']}"
        self._client = (
            client if client is not None else self._guard(lambda: connect_client(url, timeout_s, query_timeout_s))
        )
        for statement in DDL:
            self._run(statement.format(p=prefix))

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except BackendUnavailable:
            raise
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:300]
            raise BackendUnavailable(f"database error: {self._where}: {type(exc).__name__}: {first}") from exc

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """``sql`` with its ``:name`` parameters bound as plain values; a name missing from either
        side is our bug (the real client would bind a missing one as NULL), so it raises ValueError."""
        wanted, given = set(PARAMETER.findall(sql)), set(params or {})
        if wanted != given:
            raise ValueError(f"parameters {sorted(given)} do not match the statement's {sorted(wanted)}: {sql[:80]}")
        bound = {name: plain(value) for name, value in (params or {}).items()} or None
        result: list[tuple[Any, ...]] = self._guard(lambda: self._client.execute(sql, bound))
        return result

    def _load(self, table: str, columns: dict[str, Any]) -> None:
        """Arrow-load ``columns`` into ``table`` in single-batch calls of at most ``LOAD_BATCH_BYTES``;
        building the Arrow data is inside the guard, so a conversion error falls back like any other."""

        def load() -> None:
            import pyarrow as pa

            data = pa.table({name: values() if callable(values) else values for name, values in columns.items()})
            rows = max(LOAD_BATCH_BYTES * max(data.num_rows, 1) // max(data.nbytes, 1), 1)  # the average row's share
            start = 0
            while True:
                count = rows
                piece = data.slice(start, count).combine_chunks()
                while piece.nbytes > LOAD_BATCH_BYTES and count > 1:  # longer strings than the average here
                    count //= 2
                    piece = data.slice(start, count).combine_chunks()
                self._client.load_arrow(self._p + table, piece)
                start += count
                if start >= data.num_rows:
                    return

        self._guard(load)

    def _delete_pnl(self, job_id: str) -> None:
        for table in PNL_TABLES:
            self._run(f"DELETE FROM {self._p}{table} WHERE job_id = :job_id", {"job_id": job_id})

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
            "days",
            {
                "job_id": lambda: _repeat(job_id, rows),
                "day_idx": lambda: pa.array(np.arange(rows, dtype=np.int32)),
                "trade_date": lambda: pa.array(dates.astype("datetime64[D]"), pa.date32()),
                "zone": lambda: pa.array(list(zones) if zones is not None else [None] * rows, pa.string()),
            },
        )
        self._load(
            "strategies",
            {
                "job_id": lambda: _repeat(job_id, n_strategies),
                "strategy_idx": lambda: pa.array(np.arange(n_strategies, dtype=np.int32)),
                "name": lambda: pa.array(list(strategies), pa.string()),
                "inverted": lambda: pa.array(np.zeros(n_strategies, dtype=bool)),
            },
        )
        # The P&L last: a job's P&L is complete only if its dimension tables are. A load cut part-way
        # leaves some of its rows; the next store of the job (it deletes first) or prune removes them.
        self._load(
            "pnl",
            {
                "job_id": lambda: _repeat(job_id, rows * n_strategies),
                "day_idx": lambda: pa.array(np.repeat(np.arange(rows, dtype=np.int32), n_strategies)),
                "strategy_idx": lambda: pa.array(np.tile(np.arange(n_strategies, dtype=np.int32), rows)),
                "pnl": lambda: pa.array(np.ascontiguousarray(pnl, dtype=np.float64).ravel()),
            },
        )

    def apply_ulta(self, job_id: str, decide_rows: int | None = None) -> int:
        self._run(
            f"UPDATE {self._p}strategies SET inverted = TRUE "
            f"WHERE job_id = :job_id AND strategy_idx IN ({ULTA_LOSERS.format(p=self._p)})",
            {"job_id": job_id, "decide_rows": ALL_ROWS if decide_rows is None else decide_rows},
        )
        rows = self._run(
            f"SELECT COUNT(*) FROM {self._p}strategies WHERE job_id = :job_id AND inverted", {"job_id": job_id}
        )
        return int(rows[0][0]) if rows else 0

    def fetch_pnl(self, job_id: str) -> StoredPnl:
        params, p = {"job_id": job_id}, self._p
        days = self._run(f"SELECT trade_date, zone FROM {p}days WHERE job_id = :job_id ORDER BY day_idx", params)
        strat = self._run(
            f"SELECT strategy_idx, name, inverted FROM {p}strategies WHERE job_id = :job_id ORDER BY strategy_idx",
            params,
        )
        if not days:
            raise KeyError(f"no P&L stored for job {job_id!r}")
        cells = self._run(
            f"""SELECT p.day_idx, p.strategy_idx, CASE WHEN s.inverted THEN -p.pnl ELSE p.pnl END
               FROM {p}pnl p JOIN {p}strategies s
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
        if not self._run(f"SELECT COUNT(*) FROM {self._p}jobs WHERE job_id = :job_id", params)[0][0]:
            self._run(f"INSERT INTO {self._p}jobs (job_id) VALUES (:job_id)", params)
        if fields:
            assignments = ", ".join(f"{name} = :{name}" for name in fields)  # names checked above
            values = {name: blank_to_null(value) for name, value in fields.items()}
            self._run(f"UPDATE {self._p}jobs SET {assignments} WHERE job_id = :job_id", {**values, **params})

    def record_results(self, job_id: str, rows: Sequence[ResultRow]) -> None:
        import pyarrow as pa

        self._run(f"DELETE FROM {self._p}results WHERE job_id = :job_id", {"job_id": job_id})
        if not rows:
            return
        self._load(
            "results",
            {
                "job_id": lambda: _repeat(job_id, len(rows)),
                "size": lambda: pa.array([r.size for r in rows], pa.int32()),
                "algorithm": lambda: pa.array([r.algorithm for r in rows], pa.string()),
                "status": lambda: pa.array([r.status for r in rows], pa.string()),
                "fitness": lambda: pa.array([r.fitness for r in rows], pa.float64()),
                "evaluations": lambda: pa.array([r.evaluations for r in rows], pa.int64()),
                "seconds": lambda: pa.array([r.seconds for r in rows], pa.float64()),
                "strategies": lambda: pa.array([json.dumps(list(r.strategies)) for r in rows], pa.string()),
                "error": lambda: pa.array([blank_to_null(r.error) for r in rows], pa.string()),
            },
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM {self._p}jobs WHERE job_id = :job_id", {"job_id": job_id}
        )
        return dict(zip(JOB_COLUMNS, rows[0], strict=True)) if rows else None

    def results(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._run(
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM {self._p}results WHERE job_id = :job_id ORDER BY size, algorithm",
            {"job_id": job_id},
        )
        out = [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in rows]
        for row in out:
            row["strategies"] = json.loads(row["strategies"])
        return out

    def prune(self, keep_pnl_jobs: int) -> int:
        p = self._p
        stored = {r[0] for r in self._run(f"SELECT DISTINCT job_id FROM {p}strategies")}
        stored |= {r[0] for r in self._run(f"SELECT DISTINCT job_id FROM {p}days")}
        newest = self._run(f"SELECT job_id FROM {p}jobs ORDER BY created_at DESC NULLS LAST LIMIT {int(keep_pnl_jobs)}")
        keep = {r[0] for r in newest}
        old = sorted(stored - keep)
        for job_id in old:
            self._delete_pnl(job_id)
        return len(old)

    def drop_tables(self) -> None:
        """Drop this prefix's tables (a test's own, on a shared server)."""
        for table in TABLES:
            self._run(f"DROP TABLE IF EXISTS {self._p}{table}")

    def close(self) -> None:
        """Log out and release the connection; never raises (the job's outcome is already decided)."""
        try:
            self._guard(self._client.close)
        except BackendUnavailable as exc:
            log.warning("closing the HeavyDB connection failed (%s); it is released all the same", exc)
