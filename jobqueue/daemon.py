"""The queue daemon: files on the share → jobs, one process per job, results back on the share.

One thread (``run``) makes every decision and every write; the watchdog observer and
the job readers only hand it paths and events. The data flow of one job:

1. **Detect**: an inotify (or polling) event, or the periodic rescan, names a file in
   ``input/`` or ``jobs/queue/``. Temporary names are ignored.
2. **Settle**: the file counts once its size and mtime have not changed for ``settle_s``.
3. **Claim**: a ``claiming`` row is committed, then the file is renamed into
   ``archive/<job_id>/`` (a CSV) or ``jobs/processing/`` (a job file). Only one rename can
   win; a restart finishes or undoes a half-done claim from the row.
4. **Check**: symlinks, paths leaving ``input/``, sizes, the job's config. A rejected job
   is failed with its reason; its files stay in the archive.
5. **Run**: FIFO, ``workers`` at a time, in a child process (``jobqueue.runner``) with a
   timeout. An identical input with an identical config that already completed is not
   run again: the job is reported as a duplicate of the earlier one.
6. **Publish**: ``jobs/completed|failed/<job_id>.json`` from the row (the database is the
   truth; publishing is repeated after a crash), then ``jobs/processing/`` is cleared.

Steps 1–2 are :mod:`jobqueue.watcher`, 3–4 :mod:`jobqueue.claims` (over the pure checks of
:mod:`jobqueue.checks`), 5 :mod:`jobqueue.supervisor`, 6 :mod:`jobqueue.publisher`; this module
holds the daemon's life cycle (lock, start, the loop, stop, recovery) and composes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from errors import ConfigError
from jobqueue.claims import Claimer
from jobqueue.publisher import Publisher
from jobqueue.share import IDENTITY, Share
from jobqueue.store import LEGACY_NAME, QueueStore, now_iso, store_folder, store_path
from jobqueue.supervisor import Running, Supervisor, kill_leftovers
from jobqueue.view import QueueView
from jobqueue.watcher import Watcher
from optimizer.config import Config
from optimizer.config_sources import Layer, env_layer, overrides_layer, read_ini

log = logging.getLogger("heavyopt.queue")

TICK_S = 0.25
LOCKED_RETRY_S = 10.0  # a tick that found the job database locked is tried again this much later
MISSING_SHARE_WAIT_S = 5.0  # how often a daemon started without its share looks for it again


@dataclass
class Daemon:
    """``heavyopt watch``: owns the share's queue and the job database.

    It composes a :class:`Watcher` (what appeared on the share), and, once started, a
    :class:`Claimer` (claiming and checking), a :class:`Supervisor` (the runner processes)
    and a :class:`Publisher` (results and the status file).
    """

    share: Share
    config: Config
    server_layers: list[Layer]  # server config files, environment, --set (job layers go between them)
    data_dir: Path
    host: str = field(default_factory=socket.gethostname)
    _publisher: Publisher = field(init=False, repr=False, compare=False)
    _claims: Claimer = field(init=False, repr=False, compare=False)
    _supervisor: Supervisor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.q = self.config.queue
        self.stop = threading.Event()
        self.store: QueueStore | None = None
        self.watcher = Watcher(self.share, self.q)
        self._last_scan = 0.0
        self._cancels: queue.Queue[str] = queue.Queue()
        self._lock_file: IO[str] | None = None
        self._share_id: str | None = None
        self._share_missing = False
        self._interrupted = False

    @property
    def _db(self) -> QueueStore:
        """The job database of a started daemon."""
        assert self.store is not None, "the daemon is not started"
        return self.store

    # ------------------------------------------------------------------ life cycle

    @property
    def store_path(self) -> Path:
        """The share's job database (known once started)."""
        path = store_path(self.data_dir, self._share_id)
        assert path is not None, "the daemon is not started"
        return path

    def start(self) -> None:
        """Lock the share's job database, open it, recover from a previous run, start watching."""
        self._wait_for_known_share()
        self.share.ensure()
        self._share_id = self.share.identity(create=True)
        folder = store_folder(self.data_dir, str(self._share_id))
        folder.mkdir(parents=True, exist_ok=True)
        self._lock(folder)
        fresh = not (folder / "queue.sqlite3").exists()
        self.store = _open_store(folder / "queue.sqlite3", self._unlock)
        try:
            self._adopt(fresh)
        except BaseException:
            self.store.close()
            self.store = None
            self._unlock()
            raise
        running: dict[int, Running] = {}
        self._publisher = Publisher(
            self.share, self.store, self.host, self.stop, running, unc_root=self.config.queue.unc_root
        )
        self._claims = Claimer(self.share, self.q, self.store, self.watcher, self.server_layers, self._publisher)
        self._supervisor = Supervisor(
            self.share, self.q, self.store, self.server_layers, self._publisher, self.stop, running
        )
        self._db.set_daemon(
            pid=os.getpid(),
            host=self.host,
            started_at=now_iso(),
            share=str(self.share.root),
            state="running",
            share_state="ok",
            share_missing_since=None,
        )
        self._recover()
        self.watcher.start_observer()
        self._scan()
        self._publisher.write_status(force=True)
        log.info("watching %s (%s)", self.share.root, "polling" if self.q.poll else "inotify")

    def _wait_for_known_share(self) -> None:
        """A share that has had jobs here but has lost its id file is unmounted: wait, never make it anew.

        (Made anew, the share would get a new id and an empty history, in the folder under the mount point.)
        """
        told = False
        while not self.stop.is_set() and self.share.identity() is None and self._had_jobs():
            if not told:
                log.error(
                    "the share %s has had jobs (see %s) but is not there now (not mounted?); waiting for it",
                    self.share.root,
                    self.data_dir / "shares",
                )
                told = True
            self.stop.wait(MISSING_SHARE_WAIT_S)

    def _had_jobs(self) -> bool:
        """Whether a job database in the data folder belongs to a share at this path."""
        for path in (self.data_dir / "shares").glob("*/queue.sqlite3"):
            view = QueueView(path)
            try:
                if view.daemon().get("share") == str(self.share.root):
                    return True
            except sqlite3.Error:
                continue
            finally:
                view.close()
        return False

    def _lock(self, folder: Path) -> None:
        """Hold ``queue.lock`` beside the share's job database: one daemon per share."""
        self._lock_file = (folder / "queue.lock").open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._unlock()
            raise ConfigError(
                f"queue error: another heavyopt daemon is running on the share {self.share.root} "
                f"({folder / 'queue.lock'} is held); stop it first"
            ) from None

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _adopt(self, fresh: bool) -> None:
        """Take over the share's history: from the database all shares once shared, or from its old path."""
        root = str(self.share.root)
        legacy = self.data_dir / LEGACY_NAME
        if fresh and legacy.is_file():
            try:
                count = self._db.import_legacy(legacy, root)
            except sqlite3.DatabaseError as exc:
                log.warning("could not take this share's jobs from %s (%s); they stay there", legacy, exc)
            else:
                log.info("took %d job(s) of this share from %s (one database per share now)", count, legacy)
        previous = self._db.daemon().get("share")
        if not previous or previous == root:
            return
        old, copied = Share(Path(previous)), False
        with contextlib.suppress(OSError, ConfigError):  # the old path gone or unreadable: the share moved
            copied = old.root.is_dir() and not old.root.samefile(self.share.root)
            copied = copied and old.identity() == self.share.identity()
        if copied:
            raise ConfigError(
                f"queue error: {root} and {previous} carry the same share id ({IDENTITY}): one is a copy of "
                f"the other. Delete {self.share.identity_file} to start this share with an empty job history"
            )
        log.warning("the share moved from %s to %s; its job history comes with it", previous, root)

    def run(self) -> None:
        """Start, loop until ``stop`` is set and running jobs have finished or been stopped, close."""
        self.start()
        self.loop()

    def loop(self) -> None:
        """The loop of a started daemon; closes it on the way out."""
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                except sqlite3.OperationalError as exc:  # locked past its 30 s timeout by another program
                    log.error("the job database is locked or busy (%s); trying again in %g s", exc, LOCKED_RETRY_S)
                    self._interrupted = True
                    self.stop.wait(LOCKED_RETRY_S)
                self.stop.wait(TICK_S)
            self._shutdown()
        finally:
            self.close()

    def tick(self) -> None:
        if not self._share_here():
            # Jobs already running go on (their data is loaded); ended ones are published once it is back.
            self._supervisor.drain_events()
            self._supervisor.reap()
            self._supervisor.enforce_timeouts()
            return
        if self._interrupted:  # a tick cut short may have left a claim half done: finish or undo it
            for row in self._db.rows("state = 'claiming'"):
                self._claims.recover_claim(row)
            self._interrupted = False
        now = time.monotonic()
        if now - self._last_scan >= self.q.rescan_s:
            self._scan()
        self._supervisor.drain_events()
        self._supervisor.reap()
        self._cancel_requested()
        self._supervisor.enforce_timeouts()
        self._claims.new_pass()
        self.watcher.settle_and_claim(self._claims.claim, self.stop)
        self._supervisor.dispatch()
        self._publisher.write_status()

    def _share_here(self) -> bool:
        """Whether the share is there (its id file readable and the same); says so when that changes.

        An unmounted share leaves an empty folder, a renamed one none: either way the daemon waits,
        claiming, starting and publishing nothing, and never recreates the share's folders in its place.
        """
        try:
            here = self.share.identity() == self._share_id
        except (OSError, ConfigError):
            here = False
        if here and self._share_missing:
            log.warning("the share %s is back; resuming", self.share.root)
            self._share_missing = False
            self._db.set_daemon(share_state="ok", share_missing_since=None)
            self.watcher.stop_observer()  # an unmount drops inotify's watches: watch afresh
            self.watcher.start_observer()
            self._scan()
        elif not here and not self._share_missing:
            log.error(
                "the share %s is gone (unmounted or renamed?); waiting for it to come back: no file is claimed, "
                "no job started and no result published until then",
                self.share.root,
            )
            self._share_missing = True
            self._db.set_daemon(share_state="missing", share_missing_since=now_iso())
        return here

    def close(self) -> None:
        self.watcher.stop_observer()
        if self.store is not None:
            self._db.set_daemon(state="stopped", stopped_at=now_iso())
            self._publisher.write_status(force=True, state="stopped")
            self._db.close()
            self.store = None
        self._unlock()

    def _shutdown(self) -> None:
        """Stop claiming; give running jobs ``stop_grace_s``, then stop them (they are retried at the next start)."""
        jobs = self._supervisor
        log.info("stopping: no new jobs; %d running, grace %.0f s", len(jobs.running), self.q.stop_grace_s)
        deadline = time.monotonic() + self.q.stop_grace_s
        while jobs.running and time.monotonic() < deadline:
            jobs.drain_events()
            jobs.reap()
            self._publisher.write_status()
            time.sleep(TICK_S)
        for job in jobs.running.values():
            log.warning(
                "job %s still running after the stop grace: stopping it; it is retried at the next start", job.job_id
            )
            jobs.terminate(job, "the daemon stopped", retry=True)
        while jobs.running:
            jobs.drain_events()
            jobs.reap()
            jobs.enforce_timeouts()
            time.sleep(TICK_S)

    def _scan(self) -> None:
        self._last_scan = time.monotonic()
        self.watcher.scan()
        self._db.set_daemon(last_scan=now_iso())
        self._publisher.publish_pending()

    # ------------------------------------------------------------------ cancelling

    def cancel(self, job_id: str) -> None:
        """Ask for a queued or running job to be cancelled (from any thread; done at the next tick)."""
        self._cancels.put(job_id)

    def _cancel_requested(self) -> None:
        while True:
            try:
                job_id = self._cancels.get_nowait()
            except queue.Empty:
                return
            row = self._db.active(job_id)
            if row is None:
                continue
            running = self._supervisor.running.get(row["seq"])
            if running is not None:
                self._supervisor.terminate(running, "cancelled through the status API")
            elif row["state"] == "queued":
                self._publisher.finish(
                    row["seq"], "failed", reason="cancelled through the status API before it started"
                )

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Finish what a previous daemon left: half-done claims, jobs that were running, unpublished results."""
        for row in self._db.rows("state = 'claiming'"):
            self._claims.recover_claim(row)
        for row in self._db.rows("state = 'queued' AND layers_json IS NULL"):
            self._claims.check(row["seq"])
        for row in self._db.rows("state = 'running'"):
            killed = kill_leftovers(f"{row['seq']}:{row['job_id']}")
            if killed:
                log.warning("job %s: killed %d process(es) left by the previous daemon", row["job_id"], killed)
            self._supervisor.requeue_or_fail(row["seq"], "the daemon stopped during the job")
        self._publisher.publish_pending()


def _open_store(path: Path, unlock: Callable[[], None]) -> QueueStore:
    """The share's job database; a damaged or locked one is an error that says what to do."""
    try:
        return QueueStore(path)
    except sqlite3.DatabaseError as exc:
        unlock()
        if "locked" in str(exc):
            raise ConfigError(
                f"queue error: the job database {path} is locked by another program ({exc}); close it "
                "(a sqlite3 shell, a backup tool) and start the daemon again"
            ) from None
        raise ConfigError(
            f"queue error: the job database {path} is damaged ({exc}). Stop here and keep the file: "
            f"`sqlite3 {path} .recover` can save its rows into a new file to put in its place; or move it aside "
            "to start this share with an empty job history (inputs and results on the share are kept)"
        ) from None


def server_layers(config_files: list[Path], sets: list[str], environ: Mapping[str, str] | None = None) -> list[Layer]:
    """The server's config layers, in order; a job's layers are inserted before the last two."""
    return [
        *(read_ini(p) for p in config_files),
        env_layer(os.environ if environ is None else environ),
        overrides_layer(sets),
    ]
