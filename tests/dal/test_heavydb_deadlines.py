"""HeavyDB's deadlines against real sockets on 127.0.0.1, with the real ``heavyai`` client.

Each misbehaving server (tests/dal/fake_heavydb.py) must end in the DuckDB fallback within
the deadline plus a small margin, with the reason in ``fallbacks``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import SimpleNamespace

import pytest

from dal.fallback import FallbackBackend
from dal.heavydb_backend import HeavyaiClient, HeavyDBBackend
from errors import BackendUnavailable
from optimizer.config import Config, load_config
from optimizer.pipeline import run_job
from optimizer.store import open_store
from optimizer.synthetic import write_csv
from tests.dal import fake_heavydb
from tests.jobqueue.conftest import wait_for

MARGIN_S = 3.0  # beyond the deadline: thread wake-ups on a loaded machine, the DuckDB file opened for the fallback


def config(tmp_path: Path, port: int, *extra: str) -> Config:
    return load_config(
        overrides=[
            f"DATABASE.url=heavydb://admin:secret@127.0.0.1:{port}/heavyai",
            f"DATABASE.data_dir={tmp_path / 'data'}",
            "DATABASE.connect_timeout_s=1",
            "DATABASE.query_timeout_s=1.5",
            "PORTFOLIO.min_size=5",
            "PORTFOLIO.max_size=6",
            "OPTIMIZATION.evaluation_budget=200",
            "COMPUTE.workers=1",
            *extra,
        ]
    )


@pytest.fixture
def thrift_server() -> Iterator[fake_heavydb.ThriftServer]:
    server = fake_heavydb.ThriftServer()
    yield server
    server.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "misbehaving", [fake_heavydb.full_backlog, fake_heavydb.silent, fake_heavydb.half_answer, fake_heavydb.trickle]
)
def test_a_server_that_does_not_answer_the_login_falls_back_within_the_connect_deadline(
    tmp_path: Path, misbehaving: Callable[[], AbstractContextManager[int]]
) -> None:
    with misbehaving() as port:
        started = time.monotonic()
        store = open_store(config(tmp_path, port))
        took = time.monotonic() - started
    assert took < 1.0 + MARGIN_S, f"{took:.1f} s"
    assert isinstance(store, FallbackBackend) and store.fell_back and store.url.startswith("duckdb:///")
    assert store.fallback_reason is not None
    assert f"HeavyDB at 127.0.0.1:{port}" in store.fallback_reason
    assert "no answer within 1 s (DATABASE.connect_timeout_s)" in store.fallback_reason
    assert "secret" not in store.fallback_reason
    store.close()


@pytest.mark.timeout(60)
def test_a_statement_that_never_finishes_ends_at_the_query_deadline(
    thrift_server: fake_heavydb.ThriftServer,
) -> None:
    db = HeavyDBBackend(f"heavydb://admin:x@127.0.0.1:{thrift_server.port}/heavyai", timeout_s=1, query_timeout_s=1.5)
    assert len(thrift_server.statements) == 5  # the DDL, answered
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"no complete answer within 1\.5 s \(DATABASE\.query_timeout_s\)"):
        db.record_job("j", status="running")
    took = time.monotonic() - started
    assert 1.5 <= took < 1.5 + MARGIN_S, f"{took:.1f} s"
    db.close()  # on a connection the deadline cut: no error


@pytest.mark.timeout(120)
def test_a_job_whose_server_hangs_mid_job_completes_on_duckdb_and_says_why(
    tmp_path: Path, thrift_server: fake_heavydb.ThriftServer
) -> None:
    csv = write_csv(tmp_path / "in.csv", 40, 30, seed=1)
    outcome = run_job(csv, config(tmp_path, thrift_server.port), out_dir=tmp_path / "out")
    reason = outcome.report.fallbacks["database"]
    assert reason.startswith(f"heavydb://admin:***@127.0.0.1:{thrift_server.port}/heavyai → duckdb:///")
    assert "no complete answer within 1.5 s (DATABASE.query_timeout_s)" in reason
    assert (outcome.run_dir / "execution_summary.json").exists()


@pytest.mark.timeout(60)
def test_closing_logs_out_and_releases_the_socket(thrift_server: fake_heavydb.ThriftServer) -> None:
    db = HeavyDBBackend(f"heavydb://admin:x@127.0.0.1:{thrift_server.port}/heavyai", timeout_s=1)
    db.close()
    # The server reads the logout, then end-of-file: the client closed its socket (heavydb's own
    # close() logs out and leaves the socket open until the object is collected).
    wait_for(lambda: thrift_server.logouts == 1 and thrift_server.closed == 1, 5, "the connection to close")


@pytest.mark.timeout(60)
def test_a_statement_trickling_its_answer_is_cut_at_the_deadline() -> None:
    """A byte every 0.2 s keeps each read under its own timeout: only the call's deadline ends it."""
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:
        with contextlib.suppress(OSError):
            while not stop.wait(0.2):
                theirs.send(b"x")

    class Connection:  # the thrift client reading an answer that never completes, on a real socket
        _socket = SimpleNamespace(handle=ours, setTimeout=lambda ms: ours.settimeout(ms / 1000))

        def execute(self, sql: str) -> None:
            while ours.recv(1):
                pass
            raise EOFError("TSocket read 0 bytes")

    threading.Thread(target=trickle, daemon=True).start()
    client = HeavyaiClient(Connection(), query_timeout_s=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=r"no complete answer within 1 s \(DATABASE\.query_timeout_s\)"):
            client.execute("SELECT 1")
        took = time.monotonic() - started
    finally:
        stop.set()
        ours.close()
        theirs.close()
    assert 1.0 <= took < 1.0 + MARGIN_S, f"{took:.1f} s"
