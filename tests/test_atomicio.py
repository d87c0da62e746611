"""The one atomic-write helper: whole or nothing, never a temporary file left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atomicio import atomic_path


def test_the_file_appears_whole_and_no_temporary_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists() and tmp.parent == tmp_path and tmp.name.startswith(".")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_failed_write_leaves_the_old_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_exclusive_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    target.write_text("first")
    with pytest.raises(FileExistsError), atomic_path(target, exclusive=True) as tmp:
        tmp.write_text("second")
    assert target.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["job.json"]
    fresh = tmp_path / "other.json"
    with atomic_path(fresh, exclusive=True, mode=0o640) as tmp:
        tmp.write_text("x")
    assert fresh.read_text() == "x" and fresh.stat().st_mode & 0o777 == 0o640


def test_a_name_at_the_length_limit_is_written(tmp_path: Path) -> None:
    target = tmp_path / ("j" * 250 + ".json")  # 255 bytes: no room to lengthen it for the temporary file
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_without_a_mode_the_file_gets_what_open_would_give_it(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        with atomic_path(tmp_path / "result.json") as tmp:
            tmp.write_text("{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == (tmp_path / "plain.json").stat().st_mode & 0o777
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_link_put_in_the_temporary_files_place_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """On a share others can write to: the link's target (a file the service owns) keeps its mode."""
    victim = tmp_path / "secret.env"
    victim.write_text("TOKEN=x")
    victim.chmod(0o600)
    with pytest.raises(OSError), atomic_path(tmp_path / "result.json") as tmp:
        tmp.write_text("{}")
        tmp.unlink()
        tmp.symlink_to(victim)
    assert victim.stat().st_mode & 0o777 == 0o600 and victim.read_text() == "TOKEN=x"
    assert not (tmp_path / "result.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.env"]
