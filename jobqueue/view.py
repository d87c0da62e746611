"""The job database, read-only: what the status API and ``heavyopt status`` may ask of it.

The daemon owns ``queue.sqlite3`` (:class:`jobqueue.store.QueueStore`); readers open it with
``mode=ro``, so they can neither write a row nor change the schema. Until the daemon has made
the file, the view is empty.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

EVENT_FIELDS = ("id", "at", "kind", "step", "progress", "detail")


class QueueView:
    """Read-only queries over the daemon's job database (rows as dicts, oldest first)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._con is None:
                if not self.path.exists():
                    return []  # the daemon has not made its database yet
                self._con = sqlite3.connect(
                    f"{self.path.absolute().as_uri()}?mode=ro",
                    uri=True,
                    timeout=30,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._con.row_factory = sqlite3.Row
            return self._con.execute(sql, params).fetchall()

    def _jobs(self, where: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query(f"SELECT * FROM jobs WHERE {where} ORDER BY seq", params)]

    def jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every job, or those in ``state``."""
        return self._jobs("state = ?", (state,)) if state else self._jobs("1")

    def waiting(self) -> list[dict[str, Any]]:
        """Jobs waiting to run (``claiming`` or ``queued``)."""
        return self._jobs("state IN ('claiming', 'queued')")

    def submissions(self, job_id: str) -> list[dict[str, Any]]:
        """Every job of that id (an id can be reused once its job has ended)."""
        return self._jobs("job_id = ?", (job_id,))

    def active(self, job_id: str) -> dict[str, Any] | None:
        """The job of that id that is claiming, queued or running, if any."""
        rows = self._jobs("job_id = ? AND state IN ('claiming', 'queued', 'running')", (job_id,))
        return rows[0] if rows else None

    def get(self, seq: int) -> dict[str, Any]:
        rows = self._jobs("seq = ?", (seq,))
        if not rows:
            raise KeyError(seq)
        return rows[0]

    def events(self, seq: int, after: int = 0) -> list[dict[str, Any]]:
        """The job's history after event ``after`` (an event id), oldest first."""
        rows = self._query(
            "SELECT rowid, at, kind, step, progress, detail FROM events WHERE seq = ? AND rowid > ? ORDER BY rowid",
            (seq, after),
        )
        return [dict(zip(EVENT_FIELDS, r, strict=True)) for r in rows]

    def daemon(self) -> dict[str, Any]:
        """What the daemon last recorded of itself: state, host, pid, started_at, last_scan …"""
        return {k: json.loads(v) for k, v in self._query("SELECT key, value FROM daemon")}

    def ping(self) -> None:
        """Raise unless the job table can be read."""
        self._query("SELECT seq FROM jobs WHERE seq = -1")

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
