"""The HeavyDB adapter: the URL, the client calls, errors, and what runs on the server.

The contract suite (test_contract.py) runs the backend against a stand-in client; these tests
check the adapter itself, with the ``heavyai`` module replaced by a mock (no server here).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest
from pytest_mock import MockerFixture

from dal import open_backend
from dal.heavydb_backend import HeavyaiClient, HeavyDBBackend, connect_client, parse_url
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


def test_connect_uses_heavyai_with_the_parsed_url(mocker: MockerFixture) -> None:
    heavyai = SimpleNamespace(connect=MagicMock(name="connect"))
    mocker.patch.dict(sys.modules, {"heavyai": heavyai})
    client = connect_client(URL, timeout_s=2)
    heavyai.connect.assert_called_once_with(
        user="trader", password="p@ss:word", host="gpu-db.example", port=6275, dbname="desk", protocol="http"
    )
    assert isinstance(client, HeavyaiClient)


def test_without_the_client_package_the_error_says_what_to_install(mocker: MockerFixture) -> None:
    mocker.patch.dict(sys.modules, {"heavyai": None})  # import heavyai raises ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'heavy-optimizer\[heavydb\]'"):
        open_backend(URL)


def test_an_unreachable_server_names_the_host_never_the_password(mocker: MockerFixture) -> None:
    heavyai = SimpleNamespace(
        connect=MagicMock(side_effect=ConnectionRefusedError("[Errno 111] Connection refused p@ss:word"))
    )
    mocker.patch.dict(sys.modules, {"heavyai": heavyai})
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
