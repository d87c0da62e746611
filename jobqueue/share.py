"""The share's layout (brief §7) and the files the daemon publishes on it.

Everything a Windows client sees is written atomically (a hidden temporary name in the
same folder, then a rename), so a client polling ``jobs/completed/`` never reads half a file.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.errors import ConfigError

SUBDIRS = (
    "input",
    "jobs/queue",
    "jobs/processing",
    "jobs/completed",
    "jobs/failed",
    "jobs/status",
    "output",
    "archive",
)
# Names Windows and copy tools use while a file is still being written; they are ignored until renamed.
TEMPORARY_PREFIXES = ("~$", ".")
TEMPORARY_SUFFIXES = (".tmp", ".partial", ".crdownload", ".part", "~")


def is_temporary(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(TEMPORARY_PREFIXES) or lower.endswith(TEMPORARY_SUFFIXES)


@dataclass(frozen=True)
class Share:
    root: Path

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def queue(self) -> Path:
        return self.root / "jobs" / "queue"

    @property
    def processing(self) -> Path:
        return self.root / "jobs" / "processing"

    @property
    def completed(self) -> Path:
        return self.root / "jobs" / "completed"

    @property
    def failed(self) -> Path:
        return self.root / "jobs" / "failed"

    @property
    def status_file(self) -> Path:
        return self.root / "jobs" / "status" / "current_status.json"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    def ensure(self) -> None:
        """Create the layout; refuse a share whose folders are symbolic links (they could lead out of it)."""
        if not self.root.is_dir():
            raise ConfigError(
                f"config error: QUEUE.share = {str(self.root)!r}: not a folder; create it or fix the path"
            )
        for sub in SUBDIRS:
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            for part in (path.parent, path) if "/" in sub else (path,):
                if stat.S_ISLNK(os.lstat(part).st_mode):
                    raise ConfigError(
                        f"config error: QUEUE.share: {part} is a symbolic link; the share's own folders "
                        "must be real folders (links could lead out of the share)"
                    )

    def rel(self, path: Path) -> str:
        """``path`` as the share's users see it: relative to the root, with forward slashes."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def contains(self, path: Path) -> bool:
        """Whether ``path``, with every link resolved, lies inside the share."""
        try:
            path.resolve().relative_to(self.root.resolve())
        except (ValueError, OSError):
            return False
        return True

    def job_dir(self, job_id: str, seq: int) -> Path:
        """``archive/<job_id>/`` for a job's inputs; a reused job id gets ``archive/<job_id>.<seq>/``."""
        first = self.archive / job_id
        return first if not first.exists() else self.archive / f"{job_id}.{seq}"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8", newline="\r\n") as fh:  # CRLF: readable in Notepad
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
