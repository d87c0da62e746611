"""A stand-in for a HeavyDB connection at our adapter boundary (``dal.heavydb_backend.Client``).

No HeavyDB server can run here, so the backend's SQL runs on an in-memory DuckDB. The
stand-in is as strict as the real client (``heavyai`` 1.3 / ``heavydb`` 8) and server on what
the backend sends it:

- parameters are rendered into the SQL text by the real client's own binder
  (``heavydb._parsers._bind_parameters``: SQLAlchemy literal rendering), so a NumPy value
  raises ``CompileError`` and an unknown name ``ArgumentError``, as they do against a server;
- no transactions; HeavyDB's column types (translated for DuckDB);
- ``''`` stored in a ``TEXT ENCODING NONE`` column reads back as NULL, as on HeavyDB;
- an Arrow load is one record batch of at most ``max_load_bytes`` (a thrift message is
  limited to 2 GiB), with the table's column names, in order, and exactly its types (the
  server converts nothing);
- ``close()`` fails when ``fail_close`` is set, as the logout of a dead connection does.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pyarrow as pa
from heavydb._parsers import _bind_parameters

TYPES = (
    (r"TEXT ENCODING (DICT(\(\d+\))?|NONE)", "VARCHAR"),
    (r"DATE ENCODING DAYS\(32\)", "DATE"),
    (r"TIMESTAMP\(0\)", "TIMESTAMP"),
)
ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
}
THRIFT_MESSAGE_LIMIT = 2**31 - 1


class DuckDBStandIn:
    def __init__(self, max_load_bytes: int = THRIFT_MESSAGE_LIMIT) -> None:
        self.con = duckdb.connect(":memory:")
        self.statements: list[str] = []
        self.loads: list[tuple[str, int]] = []
        self.closed = False
        self.fail_close = False
        self.max_load_bytes = max_load_bytes
        self._unencoded: dict[str, list[str]] = {}  # table -> its TEXT ENCODING NONE columns

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        assert not re.search(r"\b(BEGIN|COMMIT|ROLLBACK|TRANSACTION)\b", sql, re.I), "HeavyDB has no transactions"
        assert "?" not in sql and "$" not in sql, "HeavyDB's client binds :name parameters"
        operation = sql.strip()
        if params is not None:  # as heavydb.cursor.Cursor.execute does
            operation = str(_bind_parameters(operation, params))
        self.statements.append(operation)
        self._learn_columns(operation)
        translated = operation
        for pattern, replacement in TYPES:
            translated = re.sub(pattern, replacement, translated)
        cursor = self.con.execute(translated)
        rows = cursor.fetchall() if cursor.description else []
        self._empty_text_is_null()
        return rows

    def _learn_columns(self, sql: str) -> None:
        created = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)\s*$", sql, re.S)
        if created:
            table, body = created.groups()
            self._unencoded[table] = [c.split()[0] for c in body.split(",") if "TEXT ENCODING NONE" in c]
        dropped = re.match(r"DROP TABLE IF EXISTS (\w+)", sql)
        if dropped:
            self._unencoded.pop(dropped.group(1), None)

    def _empty_text_is_null(self) -> None:
        for table, columns in self._unencoded.items():
            for column in columns:
                self.con.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = ''")

    def load_arrow(self, table: str, data: Any) -> None:
        described = self.con.execute(f"DESCRIBE {table}").fetchall()
        columns = [row[0] for row in described]
        assert data.column_names == columns, f"{table}: Arrow columns {data.column_names} != table {columns}"
        for field, row in zip(data.schema, described, strict=True):
            expected = ARROW_TYPES[row[1]]
            assert field.type == expected, f"{table}.{field.name}: Arrow {field.type}, the table wants {expected}"
        batches = data.to_batches()
        assert len(batches) <= 1, f"{table}: {len(batches)} record batches in one load; the server reads one"
        assert data.nbytes <= self.max_load_bytes, f"{table}: a {data.nbytes:,}-byte load is over the message limit"
        self.loads.append((table, data.num_rows))
        self.con.register("heavyopt_incoming", data)
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM heavyopt_incoming")
        finally:
            self.con.unregister("heavyopt_incoming")
        self._empty_text_is_null()

    def close(self) -> None:
        if self.fail_close:
            raise ConnectionResetError("[Errno 104] Connection reset by peer")
        self.closed = True
        self.con.close()
