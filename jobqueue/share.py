"""The share's layout (brief §7) and the files the daemon publishes on it.

Everything a Windows client sees is written atomically (a hidden temporary name in the
same folder, then a rename), so a client polling ``jobs/completed/`` never reads half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atomicio import atomic_path
from errors import ConfigError

IDENTITY = ".heavyopt/share.json"  # the share's own id: its job history follows it, not its path
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

    @property
    def identity_file(self) -> Path:
        return self.root / IDENTITY

    def identity(self, *, create: bool = False) -> str | None:
        """The share's id, kept in ``.heavyopt/share.json`` on the share (made once with ``create``).

        A share's jobs live in a job database of its own, found by this id (see
        :func:`jobqueue.store.store_path`): two shares never see each other's jobs, and a share
        moved to another path keeps its history.
        """
        try:
            return _read_identity(self.identity_file)
        except FileNotFoundError:
            if not create:
                return None
        folder = self.identity_file.parent
        folder.mkdir(exist_ok=True)
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            raise ConfigError(f"config error: QUEUE.share: {folder} is a symbolic link; it must be a real folder")
        write_json_exclusive(self.identity_file, {"share_id": uuid.uuid4().hex, "created_at_path": str(self.root)})
        return _read_identity(self.identity_file)  # another daemon's, if it was first

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

    def make_job_dir(self, job_id: str, seq: int) -> Path:
        """Create the job's own ``archive/<job_id>/`` (``archive/<job_id>.<seq>/`` for a reused id).

        Always a new folder: ``mkdir`` never follows a link planted under that name, and an
        existing folder (or link) is never reused.
        """
        for name in (job_id, f"{job_id}.{seq}", f"{job_id}.{seq}.{uuid.uuid4().hex[:8]}"):
            try:
                os.mkdir(self.archive / name)
            except FileExistsError:
                continue
            return self.archive / name
        raise OSError(f"cannot create a folder for job {job_id} in {self.archive}")

    def own_dir(self, rel: str) -> Path | None:
        """A folder the daemon made (``job_dir``), if it is still a real folder inside the share."""
        path = self.root / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return path if stat.S_ISDIR(st.st_mode) and self.contains(path) else None


def _read_identity(path: Path) -> str:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["share_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"config error: {path} is damaged ({type(exc).__name__}); restore it from a backup, or delete it "
            "to start the share with an empty job history"
        ) from None
    if not isinstance(value, str) or not value.isalnum():
        raise ConfigError(f"config error: {path}: share_id {value!r} is not an id; restore the file or delete it")
    return value


def sha256_file(path: Path | int) -> str:
    """SHA-256 of a file, by path or by an open descriptor (read from where it stands)."""
    digest = hashlib.sha256()
    with open(path, "rb", closefd=not isinstance(path, int)) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _dump(fh: Any, data: Any) -> None:
    json.dump(data, fh, indent=2, default=str)
    fh.write("\n")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` whole or not at all (a link at ``path`` is replaced, never followed)."""
    with atomic_path(path, mode=0o664) as tmp, tmp.open("w", encoding="utf-8", newline="\r\n") as fh:
        _dump(fh, data)  # CRLF: readable in Notepad


def write_json_exclusive(path: Path, data: Any) -> bool:
    """Write ``path`` whole, unless it exists already (then False and nothing is written)."""
    try:
        with (
            atomic_path(path, exclusive=True, mode=0o664) as tmp,
            tmp.open("w", encoding="utf-8", newline="\r\n") as fh,
        ):
            _dump(fh, data)
    except FileExistsError:
        return False
    return True
