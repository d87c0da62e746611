"""Shared fixtures. Every test runs with a clean HEAVYOPT_* environment and its own data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Copies of ../shared/data (a real 5-day slice at full width, a real zone-format file): the tests carry
# their own data, so a clone with nothing beside it passes too.
TEST_DATA = Path(__file__).resolve().parent / "data"
REAL_SLICE = TEST_DATA / "real_slice_25544x5.csv"
ZONES_SAMPLE = TEST_DATA / "zones_enhanced_sample.csv"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for var in list(os.environ):
        if var.startswith("HEAVYOPT_") and not var.startswith("HEAVYOPT_TEST_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def real_slice() -> Path:
    if not REAL_SLICE.exists():
        pytest.fail(f"{REAL_SLICE} missing from the repository")
    return REAL_SLICE


@pytest.fixture
def zones_sample() -> Path:
    if not ZONES_SAMPLE.exists():
        pytest.fail(f"{ZONES_SAMPLE} missing from the repository")
    return ZONES_SAMPLE


def cupy_or_skip() -> Any:
    """CuPy with a usable CUDA device, or skip the test (tests marked ``gpu``)."""
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no usable CUDA device: {exc}")
    return cupy


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the socket that found it is closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gone(pid: int) -> bool:
    """The process has exited (no longer in /proc, or a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def write_rows(
    path: Path, header: list[str], rows: list[list[object]], *, newline: str = "\n", bom: bool = False
) -> Path:
    """Write a small CSV by hand (no quoting), for loader tests."""
    text = newline.join(",".join(str(c) for c in row) for row in [header, *rows]) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.fixture
def small_pnl() -> np.ndarray:
    """(30 days, 120 strategies) of realistic synthetic P&L."""
    from optimizer.synthetic import generate_pnl

    return generate_pnl(120, 30, seed=7)
