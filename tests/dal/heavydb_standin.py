"""A stand-in for a HeavyDB connection at our adapter boundary (``dal.heavydb_backend.Client``).

No HeavyDB server can run here, so the backend's SQL runs on an in-memory DuckDB after the
stand-in checks it keeps to what HeavyDB offers: no transactions, ``:name`` parameters,
HeavyDB column types (translated), Arrow loads whose columns match the table in order.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

TYPES = (
    (r"TEXT ENCODING (DICT(\(\d+\))?|NONE)", "VARCHAR"),
    (r"DATE ENCODING DAYS\(32\)", "DATE"),
    (r"TIMESTAMP\(0\)", "TIMESTAMP"),
)


class DuckDBStandIn:
    def __init__(self) -> None:
        self.con = duckdb.connect(":memory:")
        self.statements: list[str] = []
        self.loads: list[tuple[str, int]] = []
        self.closed = False

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        assert not re.search(r"\b(BEGIN|COMMIT|ROLLBACK|TRANSACTION)\b", sql, re.I), "HeavyDB has no transactions"
        assert "?" not in sql and "$" not in sql, "HeavyDB's client binds :name parameters"
        self.statements.append(sql)
        translated = sql
        for pattern, replacement in TYPES:
            translated = re.sub(pattern, replacement, translated)
        translated = re.sub(r"(?<![:\w]):(\w+)", r"$\1", translated)
        names = set(re.findall(r"\$(\w+)", translated))
        cursor = self.con.execute(translated, {k: v for k, v in (params or {}).items() if k in names})
        return cursor.fetchall() if cursor.description else []

    def load_arrow(self, table: str, data: Any) -> None:
        columns = [row[0] for row in self.con.execute(f"DESCRIBE {table}").fetchall()]
        assert data.column_names == columns, f"{table}: Arrow columns {data.column_names} != table {columns}"
        self.loads.append((table, data.num_rows))
        self.con.register("heavyopt_incoming", data)
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM heavyopt_incoming")
        finally:
            self.con.unregister("heavyopt_incoming")

    def close(self) -> None:
        self.closed = True
        self.con.close()
