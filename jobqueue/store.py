"""The daemon's job state: one SQLite file beside the DuckDB store, owned by the daemon.

SQLite (WAL) and not the DuckDB file: a running job's process writes the DuckDB file
while the daemon records progress, and readers (``heavyopt status``, the API) read this
one at any time. Rows are never deleted; ``seq`` orders them by arrival.

States: ``claiming`` (row written, file not yet moved) → ``queued`` → ``running`` →
``completed`` | ``failed``. A partial unique index keeps one active row per job id,
so a job id can never be queued or run twice at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ACTIVE = ("claiming", "queued", "running")
FINAL = ("completed", "failed")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        share TEXT NOT NULL,
        state TEXT NOT NULL,
        kind TEXT NOT NULL,              -- 'csv' (dropped into input/) or 'jobfile' (jobs/queue/<id>.json)
        input_name TEXT,                 -- the name the user gave the input
        origin TEXT,                     -- where it was found, relative to the share
        job_dir TEXT,                    -- archive/<job_id>/, relative to the share
        input_path TEXT,                 -- the input inside job_dir, relative to the share
        request_json TEXT,               -- the job file as the client wrote it
        layers_json TEXT,                -- the config layers the job runs with
        input_sha256 TEXT,
        config_sha256 TEXT,
        submitted_at TEXT, claimed_at TEXT, started_at TEXT, finished_at TEXT, updated_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        step TEXT,
        progress REAL NOT NULL DEFAULT 0,
        run_dir TEXT,
        result_json TEXT,
        reason TEXT,
        duplicate_of TEXT,
        published INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS one_active_job ON jobs (job_id)
        WHERE state IN ('claiming', 'queued', 'running')""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq)",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL, step TEXT, progress REAL, detail TEXT)""",
    "CREATE INDEX IF NOT EXISTS events_by_job ON events (seq)",
    "CREATE TABLE IF NOT EXISTS daemon (key TEXT PRIMARY KEY, value TEXT)",
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class QueueStore:
    """All writes come from the daemon; any process may read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._con.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMA:
            self._con.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def add(self, **fields: Any) -> int:
        fields.setdefault("updated_at", now_iso())
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self.transaction() as con:
            cur = con.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", list(fields.values()))
            seq = int(cur.lastrowid or 0)
            con.execute("INSERT INTO events VALUES (?, ?, ?, NULL, NULL, NULL)", [seq, now_iso(), fields["state"]])
        return seq

    def update(self, seq: int, *, event: str | None = None, detail: str | None = None, **fields: Any) -> None:
        """Set ``fields`` on the job; ``event`` (default: the new state, if any) is appended to its history."""
        fields["updated_at"] = now_iso()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        kind = event or fields.get("state")
        with self.transaction() as con:
            con.execute(f"UPDATE jobs SET {assignments} WHERE seq = ?", [*fields.values(), seq])
            if kind:
                con.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [seq, fields["updated_at"], kind, fields.get("step"), fields.get("progress"), detail],
                )

    def get(self, seq: int) -> dict[str, Any]:
        with self._lock:
            row = self._con.execute("SELECT * FROM jobs WHERE seq = ?", [seq]).fetchone()
        if row is None:
            raise KeyError(seq)
        return dict(row)

    def rows(self, where: str = "1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._con.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY seq", params)]

    def active(self, job_id: str) -> dict[str, Any] | None:
        rows = self.rows("job_id = ? AND state IN ('claiming', 'queued', 'running')", (job_id,))
        return rows[0] if rows else None

    def events(self, seq: int, after: int = 0) -> list[dict[str, Any]]:
        """The job's history after event ``after`` (an event id), oldest first."""
        with self._lock:
            cur = self._con.execute(
                "SELECT rowid, at, kind, step, progress, detail FROM events WHERE seq = ? AND rowid > ? ORDER BY rowid",
                [seq, after],
            )
            return [dict(zip(("id", "at", "kind", "step", "progress", "detail"), r, strict=True)) for r in cur]

    def set_daemon(self, **values: Any) -> None:
        with self.transaction() as con:
            for key, value in values.items():
                con.execute("INSERT OR REPLACE INTO daemon VALUES (?, ?)", [key, json.dumps(value)])

    def daemon(self) -> dict[str, Any]:
        with self._lock:
            return {k: json.loads(v) for k, v in self._con.execute("SELECT key, value FROM daemon")}

    def close(self) -> None:
        self._con.close()
