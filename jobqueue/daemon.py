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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from errors import ConfigError, HeavyOptError
from jobqueue.runner import MARKER
from jobqueue.share import Share, is_temporary, sha256_file, write_json_atomic
from jobqueue.store import QueueStore, now_iso
from optimizer.config import (
    SERVER_SECTIONS,
    Config,
    Layer,
    build_config,
    default_data_dir,
    env_layer,
    overrides_layer,
    read_ini,
)

log = logging.getLogger("heavyopt.queue")

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
JOB_TYPES = {
    "": False,
    "optimization": False,
    "portfolio": False,
    "portfolio_optimization": False,
    "standard": False,
    "zone": True,
    "zone_optimization": True,
    "zones": True,
}
KILL_AFTER_TERM_S = 10.0  # a job sent SIGTERM (timeout, stop) is killed this much later
TICK_S = 0.25


class Rejected(HeavyOptError):
    """A submission that cannot run; the message is the reason the user reads."""


@dataclass
class _Running:
    seq: int
    job_id: str
    proc: subprocess.Popen[str]
    started: float
    deadline: float
    final: dict[str, Any] | None = None
    term_sent: float | None = None
    why_stopped: str | None = None
    reader: threading.Thread | None = None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


@dataclass
class Daemon:
    """``heavyopt watch``: owns the share's queue and the job database."""

    share: Share
    config: Config
    server_layers: list[Layer]  # server config files, environment, --set (job layers go between them)
    state_dir: Path
    host: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        self.q = self.config.queue
        self.stop = threading.Event()
        self.store: QueueStore | None = None
        self._candidates: set[Path] = set()
        self._candidates_lock = threading.Lock()
        self._seen: dict[Path, _Seen] = {}
        self._events: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self._running: dict[int, _Running] = {}
        self._last_scan = 0.0
        self._status_written = 0.0
        self._cancels: queue.Queue[str] = queue.Queue()
        self._unreadable_names: set[Path] = set()
        self._referenced: set[str] | None = None
        self._broken: dict[Path, tuple[int, int]] = {}  # files whose claim raised, skipped until they change
        self._status_error_logged = 0.0
        self._lock_file: IO[str] | None = None
        self._observer: Any = None

    @property
    def _db(self) -> QueueStore:
        """The job database of a started daemon."""
        assert self.store is not None, "the daemon is not started"
        return self.store

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Lock the state folder, open the database, recover from a previous run, start watching."""
        self.share.ensure()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.state_dir / "queue.lock").open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise ConfigError(
                f"queue error: another heavyopt daemon is running on {self.state_dir} "
                "(queue.lock is held); stop it first, or give this one its own DATABASE.data_dir"
            ) from None
        self.store = QueueStore(self.state_dir / "queue.sqlite3")
        self._db.set_daemon(
            pid=os.getpid(), host=self.host, started_at=now_iso(), share=str(self.share.root), state="running"
        )
        self._recover()
        self._start_observer()
        self._scan()
        self._write_status(force=True)
        log.info("watching %s (%s)", self.share.root, "polling" if self.q.poll else "inotify")

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
        self._drain_events()
        self._reap()
        self._cancel_requested()
        self._enforce_timeouts()
        self._settle_and_claim()
        self._dispatch()
        self._write_status()

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None
        if self.store is not None:
            self._db.set_daemon(state="stopped", stopped_at=now_iso())
            self._write_status(force=True, state="stopped")
            self._db.close()
            self.store = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _shutdown(self) -> None:
        """Stop claiming; give running jobs ``stop_grace_s``, then stop them (they are retried at the next start)."""
        log.info("stopping: no new jobs; %d running, grace %.0f s", len(self._running), self.q.stop_grace_s)
        deadline = time.monotonic() + self.q.stop_grace_s
        while self._running and time.monotonic() < deadline:
            self._drain_events()
            self._reap()
            self._write_status()
            time.sleep(TICK_S)
        for job in self._running.values():
            log.warning(
                "job %s still running after the stop grace: stopping it; it is retried at the next start", job.job_id
            )
            self._terminate(job, "the daemon stopped", retry=True)
        while self._running:
            self._drain_events()
            self._reap()
            self._enforce_timeouts()
            time.sleep(TICK_S)

    # ------------------------------------------------------------------ detection

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        daemon = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw:
                        daemon.notice(Path(os.fsdecode(raw)))

        observer = PollingObserver(timeout=self.q.poll_interval_s) if self.q.poll else Observer()
        observer.daemon = True
        for folder in (self.share.input, self.share.queue):
            observer.schedule(Handler(), str(folder), recursive=False)
        observer.start()
        self._observer = observer

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

    def _scan(self) -> None:
        self._last_scan = time.monotonic()
        for folder in (self.share.input, self.share.queue):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    self.notice(Path(entry.path))
        self._db.set_daemon(last_scan=now_iso())
        for row in self._db.rows("state IN ('completed', 'failed') AND published = 0"):
            self._publish(row["seq"])

    def _settle_and_claim(self) -> None:
        self._referenced = None
        with self._candidates_lock:
            candidates, self._candidates = self._candidates, set()
        for path in candidates:
            self._seen.setdefault(path, _Seen(-1, -1, 0.0))
        now = time.monotonic()
        ready = []
        for path, seen in list(self._seen.items()):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self._seen[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
            elif now - seen.since >= self.q.settle_s:
                ready.append((seen.since, path))
        for _, path in sorted(ready):  # FIFO: the file that settled first is claimed first
            if self.stop.is_set():
                return
            seen = self._seen[path]
            if self._broken.get(path) == (seen.size, seen.mtime_ns):
                continue
            try:
                if self._claim(path):
                    self._seen.pop(path, None)
            except Exception:  # one bad file must not stop the queue (logged with its traceback)
                log.exception("cannot claim %s; it is skipped until it changes", self.share.rel(path))
                self._broken[path] = (seen.size, seen.mtime_ns)

    # ------------------------------------------------------------------ claiming

    def _claim(self, path: Path) -> bool:
        """Claim a settled file; False to look at it again later."""
        suffix = path.suffix.lower()
        if path.parent == self.share.queue and suffix == ".json":
            return self._claim_jobfile(path)
        if path.parent == self.share.input and suffix == ".csv" and self.q.csv_drops:
            if path.name in self._referenced_inputs():
                self._seen.pop(path, None)  # a job file's input: claimed with its job file
                return True
            sidecar = self._sidecar(path)
            if sidecar is not None and not self._is_settled(sidecar):
                return False
            return self._claim_csv(path, sidecar)
        self._seen.pop(path, None)  # sidecars, notes, anything else: not a submission
        return True

    def _referenced_inputs(self) -> set[str]:
        """Names in input/ that job files waiting in jobs/queue/ refer to (read once per claiming pass)."""
        if self._referenced is None:
            self._referenced = set()
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(self.share.queue):
                    name = _peek_input_file(Path(entry.path))
                    if name:
                        self._referenced.add(name)
        return self._referenced

    def _sidecar(self, csv: Path) -> Path | None:
        for name in (csv.stem + ".ini", csv.stem + ".INI"):
            candidate = csv.with_name(name)
            if os.path.lexists(candidate):
                return candidate
        return None

    def _is_settled(self, path: Path) -> bool:
        seen = self._seen.get(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if seen is None or (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
            self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, time.monotonic())
            return False
        return time.monotonic() - seen.since >= self.q.settle_s

    def _claim_csv(self, path: Path, sidecar: Path | None) -> bool:
        from optimizer.naming import new_job_id

        job_id = new_job_id(path)
        seq = self._db.add(
            job_id=job_id,
            share=str(self.share.root),
            state="claiming",
            kind="csv",
            input_name=path.name,
            origin=self.share.rel(path),
            submitted_at=_mtime_iso(path),
        )
        job_dir = self.share.make_job_dir(job_id, seq)
        self._db.update(seq, job_dir=self.share.rel(job_dir), input_path=self.share.rel(job_dir / path.name))
        try:
            os.rename(path, job_dir / path.name)  # the claim: only one rename of this name can succeed
        except FileNotFoundError:
            job_dir.rmdir()
            self._db.update(seq, state="failed", reason="claimed elsewhere", published=1, finished_at=now_iso())
            return True
        if sidecar is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(sidecar, job_dir / sidecar.name)
        self._db.update(seq, state="queued", claimed_at=now_iso())
        log.info("job %s: claimed %s", job_id, self.share.rel(path))
        self._check(seq)
        return True

    def _claim_jobfile(self, path: Path) -> bool:
        job_id = path.stem
        if self._db.active(job_id) is not None:
            return False  # the same job id is queued or running: wait until it has finished
        name = _peek_input_file(path)
        if name and os.path.lexists(self.share.input / name) and not self._is_settled(self.share.input / name):
            return False  # the job file came first and its input is still being copied
        if name and not os.path.lexists(self.share.input / name) and _age_s(path) < self.q.input_wait_s:
            return False  # the job file came first and its input is not there yet
        seq = self._db.add(
            job_id=job_id,
            share=str(self.share.root),
            state="claiming",
            kind="jobfile",
            input_name=None,
            origin=self.share.rel(path),
            submitted_at=_mtime_iso(path),
        )
        job_dir = self.share.make_job_dir(job_id, seq)
        self._db.update(seq, job_dir=self.share.rel(job_dir))
        claimed = self.share.processing / path.name
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            self._db.update(seq, state="failed", reason="claimed elsewhere", published=1, finished_at=now_iso())
            return True
        # A reused job id: the previous result moves to its archive folder, so a client polling for the
        # result of this submission cannot read the old one.
        for folder in (self.share.completed, self.share.failed):
            old = folder / f"{job_id}.json"
            if os.path.lexists(old):
                os.rename(old, job_dir / f"{folder.name}-before-{seq}.json")
        self._db.update(seq, state="queued", claimed_at=now_iso())
        log.info("job %s: claimed %s", job_id, self.share.rel(path))
        self._check(seq)
        return True

    # ------------------------------------------------------------------ checking

    def _check(self, seq: int) -> None:
        """Validate a queued job; a rejected one is failed at once with the reason."""
        row = self._db.get(seq)
        try:
            if row["kind"] == "jobfile":
                layers_job, input_path = self._read_jobfile(row)
            else:
                layers_job, input_path = self._read_csv_job(row)
            self._check_input(input_path)
            config = build_config(self._layers(layers_job))
            config_sha = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()
            self._db.update(
                seq,
                input_path=self.share.rel(input_path),
                input_name=row["input_name"] or input_path.name,
                layers_json=json.dumps(layers_job),  # the job's own; the server's may hold secrets
                input_sha256=sha256_file(input_path),
                config_sha256=config_sha,
                event="checked",
            )
        except HeavyOptError as exc:  # Rejected included
            self._reject(seq, str(exc))
        except (OSError, ValueError, RecursionError) as exc:  # an unreadable file, or one that changed under us
            what = row["origin"] or row["input_path"]
            self._reject(seq, f"{what}: could not be read ({type(exc).__name__}: {exc}); write it again")

    def _reject(self, seq: int, reason: str) -> None:
        """Fail a job at its check; a job file's input is archived with it, not left to run on its own."""
        row = self._db.get(seq)
        if row["kind"] == "jobfile" and not row["input_path"]:
            name = _peek_input_file(self.share.processing / Path(row["origin"]).name)
            job_dir = self.share.own_dir(row["job_dir"]) if row["job_dir"] else None
            source = self.share.input / name if name else None
            if source is not None and job_dir is not None and os.path.lexists(source):
                with contextlib.suppress(OSError):
                    os.rename(source, job_dir / source.name)
                    self._db.update(seq, input_name=name, input_path=self.share.rel(job_dir / source.name))
        self._finish(seq, "failed", reason=reason)

    def _layers(self, job_layers: list[Layer]) -> list[Layer]:
        """Server files < the job's sidecar and job file < environment < ``--set``."""
        return [*self.server_layers[:-2], *job_layers, *self.server_layers[-2:]]

    def _read_csv_job(self, row: dict[str, Any]) -> tuple[list[Layer], Path]:
        job_dir = self.share.root / row["job_dir"]
        input_path = self.share.root / row["input_path"]
        layers: list[Layer] = []
        sidecar = self._sidecar(input_path)
        if sidecar is not None and sidecar.parent == job_dir:
            _regular(sidecar, f"input/{sidecar.name}", "copy the settings file itself")
            layers.append(_job_layer(sidecar, f"input/{sidecar.name}"))
        return layers, input_path

    def _read_jobfile(self, row: dict[str, Any]) -> tuple[list[Layer], Path]:
        job_id = row["job_id"]
        claimed = self.share.processing / Path(row["origin"]).name
        name = row["origin"]
        raw = _read_regular(claimed, name, "write the job file itself", limit=1_000_000)
        if not JOB_ID.fullmatch(job_id):
            raise Rejected(f"{name}: job id {job_id!r}: use 1–100 letters, digits, '_' or '-' in the file name")
        try:
            request = json.loads(raw.decode("utf-8-sig"))
        except (ValueError, RecursionError) as exc:
            raise Rejected(f"{name}: not valid JSON ({exc}); write a JSON object with job_id and input_file") from None
        self._db.update(row["seq"], request_json=json.dumps(request))
        if not isinstance(request, dict):
            raise Rejected(f"{name}: expected a JSON object with job_id and input_file, got {type(request).__name__}")
        if str(request.get("job_id", job_id)) != job_id:
            raise Rejected(
                f"{name}: job_id {request.get('job_id')!r} differs from the file name {job_id!r}; make them equal"
            )
        input_file = request.get("input_file")
        if not isinstance(input_file, str) or not input_file.strip():
            raise Rejected(f"{name}: input_file is missing; give the name of a CSV in input/")
        job_dir = self.share.own_dir(row["job_dir"])
        if job_dir is None:
            raise Rejected(f"{name}: the job's folder {row['job_dir']} is gone or not a folder; submit the job again")
        if row["input_path"] and os.path.lexists(self.share.root / row["input_path"]):
            target = self.share.root / row["input_path"]  # moved before a restart
            source = self.share.input / target.name
        else:
            # Move the input (and a sidecar of the same name) out of input/ into the job's archive folder
            # first, so that a rejected job file's input is not taken for a CSV dropped on its own.
            source = self._resolve_input(name, input_file)
            target = job_dir / source.name
            try:
                os.rename(source, target)
            except FileNotFoundError:
                raise Rejected(f"{name}: input_file {input_file!r} is not in input/; copy it there first") from None
            self._db.update(row["seq"], input_name=input_file, input_path=self.share.rel(target))
        sidecar = self._sidecar(source)
        if sidecar is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(sidecar, job_dir / sidecar.name)
        sidecar = self._sidecar(target)
        layer: Layer = {}
        size = request.get("portfolio_size")
        if size not in (None, ""):
            low, high = _portfolio_range(name, size)
            layer["PORTFOLIO"] = {
                "min_size": (str(low), f"{name} portfolio_size"),
                "max_size": (str(high), f"{name} portfolio_size"),
            }
        job_type = str(request.get("job_type") or "").strip().lower()
        if job_type not in JOB_TYPES:
            raise Rejected(
                f"{name}: job_type {request.get('job_type')!r} is not known; use one of "
                "'portfolio_optimization', 'zone_optimization' or leave it out"
            )
        if JOB_TYPES[job_type]:
            layer["OPTIMIZATION"] = {"zone_optimization_enabled": ("true", f"{name} job_type")}
        layers: list[Layer] = []
        if sidecar is not None:
            _regular(sidecar, f"input/{sidecar.name}", "copy the settings file itself")
            layers.append(_job_layer(sidecar, f"input/{sidecar.name}"))
        if layer:
            layers.append(layer)
        return layers, target

    def _resolve_input(self, name: str, input_file: str) -> Path:
        """``input_file`` as a file directly inside ``input/``: no folders, no ``..``, no absolute paths."""
        candidate = input_file.replace("\\", "/")
        if candidate.startswith("input/"):
            candidate = candidate[len("input/") :]
        if "/" in candidate or candidate in ("", ".", "..") or ":" in candidate:
            raise Rejected(
                f"{name}: input_file {input_file!r} must be the name of a file directly in input/ "
                "(no folders, '..', drive letters or absolute paths)"
            )
        path = self.share.input / candidate
        if not os.path.lexists(path):
            raise Rejected(f"{name}: input_file {input_file!r} is not in input/; copy it there first")
        return path

    def _check_input(self, path: Path) -> None:
        name = f"input/{path.name}"
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            where = "inside" if self.share.contains(path) else "outside"
            raise Rejected(f"{name} is a symbolic link (to a file {where} the share); copy the file itself")
        if not stat.S_ISREG(st.st_mode):
            raise Rejected(f"{name} is not a regular file")
        limit = self.q.max_input_mb * 1e6
        if st.st_size > limit:
            raise Rejected(
                f"{name}: {st.st_size / 1e6:,.1f} MB is over the limit of {self.q.max_input_mb:g} MB "
                "(QUEUE.max_input_mb); split the file or ask the operator to raise the limit"
            )
        if st.st_size == 0:
            raise Rejected(f"{name} is empty")

    # ------------------------------------------------------------------ running

    def _dispatch(self) -> None:
        if self.stop.is_set():
            return
        if len(self._running) >= self.q.workers:
            return
        running = {(r["input_sha256"], r["config_sha256"]) for r in self._db.rows("state = 'running'")}
        for row in self._db.rows("state = 'queued' AND layers_json IS NOT NULL"):
            if len(self._running) >= self.q.workers:
                return
            if self._duplicate(row):
                continue
            key = (row["input_sha256"], row["config_sha256"])
            if key in running:
                continue  # the same input and config is running: it is reported as a duplicate once done
            self._start(row)
            running.add(key)

    def _duplicate(self, row: dict[str, Any]) -> bool:
        earlier = self._db.rows(
            "state = 'completed' AND duplicate_of IS NULL AND input_sha256 = ? AND config_sha256 = ? AND seq < ?",
            (row["input_sha256"], row["config_sha256"], row["seq"]),
        )
        for prev in reversed(earlier):
            if prev["run_dir"] and (self.share.root / prev["run_dir"]).is_dir():
                result = json.loads(prev["result_json"] or "{}")
                result["duplicate_of"] = prev["job_id"]
                self._finish(
                    row["seq"],
                    "completed",
                    run_dir=prev["run_dir"],
                    result=result,
                    duplicate_of=prev["job_id"],
                    note=f"same input file and settings as job {prev['job_id']}; its results are reused",
                )
                log.info("job %s: identical to job %s; not run again", row["job_id"], prev["job_id"])
                return True
        return False

    def _start(self, row: dict[str, Any]) -> None:
        seq, job_id = row["seq"], row["job_id"]
        spec = {
            "parent_pid": os.getpid(),
            "job_id": job_id,
            "input": str(self.share.root / row["input_path"]),
            "input_sha256": row["input_sha256"],
            "out_dir": str(self.share.output),
            "layers": self._layers(json.loads(row["layers_json"])),
        }
        env = {**os.environ, MARKER: f"{seq}:{job_id}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobqueue.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills the job and its workers
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        now = time.monotonic()
        job = _Running(seq, job_id, proc, now, now + self.q.job_timeout_s)
        job.reader = threading.Thread(target=self._read_events, args=(seq, proc), daemon=True)
        job.reader.start()
        self._running[seq] = job
        self._db.update(
            seq,
            state="running",
            started_at=now_iso(),
            attempts=row["attempts"] + 1,
            pid=proc.pid,
            step="starting",
            progress=0.0,
        )
        log.info("job %s: started (attempt %d, pid %d)", job_id, row["attempts"] + 1, proc.pid)
        self._write_status(force=True)

    def _read_events(self, seq: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                log.warning("job %d: unreadable line from the runner: %r", seq, line[:200])
                continue
            if isinstance(event, dict):
                self._events.put((seq, event))
        proc.stdout.close()
        self._events.put((seq, None))  # end of stream

    def _drain_events(self) -> None:
        changed: dict[int, dict[str, Any]] = {}
        while True:
            try:
                seq, event = self._events.get_nowait()
            except queue.Empty:
                break
            job = self._running.get(seq)
            if job is None or event is None:
                continue
            if event.get("event") == "progress":
                changed[seq] = event
            elif event.get("event") in ("completed", "failed"):
                job.final = event
        for seq, event in changed.items():
            self._db.update(
                seq, step=str(event.get("step")), progress=float(event.get("progress", 0.0)), event="progress"
            )

    def _reap(self) -> None:
        for seq, job in list(self._running.items()):
            code = job.proc.poll()
            if code is None:
                continue
            if job.reader is not None:
                job.reader.join(timeout=5)
            self._drain_events()
            del self._running[seq]
            final = job.final or {}
            if final.get("event") == "completed" and code == 0:  # finished just as it was being stopped: done
                run_dir = Path(final["run_dir"])
                result = {k: v for k, v in final.items() if k != "event"}
                result["run_dir"] = self.share.rel(run_dir)
                note = None
                if final.get("output_errors"):
                    note = "some output files could not be written; see error_log.txt in the run folder"
                self._finish(seq, "completed", run_dir=self.share.rel(run_dir), result=result, note=note)
            elif job.why_stopped and job.why_stopped.startswith("retry:"):
                self._requeue_or_fail(seq, job.why_stopped[len("retry:") :])
            elif job.why_stopped:
                self._finish(seq, "failed", reason=job.why_stopped)
            elif final.get("event") == "failed":
                self._finish(seq, "failed", reason=str(final.get("reason")))
            else:
                self._finish(seq, "failed", reason=_exit_reason(code))

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for job in self._running.values():
            if job.term_sent is None and now > job.deadline:
                row = self._db.get(job.seq)
                self._terminate(
                    job,
                    f"timed out after {self.q.job_timeout_s:g} s (QUEUE.job_timeout_s) in step "
                    f"{row['step']!r} at {row['progress']:.0f} %; raise the timeout or shrink the job "
                    "(fewer sizes, a smaller OPTIMIZATION.evaluation_budget)",
                )
            elif job.term_sent is not None and now - job.term_sent > KILL_AFTER_TERM_S:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.proc.pid, signal.SIGKILL)

    def _terminate(self, job: _Running, reason: str, *, retry: bool = False) -> None:
        job.why_stopped = f"retry:{reason}" if retry else reason
        job.term_sent = time.monotonic()
        log.warning("job %s: %s; sending SIGTERM", job.job_id, reason)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.proc.pid, signal.SIGTERM)

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
            running = self._running.get(row["seq"])
            if running is not None:
                self._terminate(running, "cancelled through the status API")
            elif row["state"] == "queued":
                self._finish(row["seq"], "failed", reason="cancelled through the status API before it started")

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Finish what a previous daemon left: half-done claims, jobs that were running, unpublished results."""
        for row in self._db.rows("state = 'claiming'"):
            self._recover_claim(row)
        for row in self._db.rows("state = 'queued' AND layers_json IS NULL"):
            self._check(row["seq"])
        for row in self._db.rows("state = 'running'"):
            killed = _kill_leftovers(f"{row['seq']}:{row['job_id']}")
            if killed:
                log.warning("job %s: killed %d process(es) left by the previous daemon", row["job_id"], killed)
            self._requeue_or_fail(row["seq"], "the daemon stopped during the job")
        for row in self._db.rows("state IN ('completed', 'failed') AND published = 0"):
            self._publish(row["seq"])

    def _recover_claim(self, row: dict[str, Any]) -> None:
        seq = row["seq"]
        origin = self.share.root / row["origin"]
        if row["kind"] == "csv":
            moved = row["input_path"] and os.path.lexists(self.share.root / row["input_path"])
        else:
            moved = os.path.lexists(self.share.processing / f"{row['job_id']}.json")
        if moved:
            self._db.update(seq, state="queued", claimed_at=now_iso(), detail="claim finished after a restart")
            self._check(seq)
        else:  # the rename never happened: the file is still where the user put it and is claimed afresh
            reason = "claim undone after a restart" if os.path.lexists(origin) else "file gone before it was claimed"
            self._db.update(seq, state="failed", reason=reason, published=1, finished_at=now_iso())

    def _requeue_or_fail(self, seq: int, why: str) -> None:
        row = self._db.get(seq)
        if row["attempts"] >= self.q.max_attempts:
            self._finish(
                seq,
                "failed",
                reason=f"{why} (step {row['step']!r} at {row['progress']:.0f} %), {row['attempts']} time(s) "
                f"out of QUEUE.max_attempts = {self.q.max_attempts}; not retried: check the daemon's log, "
                "then resubmit",
            )
        else:
            self._db.update(seq, state="queued", pid=None, step="queued", progress=0.0, event="requeued", detail=why)
            log.warning(
                "job %s: %s; queued again (attempt %d of %d done)",
                row["job_id"],
                why,
                row["attempts"],
                self.q.max_attempts,
            )

    # ------------------------------------------------------------------ results

    def _finish(
        self,
        seq: int,
        state: str,
        *,
        reason: str | None = None,
        run_dir: str | None = None,
        result: dict[str, Any] | None = None,
        duplicate_of: str | None = None,
        note: str | None = None,
    ) -> None:
        if result is not None and note:
            result["note"] = note
        self._db.update(
            seq,
            state=state,
            reason=reason,
            run_dir=run_dir,
            result_json=json.dumps(result) if result is not None else None,
            duplicate_of=duplicate_of,
            finished_at=now_iso(),
            progress=100.0 if state == "completed" else self._db.get(seq)["progress"],
            step="done" if state == "completed" else "failed",
            published=0,
        )
        row = self._db.get(seq)
        if state == "failed":
            log.error("job %s failed: %s", row["job_id"], reason)
        else:
            log.info("job %s completed: %s", row["job_id"], run_dir)
        self._publish(seq)
        self._write_status(force=True)

    def _publish(self, seq: int) -> None:
        """Write ``jobs/<state>/<job_id>.json`` from the row, and clear the job's files from processing/."""
        row = self._db.get(seq)
        job_id = row["job_id"]
        folder = self.share.completed if row["state"] == "completed" else self.share.failed
        try:
            write_json_atomic(folder / f"{job_id}.json", result_document(row))
            if row["kind"] == "jobfile":
                claimed = self.share.processing / Path(row["origin"]).name
                job_dir = self.share.own_dir(row["job_dir"]) if row["job_dir"] else None
                if os.path.lexists(claimed) and job_dir is not None:
                    os.rename(claimed, job_dir / claimed.name)
        except OSError as exc:  # retried at the next rescan and at the next start
            log.error("job %s: cannot publish its result in %s: %s", job_id, self.share.rel(folder), exc)
            return
        self._db.update(seq, published=1, event="published", detail=self.share.rel(folder / f"{job_id}.json"))

    def _write_status(self, *, force: bool = False, state: str | None = None) -> None:
        now = time.monotonic()
        if self.store is None or (not force and now - self._status_written < 1.0):
            return
        self._status_written = now
        running = [self._db.get(seq) for seq in self._running]
        queued = self._db.rows("state IN ('claiming', 'queued')")
        doc = {
            "status": state or ("stopping" if self.stop.is_set() else "running" if running else "idle"),
            "updated_at": now_iso(),
            "daemon": {"host": self.host, "pid": os.getpid()},
            "jobs": [
                {
                    "job_id": r["job_id"],
                    "input_file": r["input_name"],
                    "step": r["step"],
                    "progress": round(r["progress"], 1),
                    "started_at": r["started_at"],
                    "attempt": r["attempts"],
                }
                for r in running
            ],
            "queue": [r["job_id"] for r in queued],
        }
        try:
            write_json_atomic(self.share.status_file, doc)
        except OSError as exc:
            if now - self._status_error_logged > 60:
                self._status_error_logged = now
                log.error("cannot write %s: %s", self.share.rel(self.share.status_file), exc)


