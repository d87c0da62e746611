"""Run a job's (size × algorithm) tasks, in this process or on a pool of worker processes.

The pool's workers attach to the problem's read-only arrays in shared memory (one copy,
33.5 MB at production width) instead of receiving a copy with every task. Workers are
started with ``spawn``: forking a process that holds DuckDB and BLAS threads is unsafe.
Each task carries its own seed (spawn key), so a result does not depend on which worker
ran it or in which order: the pool and the in-process runner give identical results.

A job starts its :class:`WorkerPool` once, as soon as it has read its file, so the workers'
start (a spawned process imports what the job's main module imports: about 0.6–0.9 s of wall
time for two) overlaps storing, ULTA and the correlation step instead of delaying the search;
every search of the job (each walk-forward fold, each zone) runs on the same workers, which attach
to each search's arrays on its first task there.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from algorithms import FailedRun, RunResult, run_algorithm
from algorithms.fitness import Objective
from algorithms.guide import Guide
from algorithms.problem import Problem

Outcome = RunResult | FailedRun
log = logging.getLogger("heavyopt")


@dataclass(frozen=True)
class Task:
    """One algorithm on one portfolio size, with everything that decides its result."""

    size: int
    algorithm: Any  # a frozen algorithm instance (picklable)
    budget: int
    job_seed: int
    spawn_key: tuple[int, ...]
    time_limit_s: float | None
    archive_size: int = 0  # distinct good portfolios kept besides the best (validation candidates)

    def run(self, problem: Problem) -> Outcome:
        rng = np.random.default_rng(np.random.SeedSequence(self.job_seed, spawn_key=self.spawn_key))
        return run_algorithm(
            self.algorithm, problem.with_size(self.size), self.budget, rng, self.time_limit_s, self.archive_size
        )


@dataclass(frozen=True)
class Attachment:
    """What a worker needs to build one search's problem: the shared blocks ((name, shape, dtype) of
    the rows, the flags and, for a guided search, the guide's order and siblings) and the settings."""

    blocks: tuple[tuple[str, tuple[int, ...], str], ...]
    objective: Objective
    size: int
    threads: int
    guide_share: float | None
    search: str = field(default_factory=lambda: uuid.uuid4().hex)  # a block name may be reused once unlinked


_worker_attached: Attachment | None = None
_worker_problem: Problem | None = None
_worker_memory: list[SharedMemory] = []
_worker_stale: list[SharedMemory] = []  # earlier searches' blocks that could not be closed yet
_worker_limits: list[Any] = []

# The search's parallelism is its processes and the evaluator's own threads, never BLAS: an
# OpenBLAS pool left at one thread per core spins between the few BLAS calls of a search and
# takes the other core from the other worker (measured: 2 workers ran no faster than 1).
SEARCH_BLAS_THREADS = 1


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it dies


def die_with_parent(parent: int) -> None:
    """Be killed (SIGKILL) when the process that started this one dies, however it dies.

    A SIGKILLed or OOM-killed parent runs no clean-up, so without this its children (a job's
    runner, a pool's workers) would live on as orphans, computing for nobody. If the parent
    died before the request took effect, exit now.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _start_worker(parent: int) -> None:
    """Worker initialiser: die with the job's process; BLAS on one thread."""
    die_with_parent(parent)
    _worker_limits.append(threadpool_limits(limits=SEARCH_BLAS_THREADS, user_api="blas"))


def _ready() -> int:
    """A new pool's first tasks, one per worker: they make it start its processes now."""
    return os.getpid()


def _attach(attachment: Attachment) -> Problem:
    """This worker's problem for ``attachment``'s search: mapped from the shared blocks on the
    search's first task here, the previous search's blocks let go.

    Spawned workers share the parent's resource tracker, so the parent's registration stands:
    the blocks are unlinked by the parent, or by the tracker if the parent dies.
    """
    global _worker_problem, _worker_attached
    if _worker_problem is not None and _worker_attached == attachment:
        return _worker_problem
    _worker_problem = _worker_attached = None  # drops the arrays, so their blocks can be closed
    earlier = _worker_stale + _worker_memory
    _worker_stale.clear()
    _worker_memory.clear()
    for memory in earlier:
        try:
            memory.close()
        except BufferError:  # a view of it is still alive: kept (not left to __del__), tried again next time
            _worker_stale.append(memory)
    arrays = []
    for name, shape, dtype in attachment.blocks:
        memory = SharedMemory(name=name)
        _worker_memory.append(memory)
        arrays.append(np.ndarray(shape, dtype=dtype, buffer=memory.buf))
    share = attachment.guide_share
    guide = None if share is None else Guide(arrays[2], share, arrays[3] if len(arrays) > 3 else None)
    _worker_problem = Problem(
        arrays[0], arrays[1], attachment.size, attachment.objective, np, threads=attachment.threads, guide=guide
    )
    _worker_attached = attachment
    return _worker_problem


def _run_in_worker(attachment: Attachment, task: Task) -> Outcome:
    return task.run(_attach(attachment))


