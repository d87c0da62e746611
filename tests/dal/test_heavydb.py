"""The HeavyDB adapter: the URL, the client calls, errors, and what runs on the server.

The contract suite (test_contract.py) runs the backend against a stand-in client; these tests
check the adapter itself, with the ``heavyai`` module replaced by a mock (no server here).
"""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace
from typing import Any, ClassVar
from unittest.mock import MagicMock

import numpy as np
import pytest
from pytest_mock import MockerFixture

from dal import heavydb_backend, open_backend
from dal.heavydb_backend import HeavyaiClient, HeavyDBBackend, connect_client, parse_url, plain
from errors import BackendUnavailable
from optimizer.synthetic import generate_pnl
from tests.dal.heavydb_standin import DuckDBStandIn

URL = "heavydb://trader:p%40ss%3Aword@gpu-db.example:6275/desk?protocol=http"


def test_the_url_becomes_connect_arguments() -> None:
    assert parse_url(URL) == {
        "user": "trader",
        "password": "p@ss:word",
        "host": "gpu-db.example",
        "port": 6275,
        "dbname": "desk",
        "protocol": "http",
    }
    defaults = parse_url("heavydb://admin:x@h/")
    assert defaults["port"] == 6274 and defaults["dbname"] == "heavyai"
    with pytest.raises(BackendUnavailable, match="expected heavydb://user:password@host:6274/dbname"):
        parse_url("heavydb:///nohost")


