"""Watching the share: file events or polling, rescans, and "fully written" (settled) detection.

The observer thread only hands paths to :meth:`Watcher.notice`; everything else runs on the
daemon's thread. A file is ready to claim once its size and mtime have not changed for
``QUEUE.settle_s``; ready files are offered to the claimer oldest first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobqueue.share import Share, is_temporary
from optimizer.config import Queue as QueueConfig

log = logging.getLogger("heavyopt.queue")


@dataclass
class Seen:
    size: int
    mtime_ns: int
    since: float


class Watcher:
    """The candidate files in ``input/`` and ``jobs/queue/``, and how long each has been unchanged."""

    def __init__(self, share: Share, q: QueueConfig) -> None:
        self.share = share
        self.q = q
        self._candidates: set[Path] = set()
        self._candidates_lock = threading.Lock()
        self._seen: dict[Path, Seen] = {}
        self._unreadable_names: set[Path] = set()
        self._broken: dict[Path, tuple[int, int]] = {}  # files whose claim raised, skipped until they change
        self._observer: Any = None

    def start_observer(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw:
                        watcher.notice(Path(os.fsdecode(raw)))

        observer = PollingObserver(timeout=self.q.poll_interval_s) if self.q.poll else Observer()
        observer.daemon = True
        for folder in (self.share.input, self.share.queue):
            observer.schedule(Handler(), str(folder), recursive=False)
        observer.start()
        self._observer = observer

    def stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    def notice(self, path: Path) -> None:
        """A file may have appeared or changed (called from the observer thread)."""
        if path.parent not in (self.share.input, self.share.queue) or is_temporary(path.name):
            return
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:
            if path not in self._unreadable_names:
                self._unreadable_names.add(path)
                log.warning("ignoring %r: its name is not valid UTF-8; rename it", os.fsencode(path.name))
            return
        with self._candidates_lock:
            self._candidates.add(path)

    def scan(self) -> None:
        """Notice every file in ``input/`` and ``jobs/queue/`` (events can be missed, on a network mount above all)."""
        for folder in (self.share.input, self.share.queue):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    self.notice(Path(entry.path))

    def settle_and_claim(self, claim: Callable[[Path], bool], stop: threading.Event) -> None:
        """Offer each settled file to ``claim`` (False: look at it again later), oldest first, until ``stop``."""
        with self._candidates_lock:
            candidates, self._candidates = self._candidates, set()
        for path in candidates:
            self._seen.setdefault(path, Seen(-1, -1, 0.0))
        now = time.monotonic()
        ready = []
        for path, seen in list(self._seen.items()):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self._seen[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self._seen[path] = Seen(st.st_size, st.st_mtime_ns, now)
            elif now - seen.since >= self.q.settle_s:
                ready.append((seen.since, path))
        for _, path in sorted(ready):  # FIFO: the file that settled first is claimed first
            if stop.is_set():
                return
            seen = self._seen[path]
            if self._broken.get(path) == (seen.size, seen.mtime_ns):
                continue
            try:
                if claim(path):
                    self._seen.pop(path, None)
            except sqlite3.OperationalError:  # the job database locked or busy: not the file's fault, try again
                raise
            except Exception:  # one bad file must not stop the queue (logged with its traceback)
                log.exception("cannot claim %s; it is skipped until it changes", self.share.rel(path))
                self._broken[path] = (seen.size, seen.mtime_ns)

    def is_settled(self, path: Path) -> bool:
        """Whether ``path`` has been unchanged for ``settle_s`` (a missing file counts as settled)."""
        seen = self._seen.get(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if seen is None or (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
            self._seen[path] = Seen(st.st_size, st.st_mtime_ns, time.monotonic())
            return False
        return time.monotonic() - seen.since >= self.q.settle_s

    def forget(self, path: Path) -> None:
        """Stop watching ``path`` until it is noticed again."""
        self._seen.pop(path, None)
