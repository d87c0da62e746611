"""The predecessor's Windows clients: their job files, byte for byte, run as normal jobs."""

from __future__ import annotations

import html
import os
import time

import pytest

from jobqueue.checks import Rejected, name_layer, parse_job_file, request_layer, resolve_input
from jobqueue.clients import decode_text, input_name, load_job_json, size_in_name
from jobqueue.share import Share
from tests.jobqueue.conftest import Env, wait_for


def batch_job_file(job_id: str, input_file: str, size: str = "35", username: str = "José") -> bytes:
    """A job file as the predecessor's launcher writes it: ``echo`` lines, CRLF, the console's code page (cp1252)."""
    lines = [
        "{",
        f'  "job_id": "{job_id}",',
        f'  "input_file": "{input_file}",',
        f'  "portfolio_size": {size},',
        '  "job_type": "complete_optimization",',
        '  "timestamp": "Tue 12/01/2026 14:05:03.12",',
        '  "client_info": {',
        '    "computer_name": "DESK-07",',
        f'    "username": "{username}",',
        '    "drive_letter": "Z:"',
        "  },",
        '  "execution_mode": "server_side_heavydb",',
        '  "input_format": "csv_only"',
        "}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


# ---------------------------------------------------------------- reading what they write


def test_the_batch_clients_file_reads_as_it_was_meant() -> None:
    request = parse_job_file(
        "jobs/queue/x.json", "job_12345_20261201_140503", batch_job_file("job_12345_20261201_140503", "desk.csv")
    )
    assert request["client_info"] == {"computer_name": "DESK-07", "username": "José", "drive_letter": "Z:"}
    assert request["portfolio_size"] == 35 and request["timestamp"] == "Tue 12/01/2026 14:05:03.12"
    layer = request_layer("x", request)
    assert layer == {"PORTFOLIO": {"min_size": ("35", "x portfolio_size"), "max_size": ("35", "x portfolio_size")}}


def test_paths_and_empty_values_written_by_echo() -> None:
    # A bare backslash JSON refuses (\i), one it would read as a control character (\f, \t, \n), an unset variable.
    raw = b'{"input_file": "Z:\\input\\final\\test.csv", "portfolio_size": , "note": "C:\\temp"}'
    assert load_job_json(raw.decode()) == {
        "input_file": "Z:\\input\\final\\test.csv",
        "portfolio_size": None,
        "note": "C:\\temp",
    }
    assert load_job_json('{"input_file": "Z:\\\\input\\\\a.csv"}') == {
        "input_file": "Z:\\input\\a.csv"
    }  # escaped: as is
    assert load_job_json('{"a": "b: ,c"}') == {"a": "b: ,c"}  # inside a string, nothing is touched
    with pytest.raises(ValueError, match="Expecting"):
        load_job_json('{"input_file": "a.csv"')


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_every_encoding_a_windows_tool_writes(encoding: str) -> None:
    assert load_job_json(decode_text('{"username": "Zoë Müller"}'.encode(encoding))) == {"username": "Zoë Müller"}


def test_what_input_file_names() -> None:
    for value in (
        "desk.csv",
        "input/desk.csv",
        "input\\desk.csv",
        "Z:\\input\\desk.csv",
        "\\\\srv\\share\\input\\desk.csv",
    ):
        assert input_name(value) == "desk.csv", value
    for value in ("C:\\Users\\me\\desk.csv", "../desk.csv", "sub/desk.csv", "Z:", "", "..", "input\\.."):
        assert input_name(value) is None, value


def test_a_size_in_the_file_name() -> None:
    assert size_in_name("desk_ps50") == 50 and size_in_name("DESK_PS10") == 10
    assert size_in_name("desk_ps5") is None and size_in_name("desk_ps500") is None and size_in_name("desk") is None
    assert name_layer("desk_ps40.csv")[0]["PORTFOLIO"]["max_size"][0] == "40"


def test_what_cannot_be_meant_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(Rejected, match="input_format 'xlsx': only CSV files are read"):
        request_layer("j", {"input_format": "xlsx"})
    with pytest.raises(Rejected, match="job_type 'backtest' is not known"):
        request_layer("j", {"job_type": "backtest"})
    with pytest.raises(Rejected, match=r"portfolio_size 35\.5"):
        request_layer("j", {"portfolio_size": 35.5})
    share = Share(tmp_path)
    share.ensure()
    with pytest.raises(Rejected, match="must be the name of a file in input/ on the share"):
        resolve_input(share.input, "j", "C:\\Users\\me\\desk.csv")


# ---------------------------------------------------------------- through the daemon


def _submit(env: Env, job_id: str, raw: bytes) -> None:
    """As the batch client does: written in place in jobs/queue/ (not renamed in)."""
    (env.share.queue / f"{job_id}.json").write_bytes(raw)


def test_a_batch_client_job_completes_where_the_client_polls(env: Env, daemon) -> None:
    env.drop("desk.csv")  # chosen from input/ by the client's menu, as it would have been there already
    job_id = "job_12345_20261201_140503"
    _submit(env, job_id, batch_job_file(job_id, "Z:\\input\\desk.csv", size="12"))
    daemon()
    result = env.result(job_id, 120)
    assert result["status"] == "completed", result
    assert result["winner"]["size"] == 12 and result["request"]["client_info"]["username"] == "José"
    assert (env.root / result["output_folder"] / "execution_summary.json").is_file()
    assert (env.root / result["archived_input"]).read_bytes() == env.csv.read_bytes()


def test_a_job_file_for_an_input_that_already_ran_uses_its_archived_copy(env: Env, daemon) -> None:
    daemon()
    env.drop("again.csv")
    first = env.result(wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 120, "the drop")[0])
    assert first["status"] == "completed"
    _submit(env, "job_1_20261201_150000", batch_job_file("job_1_20261201_150000", "again.csv", size="11"))
    result = env.result("job_1_20261201_150000", 120)
    assert result["status"] == "completed", result
    assert result["winner"]["size"] == 11
    assert (env.root / result["archived_input"]).read_bytes() == env.csv.read_bytes()
    assert (env.root / first["archived_input"]).is_file()  # the first job's archive is kept as it was


