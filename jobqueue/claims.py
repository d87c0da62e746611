"""Claiming and checking: a settled file becomes a job row, its files move into the job's archive folder.

A ``claiming`` row is committed first, then the file is renamed into ``archive/<job_id>/``
(a CSV) or ``jobs/processing/`` (a job file): only one rename can win, and a restart finishes
or undoes a half-done claim from the row. The job is then checked (:mod:`jobqueue.checks`);
a rejected job is failed at once with the reason, its files kept in the archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from atomicio import atomic_path
from errors import HeavyOptError
from jobqueue.checks import (
    JOB_FILE_LIMIT,
    Rejected,
    check_input,
    check_request,
    find_sidecar,
    merge_layers,
    name_layer,
    parse_job_file,
    peek_input_file,
    read_regular,
    request_layer,
    resolve_input,
    sidecar_layers,
)
from jobqueue.clients import input_name
from jobqueue.publisher import Publisher
from jobqueue.share import Share, sha256_file
from jobqueue.store import QueueStore, now_iso
from jobqueue.watcher import Watcher
from optimizer.config import Layer, build_config
from optimizer.config import Queue as QueueConfig
from optimizer.naming import new_job_id

log = logging.getLogger("heavyopt.queue")


class Claimer:
    """Turns settled files into checked, queued jobs (or failed ones, with the reason)."""

    def __init__(
        self,
        share: Share,
        q: QueueConfig,
        store: QueueStore,
        watcher: Watcher,
        server_layers: list[Layer],
        publisher: Publisher,
    ) -> None:
        self.share = share
        self.q = q
        self.store = store
        self.watcher = watcher
        self.server_layers = server_layers
        self.publisher = publisher
        self._referenced: set[str] | None = None

    # ------------------------------------------------------------------ claiming

    def new_pass(self) -> None:
        """A new claiming pass: the job files waiting in jobs/queue/ are read again when needed."""
        self._referenced = None

    def claim(self, path: Path) -> bool:
        """Claim a settled file; False to look at it again later."""
        suffix = path.suffix.lower()
        if path.parent == self.share.queue and suffix == ".json":
            return self._claim_jobfile(path)
        if path.parent == self.share.input and suffix == ".csv" and self.q.csv_drops:
            if path.name in self._referenced_inputs():
                self.watcher.forget(path)  # a job file's input: claimed with its job file
                return True
            sidecar = find_sidecar(path)
            if sidecar is not None and not self.watcher.is_settled(sidecar):
                return False
            return self._claim_csv(path, sidecar)
        self.watcher.forget(path)  # sidecars, notes, anything else: not a submission
        return True

    def _referenced_inputs(self) -> set[str]:
        """Names in input/ that job files waiting in jobs/queue/ refer to (read once per claiming pass)."""
        if self._referenced is None:
            self._referenced = set()
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(self.share.queue):
                    name = peek_input_file(Path(entry.path))
                    if name:
                        self._referenced.add(name)
        return self._referenced

    def _claim_csv(self, path: Path, sidecar: Path | None) -> bool:
        job_id = new_job_id(path)
        seq = self.store.add(
            job_id=job_id,
            share=str(self.share.root),
            state="claiming",
            kind="csv",
            input_name=path.name,
            origin=self.share.rel(path),
            submitted_at=mtime_iso(path),
        )
        job_dir = self.share.make_job_dir(job_id, seq)
        self.store.update(seq, job_dir=self.share.rel(job_dir), input_path=self.share.rel(job_dir / path.name))
        try:
            os.rename(path, job_dir / path.name)  # the claim: only one rename of this name can succeed
        except FileNotFoundError:
            job_dir.rmdir()
            self.store.update(seq, state="failed", reason="claimed elsewhere", published=1, finished_at=now_iso())
            return True
        if sidecar is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(sidecar, job_dir / sidecar.name)
        self.store.update(seq, state="queued", claimed_at=now_iso())
        log.info("job %s: claimed %s", job_id, self.share.rel(path))
        self.check(seq)
        return True

    def _claim_jobfile(self, path: Path) -> bool:
        job_id = path.stem
        if self.store.active(job_id) is not None:
            return False  # the same job id is queued or running: wait until it has finished
        name = peek_input_file(path)
        if name and os.path.lexists(self.share.input / name) and not self.watcher.is_settled(self.share.input / name):
            return False  # the job file came first and its input is still being copied
        if name and not os.path.lexists(self.share.input / name) and age_s(path) < self.q.input_wait_s:
            return False  # the job file came first and its input is not there yet
        seq = self.store.add(
            job_id=job_id,
            share=str(self.share.root),
            state="claiming",
            kind="jobfile",
            input_name=None,
            origin=self.share.rel(path),
            submitted_at=mtime_iso(path),
        )
        job_dir = self.share.make_job_dir(job_id, seq)
        self.store.update(seq, job_dir=self.share.rel(job_dir))
        try:
            os.rename(path, self.share.processing / path.name)
        except FileNotFoundError:
            self.store.update(seq, state="failed", reason="claimed elsewhere", published=1, finished_at=now_iso())
            return True
        self._set_aside_old_results(job_id, job_dir, seq)
        self.store.update(seq, state="queued", claimed_at=now_iso())
        log.info("job %s: claimed %s", job_id, self.share.rel(path))
        self.check(seq)
        return True

    def _set_aside_old_results(self, job_id: str, job_dir: Path, seq: int) -> None:
        """A reused job id: the previous result moves to its archive folder, so a client polling for the
        result of this submission cannot read the old one."""
        for folder in (self.share.completed, self.share.failed):
            old = folder / f"{job_id}.json"
            if os.path.lexists(old):
                os.rename(old, job_dir / f"{folder.name}-before-{seq}.json")

    def recover_claim(self, row: dict[str, Any]) -> None:
        """Finish a claim a previous daemon left half done, or undo it (the file is claimed afresh)."""
        seq = row["seq"]
        origin = self.share.root / row["origin"]
        if row["kind"] == "csv":
            moved = row["input_path"] and os.path.lexists(self.share.root / row["input_path"])
        else:
            moved = os.path.lexists(self.share.processing / f"{row['job_id']}.json")
        if moved:
            self.store.update(seq, state="queued", claimed_at=now_iso(), detail="claim finished after a restart")
            self.check(seq)
        else:  # the rename never happened: the file is still where the user put it and is claimed afresh
            reason = "claim undone after a restart" if os.path.lexists(origin) else "file gone before it was claimed"
            self.store.update(seq, state="failed", reason=reason, published=1, finished_at=now_iso())

    # ------------------------------------------------------------------ checking

    def check(self, seq: int) -> None:
        """Validate a queued job; a rejected one is failed at once with the reason."""
        row = self.store.get(seq)
        try:
            if row["kind"] == "jobfile":
                layers_job, input_path = self._read_jobfile(row)
            else:
                layers_job, input_path = self._read_csv_job(row)
            check_input(input_path, self.share, self.q.max_input_mb)
            config = build_config(merge_layers(self.server_layers, layers_job))
            # What decides the results: the queue's and the API's settings (the share's path among them) do not.
            deciding = {k: v for k, v in config.to_dict().items() if k not in ("QUEUE", "API")}
            config_sha = hashlib.sha256(json.dumps(deciding, sort_keys=True).encode()).hexdigest()
            self.store.update(
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
        row = self.store.get(seq)
        if row["kind"] == "jobfile" and not row["input_path"]:
            name = peek_input_file(self.share.processing / Path(row["origin"]).name)
            job_dir = self.share.own_dir(row["job_dir"]) if row["job_dir"] else None
            source = self.share.input / name if name else None
            if source is not None and job_dir is not None and os.path.lexists(source):
                with contextlib.suppress(OSError):
                    os.rename(source, job_dir / source.name)
                    self.store.update(seq, input_name=name, input_path=self.share.rel(job_dir / source.name))
        self.publisher.finish(seq, "failed", reason=reason)

    def _read_csv_job(self, row: dict[str, Any]) -> tuple[list[Layer], Path]:
        job_dir = self.share.root / row["job_dir"]
        input_path = self.share.root / row["input_path"]
        sidecar = find_sidecar(input_path)
        if sidecar is not None and sidecar.parent != job_dir:
            sidecar = None
        return [*name_layer(input_path.name), *sidecar_layers(sidecar)], input_path

    def _read_jobfile(self, row: dict[str, Any]) -> tuple[list[Layer], Path]:
        job_id = row["job_id"]
        name = row["origin"]
        raw = read_regular(
            self.share.processing / Path(name).name, name, "write the job file itself", limit=JOB_FILE_LIMIT
        )
        request = parse_job_file(name, job_id, raw)
        self.store.update(row["seq"], request_json=json.dumps(request))
        input_file = check_request(name, job_id, request)
        job_dir = self.share.own_dir(row["job_dir"])
        if job_dir is None:
            raise Rejected(f"{name}: the job's folder {row['job_dir']} is gone or not a folder; submit the job again")
        source, target = self._take_input(row, name, input_file, job_dir)
        sidecar = find_sidecar(source)
        if sidecar is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(sidecar, job_dir / sidecar.name)
        sidecar = find_sidecar(target)
        layer = request_layer(name, request)
        return [*name_layer(target.name), *sidecar_layers(sidecar), *([layer] if layer else [])], target

    def _take_input(self, row: dict[str, Any], name: str, input_file: str, job_dir: Path) -> tuple[Path, Path]:
        """Where the job file's input was, and where it is now in the job's folder.

        The input moves out of input/ first, so that a rejected job file's input is not taken for a
        CSV dropped on its own. With ``QUEUE.csv_drops = false`` input/ is the clients' library of
        datasets (the predecessor's client lists it): the input is copied, and stays. An input no
        longer in input/ because it already ran (dropped on its own, or named by an earlier job
        file) is taken from the newest job that archived a file of that name.
        """
        if row["input_path"] and os.path.lexists(self.share.root / row["input_path"]):
            target = self.share.root / row["input_path"]  # moved before a restart
            return self.share.input / target.name, target
        try:
            source = resolve_input(self.share.input, name, input_file)
        except Rejected:
            archived = self._archived(input_file)
            if archived is None:
                raise
            source = archived
            log.info("job %s: input %s taken from %s", row["job_id"], input_file, self.share.rel(source))
        target = job_dir / source.name
        try:
            if source.parent == self.share.input and self.q.csv_drops:
                os.rename(source, target)
            else:
                _copy(source, target)
        except FileNotFoundError:
            raise Rejected(f"{name}: input_file {input_file!r} is not in input/; copy it there first") from None
        detail = None if source.parent == self.share.input else f"input taken from {self.share.rel(source)}"
        self.store.update(
            row["seq"], input_name=source.name, input_path=self.share.rel(target), event="input", detail=detail
        )
        return source, target

    def _archived(self, input_file: str) -> Path | None:
        """The newest archived input named as ``input_file`` names it (a regular file inside the share)."""
        plain = input_name(input_file)
        if plain is None:
            return None
        for prev in reversed(self.store.rows("input_name = ? AND input_path IS NOT NULL", (plain,))):
            path = self.share.root / prev["input_path"]
            if path.name == plain and path.parent.parent == self.share.archive:
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(path).st_mode):
                        return path
        return None


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` whole or not at all (never following a link)."""
    with atomic_path(target, exclusive=True) as tmp:
        shutil.copyfile(source, tmp, follow_symlinks=False)


def age_s(path: Path) -> float:
    """Seconds since ``path`` last changed (0 if it is gone)."""
    try:
        return time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def mtime_iso(path: Path) -> str | None:
    """When ``path`` last changed, as ISO 8601 UTC (None if it is gone)."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(os.lstat(path).st_mtime, UTC).isoformat(timespec="milliseconds")
    except FileNotFoundError:
        return None
