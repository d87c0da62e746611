"""The read-only view of the job database that the status API and ``heavyopt status`` use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobqueue.store import QueueStore
from jobqueue.view import QueueView


def test_the_view_reads_what_the_store_writes_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state dir" / "queue.sqlite3"
    view = QueueView(path)
    assert view.jobs() == [] and view.daemon() == {} and view.events(1) == [] and view.active("a") is None
    view.ping()
    assert not path.exists()  # an empty view until the daemon makes its database
    store = QueueStore(path)
    seq = store.add(job_id="a", share=str(tmp_path), state="queued", kind="csv")
    store.set_daemon(state="running", last_scan="2026-01-01T00:00:00+00:00")
    assert [r["job_id"] for r in view.waiting()] == ["a"] and view.jobs("running") == []
    store.update(seq, state="running", step="load", progress=5.0)
    assert view.get(seq) == store.get(seq) and view.active("a") == store.get(seq)
    assert view.jobs("running") == view.jobs() == view.submissions("a") == store.rows()
    assert view.events(seq) == store.events(seq) and view.events(seq, 1) == store.events(seq, 1)
    assert view.daemon() == store.daemon()
    with pytest.raises(KeyError):
        view.get(seq + 1)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        view._query("DELETE FROM jobs")
    store.close()
    view.close()
    assert QueueView(path).jobs("running")[0]["step"] == "load"