def test_with_csv_drops_off_input_is_the_clients_library(env: Env, daemon) -> None:
    env.drop("library.csv")
    daemon("QUEUE.csv_drops=false")
    time.sleep(1.5)  # settled, and not taken as a job of its own
    _submit(env, "job_2_20261201_150000", batch_job_file("job_2_20261201_150000", "library.csv", size="10"))
    result = env.result("job_2_20261201_150000", 120)
    assert result["status"] == "completed", result
    assert (env.share.input / "library.csv").is_file()  # still listed by the client's menu
    assert len(env.results()) == 1


def test_a_size_in_a_dropped_files_name_and_a_bad_format(env: Env, daemon) -> None:
    daemon()
    env.drop("desk_ps12.csv")
    env.drop("sheet.csv")
    raw = batch_job_file("job_3_20261201_150000", "sheet.csv").replace(b'"csv_only"', b'"excel"')
    _submit(env, "job_3_20261201_150000", raw)
    failed = env.result("job_3_20261201_150000", 60)
    assert failed["status"] == "failed" and "input_format 'excel': only CSV files are read" in failed["reason"]
    assert os.path.isfile(env.root / failed["archived_input"])  # nothing lost: its input is archived with it
    sized = wait_for(
        lambda: [r for r in env.results() if r["input_file"] == "desk_ps12.csv" and r["winner"]], 120, "desk_ps12"
    )
    assert sized[0]["winner"]["size"] == 12


def test_a_windows_client_gets_its_run_folder_as_a_unc_path(env: Env, daemon) -> None:
    daemon("QUEUE.unc_root=\\\\srv\\optimizer_share")
    env.drop("desk.csv")
    job_id = "job_777_20261201_180000"
    _submit(env, job_id, batch_job_file(job_id, "Z:\\input\\desk.csv", size="12"))
    result = env.result(job_id, 120)
    assert result["status"] == "completed", result
    folder = result["output_folder"]  # share-relative, as before: output/run_…
    assert result["output_folder_windows"] == "\\\\srv\\optimizer_share\\" + folder.replace("/", "\\")
    page = (env.root / folder / "report.html").read_text(encoding="utf-8")
    assert f"Folder: <code>{html.escape(result['output_folder_windows'])}</code>" in page
