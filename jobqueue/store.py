"""The daemon's job state: one SQLite file per share, in the data folder, owned by the daemon.

Each share has its own file, ``<data_dir>/shares/<share id>/queue.sqlite3``, found by the id the
share carries (:meth:`jobqueue.share.Share.identity`): a daemon, the API and ``heavyopt status``
on one share never see another share's jobs, and a share moved to a new path keeps its history.

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


BUSY_TIMEOUT_S = 30.0  # a write waits this long for another program's lock before it fails
LEGACY_NAME = "queue.sqlite3"  # before one database per share: <data_dir>/queue.sqlite3, every share's jobs


def store_folder(data_dir: Path, share_id: str) -> Path:
    """Where a share's job database and its daemon lock live."""
    return data_dir / "shares" / share_id


def store_path(data_dir: Path, share_id: str | None) -> Path | None:
    """A share's job database (None for a share no daemon has started on: it has no jobs yet)."""
    return store_folder(data_dir, share_id) / "queue.sqlite3" if share_id else None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class QueueStore:
    """All writes come from the daemon; any process may read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
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

    def import_legacy(self, legacy: Path, share_root: str) -> int:
        """Copy one share's jobs and events from the database every share once shared; returns the jobs copied.

        Only into an empty database (the first start on this share); the old file is only read.
        """
        with self._lock:
            if self._con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]:
                return 0
            self._con.execute("ATTACH DATABASE ? AS legacy", [str(legacy)])
            try:
                with self.transaction() as con:
                    cur = con.execute("INSERT INTO jobs SELECT * FROM legacy.jobs WHERE share = ?", [share_root])
                    con.execute(
                        "INSERT INTO events SELECT e.* FROM legacy.events e JOIN legacy.jobs j ON e.seq = j.seq "
                        "WHERE j.share = ?",
                        [share_root],
                    )
                    return int(cur.rowcount)
            finally:
                self._con.execute("DETACH DATABASE legacy")

    def close(self) -> None:
        self._con.close()