def result_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """What ``jobs/completed|failed/<job_id>.json`` holds (and ``GET /jobs/{id}`` returns)."""
    result = json.loads(row["result_json"]) if row["result_json"] else {}
    return {
        "job_id": row["job_id"],
        "status": row["state"],
        "input_file": row["input_name"],
        "archived_input": row["input_path"] or row["job_dir"],
        "submitted_at": row["submitted_at"],
        "claimed_at": row["claimed_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "attempts": row["attempts"],
        "output_folder": row["run_dir"],
        "reason": row["reason"],
        "duplicate_of": row["duplicate_of"],
        "winner": result.get("winner"),
        "in_sample_winner": result.get("in_sample_winner"),
        "validation": result.get("validation"),
        "timings_s": result.get("timings_s"),
        "wall_s": result.get("wall_s"),
        "evaluations": result.get("evaluations"),
        "strategies": result.get("strategies"),
        "days": result.get("days"),
        "inverted": result.get("inverted"),
        "note": result.get("note"),
        "request": json.loads(row["request_json"]) if row["request_json"] else None,
    }


def _job_layer(path: Path, name: str) -> Layer:
    """A sidecar INI, its keys credited to ``name`` (as the user knows the file).

    A job's own settings may not reach the server's: the database, compute resources, output or the queue.
    """
    try:
        layer = read_ini(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(str(path), name)) from None
    layer = {s: {k: (v, name) for k, (v, _) in keys.items()} for s, keys in layer.items()}
    for section in layer:
        if section in SERVER_SECTIONS:
            raise Rejected(f"{name}: section [{section}] is set by the server, not by a job; remove it from the file")
    return layer


def _portfolio_range(name: str, value: Any) -> tuple[int, int]:
    """``portfolio_size``: ``50``, ``"35-100"`` or ``[35, 100]``."""
    try:
        if isinstance(value, list) and len(value) == 2:
            low, high = int(value[0]), int(value[1])
        elif isinstance(value, str) and "-" in value.strip("- "):
            a, b = value.split("-", 1)
            low, high = int(a), int(b)
        elif isinstance(value, bool):
            raise ValueError
        else:
            low = high = int(value)
    except (TypeError, ValueError, OverflowError):
        raise Rejected(f'{name}: portfolio_size {value!r}: use a number (50), a range "35-100" or [35, 100]') from None
    if not 2 <= low <= high:
        raise Rejected(f"{name}: portfolio_size {value!r}: sizes must be ≥ 2, smallest first")
    return low, high


def _regular(path: Path, name: str, what_to_do: str) -> os.stat_result:
    """``path``'s status if it is a regular file; a link, folder, FIFO … is rejected, never followed."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Rejected(f"{name} is a symbolic link; {what_to_do}")
    if not stat.S_ISREG(st.st_mode):
        raise Rejected(f"{name} is not a regular file; {what_to_do}")
    return st


def _read_regular(path: Path, name: str, what_to_do: str, *, limit: int) -> bytes:
    """The bytes of a regular file, opened without following a link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Rejected(f"{name} is a symbolic link; {what_to_do}") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Rejected(f"{name} is not a regular file; {what_to_do}")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Rejected(f"{name}: more than {limit:,} bytes is too large for a job file")
    return data


def _peek_input_file(path: Path) -> str | None:
    """The ``input_file`` a job file names (as a plain name in input/), if it can be read; else None."""
    try:
        if path.suffix.lower() != ".json":
            return None
        request = json.loads(_read_regular(path, path.name, "", limit=1_000_000).decode("utf-8-sig"))
    except (Rejected, OSError, ValueError, RecursionError):
        return None
    value = request.get("input_file") if isinstance(request, dict) else None
    if not isinstance(value, str):
        return None
    value = value.replace("\\", "/").removeprefix("input/")
    return value if value not in ("", ".", "..") and "/" not in value and ":" not in value else None


def _age_s(path: Path) -> float:
    try:
        return time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _mtime_iso(path: Path) -> str | None:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(os.lstat(path).st_mtime, UTC).isoformat(timespec="milliseconds")
    except FileNotFoundError:
        return None


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the system may have run out of memory; see the kernel log)" if name == "SIGKILL" else ""
        return f"the job's process was killed by {name}{hint}"
    return f"the job's process ended with exit code {code} without a result; see the daemon's log"


def _kill_leftovers(marker: str) -> int:
    """Kill every process still carrying ``marker`` (a runner of a previous daemon and its workers)."""
    wanted = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    alive, deadline = list(found), time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.05)
    return len(found)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def server_layers(config_files: list[Path], sets: list[str], environ: Mapping[str, str] | None = None) -> list[Layer]:
    """The server's config layers, in order; a job's layers are inserted before the last two."""
    return [
        *(read_ini(p) for p in config_files),
        env_layer(os.environ if environ is None else environ),
        overrides_layer(sets),
    ]


def state_dir(config: Config) -> Path:
    return Path(config.database.data_dir) if config.database.data_dir else default_data_dir()
