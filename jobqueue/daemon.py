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

import fcntl
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from errors import ConfigError
from jobqueue.claims import Claimer
from jobqueue.publisher import Publisher
from jobqueue.share import Share
from jobqueue.store import QueueStore, now_iso
from jobqueue.supervisor import Running, Supervisor, kill_leftovers
from jobqueue.watcher import Watcher
from optimizer.config import Config
from optimizer.config_sources import Layer, env_layer, overrides_layer, read_ini

log = logging.getLogger("heavyopt.queue")

TICK_S = 0.25


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

    @property
    def _db(self) -> QueueStore:
        """The job database of a started daemon."""
        assert self.store is not None, "the daemon is not started"
        return self.store

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Lock the state folder, open the database, recover from a previous run, start watching."""
        self.share.ensure()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        self.store = QueueStore(self.data_dir / "queue.sqlite3")
        running: dict[int, Running] = {}
        self._publisher = Publisher(self.share, self.store, self.host, self.stop, running)
        self._claims = Claimer(self.share, self.q, self.store, self.watcher, self.server_layers, self._publisher)
        self._supervisor = Supervisor(
            self.share, self.q, self.store, self.server_layers, self._publisher, self.stop, running
        )
        self._db.set_daemon(
            pid=os.getpid(), host=self.host, started_at=now_iso(), share=str(self.share.root), state="running"
        )
        self._recover()
        self.watcher.start_observer()
        self._scan()
        self._publisher.write_status(force=True)
        log.info("watching %s (%s)", self.share.root, "polling" if self.q.poll else "inotify")

    def _lock(self) -> None:
        """Hold ``queue.lock`` in the state folder: one daemon per job database."""
        self._lock_file = (self.data_dir / "queue.lock").open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise ConfigError(
                f"queue error: another heavyopt daemon is running on {self.data_dir} "
                "(queue.lock is held); stop it first, or give this one its own DATABASE.data_dir"
            ) from None

    def run(self) -> None:
        """Start, loop until ``stop`` is set and running jobs have finished or been stopped, close."""
        self.start()
        self.loop()

    def loop(self) -> None:
        """The loop of a started daemon; closes it on the way out."""
        try:
            while not self.stop.is_set():
                self.tick()
                self.stop.wait(TICK_S)
            self._shutdown()
        finally:
            self.close()

    def tick(self) -> None:
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

    def close(self) -> None:
        self.watcher.stop_observer()
        if self.store is not None:
            self._db.set_daemon(state="stopped", stopped_at=now_iso())
            self._publisher.write_status(force=True, state="stopped")
            self._db.close()
            self.store = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

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


def server_layers(config_files: list[Path], sets: list[str], environ: Mapping[str, str] | None = None) -> list[Layer]:
    """The server's config layers, in order; a job's layers are inserted before the last two."""
    return [
        *(read_ini(p) for p in config_files),
        env_layer(os.environ if environ is None else environ),
        overrides_layer(sets),
    ]
