"""The submission checks as pure functions: paths and values in, a value or ``Rejected`` out (no daemon)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from errors import ConfigError
from jobqueue.checks import (
    Rejected,
    check_input,
    check_request,
    find_sidecar,
    merge_layers,
    parse_job_file,
    peek_input_file,
    read_regular,
    request_layer,
    resolve_input,
    sidecar_layers,
)
from jobqueue.share import Share


@pytest.fixture
def share(tmp_path: Path) -> Share:
    root = tmp_path / "share"
    root.mkdir()
    share = Share(root)
    share.ensure()
    return share


def test_a_job_file_is_parsed_once_its_name_is_a_job_id() -> None:
    assert parse_job_file("jobs/queue/j.json", "j", b'\xef\xbb\xbf{"input_file": "a.csv"}') == {"input_file": "a.csv"}
    assert parse_job_file("jobs/queue/j.json", "j", b"[1, 2]") == [1, 2]  # any JSON: check_request judges it
    with pytest.raises(Rejected, match="use 1–100 letters"):
        parse_job_file("jobs/queue/Desk 1.json", "Desk 1", b"{}")
    with pytest.raises(Rejected, match=r"jobs/queue/j.json: not valid JSON"):
        parse_job_file("jobs/queue/j.json", "j", b"{not json")


def test_a_request_is_an_object_naming_its_input() -> None:
    assert check_request("n", "j", {"input_file": "a.csv", "job_id": "j"}) == "a.csv"
    for request, reason in [
        ([1, 2], "expected a JSON object with job_id and input_file, got list"),
        ({"job_id": "other", "input_file": "a.csv"}, "job_id 'other' differs from the file name 'j'"),
        ({"input_file": "  "}, "input_file is missing"),
        ({}, "input_file is missing"),
    ]:
        with pytest.raises(Rejected, match=reason):
            check_request("n", "j", request)


def test_the_request_fields_become_a_layer_credited_to_the_job_file() -> None:
    assert request_layer("n", {}) == {}
    layer = request_layer("n", {"portfolio_size": "35-100", "job_type": "Zone_Optimization"})
    assert layer["PORTFOLIO"] == {"min_size": ("35", "n portfolio_size"), "max_size": ("100", "n portfolio_size")}
    assert layer["OPTIMIZATION"] == {"zone_optimization_enabled": ("true", "n job_type")}
    with pytest.raises(Rejected, match="job_type 'bogus' is not known"):
        request_layer("n", {"job_type": "bogus"})
    with pytest.raises(Rejected, match="portfolio_size 'big'"):
        request_layer("n", {"portfolio_size": "big", "job_type": "bogus"})  # the size is checked first


def test_the_input_is_a_plain_name_in_input(share: Share) -> None:
    (share.input / "a.csv").write_text("x")
    assert resolve_input(share.input, "n", "a.csv") == share.input / "a.csv"
    assert resolve_input(share.input, "n", "input\\a.csv") == share.input / "a.csv"
    for bad in ("../a.csv", "/etc/passwd", "C:a.csv", "sub/a.csv", "..", ""):
        with pytest.raises(Rejected, match="must be the name of a file in input/ on the share"):
            resolve_input(share.input, "n", bad)
    with pytest.raises(Rejected, match=r"'b\.csv' is not in input/"):
        resolve_input(share.input, "n", "b.csv")


def test_the_input_file_itself(share: Share, tmp_path: Path) -> None:
    good = share.input / "good.csv"
    good.write_bytes(b"x" * 100)
    check_input(good, share, 1.0)
    with pytest.raises(Rejected, match=r"input/good.csv: 0.0 MB is over the limit of 1e-05 MB"):
        check_input(good, share, 0.00001)
    (share.input / "empty.csv").write_bytes(b"")
    with pytest.raises(Rejected, match=r"input/empty\.csv is empty"):
        check_input(share.input / "empty.csv", share, 1.0)
    os.symlink(good, share.input / "inside.csv")
    with pytest.raises(Rejected, match="symbolic link \\(to a file inside the share\\)"):
        check_input(share.input / "inside.csv", share, 1.0)
    os.symlink(tmp_path, share.input / "outside.csv")
    with pytest.raises(Rejected, match="symbolic link \\(to a file outside the share\\)"):
        check_input(share.input / "outside.csv", share, 1.0)
    (share.input / "folder.csv").mkdir()
    with pytest.raises(Rejected, match=r"input/folder\.csv is not a regular file"):
        check_input(share.input / "folder.csv", share, 1.0)


def test_job_files_are_read_without_following_links_or_blocking(tmp_path: Path) -> None:
    plain = tmp_path / "j.json"
    plain.write_text(json.dumps({"input_file": "input/a.csv"}))
    assert read_regular(plain, "j", "", limit=100) == plain.read_bytes()
    with pytest.raises(Rejected, match="more than 10 bytes is too large"):
        read_regular(plain, "j", "", limit=10)
    os.symlink(plain, tmp_path / "link.json")
    with pytest.raises(Rejected, match=r"link\.json is a symbolic link; do this"):
        read_regular(tmp_path / "link.json", "link.json", "do this", limit=100)
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(Rejected, match="is not a regular file"):
        read_regular(tmp_path / "fifo.json", "fifo.json", "", limit=100)
    assert peek_input_file(plain) == "a.csv"
    assert peek_input_file(tmp_path / "link.json") is None and peek_input_file(tmp_path / "fifo.json") is None
    (tmp_path / "up.json").write_text(json.dumps({"input_file": "../a.csv"}))
    assert peek_input_file(tmp_path / "up.json") is None


def test_a_sidecar_sets_job_keys_only(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    assert find_sidecar(csv) is None and sidecar_layers(None) == []
    (tmp_path / "a.INI").write_text("[PORTFOLIO]\nmin_size = 12\n")
    sidecar = find_sidecar(csv)
    assert sidecar == tmp_path / "a.INI"
    assert sidecar_layers(sidecar) == [{"PORTFOLIO": {"min_size": ("12", "input/a.INI")}}]
    sidecar.write_text("[QUEUE]\nworkers = 8\n")
    with pytest.raises(Rejected, match=r"input/a.INI: section \[QUEUE\] is set by the server"):
        sidecar_layers(sidecar)
    sidecar.write_text("not an ini")
    with pytest.raises(ConfigError) as raised:
        sidecar_layers(sidecar)
    assert str(tmp_path) not in str(raised.value)  # named as the user knows the file


def test_job_layers_go_between_the_server_files_and_the_environment() -> None:
    server = [{"A": {}}, {"B": {}}, {"ENV": {}}, {"SET": {}}]
    assert merge_layers(server, [{"JOB": {}}]) == [{"A": {}}, {"B": {}}, {"JOB": {}}, {"ENV": {}}, {"SET": {}}]