class WorkerPool:
    """``workers`` spawned processes that run every search of one job (see the module docstring).

    :meth:`start` spawns them at once (a pool otherwise starts its processes as tasks arrive);
    a pool that breaks (a worker killed, out of memory) is let go and the next search gets a
    fresh one. :meth:`submit` runs any picklable call on a worker (the job's slowest output file
    is written there, beside the others). :meth:`close` at the end of the job.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, context, initializer=_start_worker, initargs=(os.getpid(),))
            try:
                for _ in range(self.workers):  # a pool spawns a process per task submitted while none is idle
                    self._pool.submit(_ready)
            except Exception as exc:  # noqa: BLE001 - a pool that cannot start is a broken pool
                log.warning("the worker pool broke while starting (%s: %s)", type(exc).__name__, exc)
                pool, self._pool = self._pool, None  # let go: the next start spawns a fresh one
                pool.shutdown(wait=True, cancel_futures=True)
                return pool  # shut down: what the caller submits to it raises, as to any broken pool
        return self._pool

    @property
    def running(self) -> bool:
        """Started and not let go since."""
        return self._pool is not None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """``fn(*args)`` on a worker; None when the pool cannot take it (the caller runs it itself)."""
        try:
            return self.start().submit(fn, *args)
        except Exception as exc:  # noqa: BLE001 - broken or shut down: the caller's own process will do
            log.warning("the worker pool could not take %s (%s: %s)", fn.__name__, type(exc).__name__, exc)
            self.discard()
            return None

    def discard(self) -> None:
        """Let a broken pool go; the next :meth:`start` spawns a fresh one."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self.discard()


@contextmanager
def _shared(array: np.ndarray) -> Iterator[SharedMemory]:
    memory = SharedMemory(create=True, size=max(array.nbytes, 1))
    try:
        np.ndarray(array.shape, dtype=array.dtype, buffer=memory.buf)[...] = array
        yield memory
    finally:
        memory.close()
        memory.unlink()


def run_tasks(
    problem: Problem,
    tasks: list[Task],
    workers: int,
    on_done: Callable[[Task, Outcome], None] | None = None,
    pool: WorkerPool | None = None,
) -> list[Outcome]:
    """Outcomes of ``tasks``, in task order.

    ``workers`` ≤ 1 runs them here, one after another; more runs them on that many processes:
    ``pool``'s when it has that many (the job's, already started), else a pool of their own.
    ``on_done`` is called as each finishes (in completion order). A worker process that dies
    (killed, out of memory) breaks its pool: finished results are kept and the unfinished
    tasks go to a fresh pool; after ``ISOLATE_AFTER_BREAKS`` broken pools the rest run one per
    pool, so the task that kills its worker is found and recorded as a :class:`FailedRun`.
    """
    notify = on_done or (lambda task, outcome: None)
    if workers <= 1 or len(tasks) <= 1:
        outcomes = []
        with threadpool_limits(limits=SEARCH_BLAS_THREADS, user_api="blas"):
            for task in tasks:
                outcomes.append(task.run(problem))
                notify(task, outcomes[-1])
        return outcomes
    arrays = [
        np.ascontiguousarray(problem.rows, dtype=np.float64),
        np.ascontiguousarray(problem.nonconstant, dtype=np.float64),
    ]
    if problem.guide is not None:
        arrays.append(np.ascontiguousarray(problem.guide.order))
        if problem.guide.siblings is not None:
            arrays.append(np.ascontiguousarray(problem.guide.siblings))
    results: dict[int, Outcome] = {}
    # Every array goes through shared memory, so what a task carries stays a few hundred bytes
    # (and what a worker is started with, its parent's pid: a payload over a pipe's 64 KiB, written
    # while the worker died at start, would block the parent for ever).
    with contextlib.ExitStack() as stack:
        memories = [stack.enter_context(_shared(array)) for array in arrays]
        attachment = Attachment(
            tuple((m.name, a.shape, a.dtype.str) for m, a in zip(memories, arrays, strict=True)),
            problem.objective,
            problem.size,
            problem.threads,
            None if problem.guide is None else problem.guide.share,
        )
        breaks = 0
        while len(results) < len(tasks):
            pending = [i for i in range(len(tasks)) if i not in results]
            groups = [[i] for i in pending] if breaks >= ISOLATE_AFTER_BREAKS else [pending]
            for group in groups:
                count = min(workers, len(group))
                shared = pool if pool is not None and breaks == 0 and pool.workers == workers else None
                finished = _run_pool(tasks, group, count, attachment, results, notify, shared)
                if not finished and len(group) == 1:  # alone in its pool and it still broke it
                    task = tasks[group[0]]
                    results[group[0]] = FailedRun(
                        task.algorithm.name, task.size, "worker process died (killed or out of memory)", 0.0
                    )
                    notify(task, results[group[0]])
                breaks += not finished
    return [results[i] for i in range(len(tasks))]


ISOLATE_AFTER_BREAKS = 2


def _run_pool(
    tasks: list[Task],
    indices: list[int],
    workers: int,
    attachment: Attachment,
    results: dict[int, Outcome],
    notify: Callable[[Task, Outcome], None],
    shared: WorkerPool | None = None,
) -> bool:
    """Run ``tasks[indices]`` on ``shared`` (the job's pool), or on a fresh pool of ``workers``
    shut down after; fill ``results``; False if the pool broke (a broken ``shared`` is discarded)."""
    if shared is None:
        own = WorkerPool(workers)
        try:
            return _run_pool(tasks, indices, workers, attachment, results, notify, own)
        finally:
            own.close()
    try:
        futures: dict[Future[Outcome], int] = {
            shared.start().submit(_run_in_worker, attachment, tasks[i]): i for i in indices
        }
    except Exception as exc:  # noqa: BLE001 - workers dying while the pool still starts others break
        # it in several ways (BrokenProcessPool, a closed handle, a bad fd): all a broken pool.
        log.warning("the worker pool broke while starting (%s: %s)", type(exc).__name__, exc)
        shared.discard()
        return False
    for future in as_completed(futures):
        index = futures[future]
        try:
            results[index] = future.result()
        except BrokenProcessPool:
            shared.discard()
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled: that task fails
            results[index] = FailedRun(
                tasks[index].algorithm.name, tasks[index].size, f"{type(exc).__name__}: {exc}", 0.0
            )
        notify(tasks[index], results[index])
    return True
