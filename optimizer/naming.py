"""Job ids: the input file's stem, made safe for file names on Windows and Linux, and a random suffix."""

from __future__ import annotations

import re
import uuid
from pathlib import Path


def job_stem(name: str, limit: int = 40) -> str:
    """A file name's stem reduced to characters safe in job ids and file names on Windows and Linux."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")[:limit] or "job"


def new_job_id(path: Path) -> str:
    """``<file stem>-<8 hex>``."""
    return f"{job_stem(path.name)}-{uuid.uuid4().hex[:8]}"


def windows_path(unc_root: str, relative: str | None) -> str | None:
    """A share-relative path (``output/run_…``) as Windows users reach it under ``unc_root``
    (``QUEUE.unc_root``, e.g. ``\\\\server\\optimizer_share``); None without a root or a path."""
    if not unc_root or not relative:
        return None
    return unc_root.rstrip("\\/") + "\\" + relative.strip("/").replace("/", "\\")