class RecordedConnection:
    """Stands for ``heavyai.Connection``: records how it was built."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        RecordedConnection.made.append(kwargs)


def test_connect_uses_heavyai_with_the_parsed_url(mocker: MockerFixture) -> None:
    mocker.patch.dict(sys.modules, {"heavyai": SimpleNamespace(Connection=RecordedConnection)})
    RecordedConnection.made.clear()
    client = connect_client(URL, timeout_s=2)
    assert RecordedConnection.made == [
        {
            "user": "trader",
            "password": "p@ss:word",
            "host": "gpu-db.example",
            "port": 6275,
            "dbname": "desk",
            "protocol": "http",
        }
    ]
    assert isinstance(client, HeavyaiClient)


def test_without_the_client_package_the_error_says_what_to_install(mocker: MockerFixture) -> None:
    mocker.patch.dict(sys.modules, {"heavyai": None})  # import heavyai raises ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'heavy-optimizer\[heavydb\]'"):
        open_backend(URL)


def test_an_unreachable_server_names_the_host_never_the_password(mocker: MockerFixture) -> None:
    class Refused:
        def __init__(self, **kwargs: Any) -> None:
            raise ConnectionRefusedError("[Errno 111] Connection refused p@ss:word")

    mocker.patch.dict(sys.modules, {"heavyai": SimpleNamespace(Connection=Refused)})
    with pytest.raises(BackendUnavailable) as info:
        open_backend(URL)
    message = str(info.value)
    assert "HeavyDB at gpu-db.example:6275" in message and "ConnectionRefusedError" in message
    assert "p%40ss" not in message and "word@" not in message


def test_client_calls_go_through_the_db_api_and_arrow() -> None:
    con = MagicMock(name="connection")
    cursor = con.execute.return_value
    cursor.description = [("n",)]
    cursor.fetchall.return_value = [(3,)]
    client = HeavyaiClient(con)
    assert client.execute("SELECT COUNT(*) FROM t WHERE job_id = :job_id", {"job_id": "j"}) == [(3,)]
    con.execute.assert_called_with("SELECT COUNT(*) FROM t WHERE job_id = :job_id", {"job_id": "j"})
    cursor.close.assert_called()
    table = object()
    client.load_arrow("heavyopt_pnl", table)
    con.load_table_arrow.assert_called_once_with("heavyopt_pnl", table)


def test_ulta_runs_on_the_server_as_one_update_and_the_pnl_is_never_rewritten() -> None:
    standin = DuckDBStandIn()
    db = HeavyDBBackend("heavydb://admin:x@gpu:6274/heavyai", client=standin)
    pnl = generate_pnl(30, 8, seed=5)
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-09"))
    db.store_pnl("j", dates, None, [f"S{k}" for k in range(30)], pnl)
    assert [t for t, _ in standin.loads] == ["heavyopt_days", "heavyopt_strategies", "heavyopt_pnl"]
    assert ("heavyopt_pnl", 240) in standin.loads  # the P&L went in through Arrow, in one load
    before = len(standin.statements)
    inverted = db.apply_ulta("j")
    ulta = standin.statements[before:]
    assert sum(s.lstrip().startswith("UPDATE") for s in ulta) == 1
    assert "HAVING SUM(pnl) <" in ulta[0] and "UPDATE heavyopt_strategies" in ulta[0]
    assert not any("UPDATE heavyopt_pnl" in s for s in standin.statements)
    losers = pnl.sum(axis=0) < -1e-9 * np.abs(pnl).sum(axis=0)
    assert inverted == int(losers.sum()) > 0
    fetched = db.fetch_pnl("j")
    assert np.array_equal(fetched.pnl, np.where(losers, -pnl, pnl))
    db.close()
    assert standin.closed


def test_a_failing_statement_is_a_backend_error() -> None:
    standin = DuckDBStandIn()
    db = HeavyDBBackend("heavydb://admin:x@gpu:6274/heavyai", client=standin)
    standin.con.close()  # the server went away
    with pytest.raises(BackendUnavailable, match="database error: HeavyDB at gpu:6274"):
        db.record_job("j", status="running")


def test_the_standin_binds_values_as_the_real_client_does() -> None:
    """The real client renders parameters into the SQL text (SQLAlchemy literal binds)."""
    from sqlalchemy.exc import ArgumentError, CompileError

    standin = DuckDBStandIn()
    assert standin.execute("SELECT :a, :b", {"a": 2, "b": "it's"}) == [(2, "it's")]
    with pytest.raises(CompileError):
        standin.execute("SELECT :a", {"a": np.int64(2)})
    with pytest.raises(CompileError):
        standin.execute("SELECT :a", {"a": np.datetime64("2026-01-01")})
    with pytest.raises(ArgumentError):
        standin.execute("SELECT :a", {"a": 1, "typo": 2})


def test_values_are_bound_as_plain_python_and_names_are_checked() -> None:
    from datetime import datetime

    assert plain(np.int64(3)) == 3 and type(plain(np.int64(3))) is int
    assert plain(np.float64(2.5)) == 2.5 and type(plain(np.float64(2.5))) is float
    assert plain(np.datetime64("2026-01-02T03:04:05.678")) == datetime(2026, 1, 2, 3, 4, 5)
    assert plain(np.bool_(True)) is True
    with pytest.raises(TypeError, match="cannot bind a list"):
        plain([1])
    db = HeavyDBBackend("heavydb://admin:x@gpu:6274/heavyai", client=DuckDBStandIn())
    db.record_job("j", n_rows=np.int64(3), seed=np.uint64(7), created_at=np.datetime64("2026-01-01T10:00:00"))
    job = db.job("j")
    assert job is not None and (job["n_rows"], job["seed"]) == (3, 7)
    # A name on one side only: the real client would bind a missing one as NULL without a word.
    with pytest.raises(ValueError, match=r"parameters \['job'\] do not match the statement's \['job_id'\]"):
        db._run("SELECT * FROM heavyopt_jobs WHERE job_id = :job_id", {"job": "j"})


def test_closing_never_fails_a_finished_job(caplog: pytest.LogCaptureFixture) -> None:
    standin = DuckDBStandIn()
    db = HeavyDBBackend("heavydb://admin:x@gpu:6274/heavyai", client=standin)
    standin.fail_close = True
    with caplog.at_level(logging.WARNING, logger="heavyopt"):
        db.close()  # does not raise
    assert "closing the HeavyDB connection failed" in caplog.text and "Connection reset by peer" in caplog.text


def test_loads_are_bounded_single_batch_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heavydb_backend, "LOAD_BATCH_BYTES", 4096)
    standin = DuckDBStandIn(max_load_bytes=4096)  # the stand-in refuses a bigger or multi-batch load
    db = HeavyDBBackend("heavydb://admin:x@gpu:6274/heavyai", client=standin)
    pnl = generate_pnl(40, 30, seed=2)
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-31"))
    db.store_pnl("j", dates, None, [f"S{k}" for k in range(40)], pnl)
    pnl_loads = [rows for table, rows in standin.loads if table == "heavyopt_pnl"]
    assert len(pnl_loads) > 1 and sum(pnl_loads) == 1200
    assert np.array_equal(db.fetch_pnl("j").pnl, pnl)


def test_an_arrow_conversion_error_is_a_backend_error() -> None:
    """Built inside the guard, so the job falls back to DuckDB like after any other HeavyDB error."""
    db = HeavyDBBackend("heavydb://admin:x@gpu:6274/heavyai", client=DuckDBStandIn())
    pnl = generate_pnl(5, 3, seed=2)
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-04"))
    with pytest.raises(BackendUnavailable, match=r"ArrowTypeError|ArrowInvalid"):
        db.store_pnl("j", dates, [1, 2, 3], [f"S{k}" for k in range(5)], pnl)  # type: ignore[list-item]
