"""Files written whole or not at all: the one atomic-write helper every layer uses.

A reader (a user's Excel on the share, the queue daemon, a second job) never sees a half-written
file: the content goes to a new hidden file beside the target (``mkstemp``: ``O_EXCL``, never a
file or link that was already there), is flushed to disk, then renamed over the target in one
step — or, with ``exclusive``, linked to it only if no file of that name exists yet — and the
folder is flushed too, so that the new name survives a power loss once the call returns. On any
failure the temporary file is removed and the target is left as it was. Imports nothing of the
project (the lowest layer, with ``errors``).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, *, exclusive: bool = False, mode: int | None = None) -> Iterator[Path]:
    """A new temporary path beside ``path`` for the block to write; on success it becomes ``path``.

    Parameters
    ----------
    exclusive : link instead of replace: raises ``FileExistsError`` (and writes nothing) when
        ``path`` exists already.
    mode : permission bits for the file (e.g. 0o664 on a share); otherwise what ``open`` would
        give a new file, 0o666 less the process's umask (``mkstemp`` alone makes it 0o600, which
        desk users reading the share as another account could not open).
    """
    # A short name: the target's own may already be near the 255-byte limit of a file name.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # By descriptor, never following a link: on a share others can write to, a link put in
        # the temporary file's place must not get its target flushed or its mode changed.
        fd = os.open(tmp, os.O_RDWR | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
            _set_mode(fd, mode)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _set_mode(fd: int, mode: int | None) -> None:
    """``mode``, or by default 0o666 less the umask; a file system without Unix modes (vfat, a
    CIFS mount without Unix extensions) keeps its own when no mode was asked for."""
    if mode is not None:
        os.fchmod(fd, mode)
        return
    try:
        os.fchmod(fd, default_mode())
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def default_mode() -> int:
    """0o666 less the process's umask: the mode ``open`` gives a new file.

    Read from ``/proc/self/status`` (Linux ≥ 4.7): setting the umask to read it back would
    change it, for a moment, for every thread of the process.
    """
    try:
        with open("/proc/self/status", "rb") as fh:  # bytes: the process name on its first line may be any
            for line in fh:
                if line.startswith(b"Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new name in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:  # some network file systems refuse fsync on a folder; their server orders the writes
        pass
    finally:
        os.close(fd)
