"""Run a job's (size × algorithm) tasks, in this process or on a pool of worker processes.

The pool's workers attach to the problem's read-only arrays in shared memory (one copy,
33.5 MB at production width) instead of receiving a copy with every task. Workers are
started with ``spawn``: forking a process that holds DuckDB and BLAS threads is unsafe.
Each task carries its own seed (spawn key), so a result does not depend on which worker
ran it or in which order: the pool and the in-process runner give identical results.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
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


_worker_problem: Problem | None = None
_worker_memory: list[SharedMemory] = []
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


def _attach(
    parent: int,
    blocks: tuple[tuple[str, tuple[int, ...], str], ...],
    objective: Objective,
    size: int,
    threads: int,
    guide_share: float | None,
) -> None:
    """Worker initialiser: die with the job's process, map the shared arrays, build the worker's problem.

    ``blocks``: (name, shape, dtype) of the rows, the flags and, for a guided search, the
    guide's order and (where it has them) siblings. Spawned workers share the parent's resource tracker, so the parent's
    registration stands: the blocks are unlinked by the parent, or by the tracker if the parent dies.
    """
    global _worker_problem
    die_with_parent(parent)
    _worker_limits.append(threadpool_limits(limits=SEARCH_BLAS_THREADS, user_api="blas"))
    arrays = []
    for name, shape, dtype in blocks:
        memory = SharedMemory(name=name)
        _worker_memory.append(memory)
        arrays.append(np.ndarray(shape, dtype=dtype, buffer=memory.buf))
    guide = None if guide_share is None else Guide(arrays[2], guide_share, arrays[3] if len(arrays) > 3 else None)
    _worker_problem = Problem(arrays[0], arrays[1], size, objective, np, threads=threads, guide=guide)


def _run_in_worker(task: Task) -> Outcome:
    if _worker_problem is None:
        raise RuntimeError("worker has no problem attached")
    return task.run(_worker_problem)


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
    problem: Problem, tasks: list[Task], workers: int, on_done: Callable[[Task, Outcome], None] | None = None
) -> list[Outcome]:
    """Outcomes of ``tasks``, in task order.

    ``workers`` ≤ 1 runs them here, one after another; more runs them on that many processes.
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
    # Every array goes through shared memory, so what a worker is started with stays a few
    # hundred bytes: the parent writes it into a pipe while still holding the pipe's other end,
    # and a payload over the pipe's 64 KiB would block it for ever if the worker died at start.
    with contextlib.ExitStack() as stack:
        memories = [stack.enter_context(_shared(array)) for array in arrays]
        initargs = (
            os.getpid(),
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
                finished = _run_pool(tasks, group, min(workers, len(group)), initargs, results, notify)
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
    initargs: tuple[Any, ...],
    results: dict[int, Outcome],
    notify: Callable[[Task, Outcome], None],
) -> bool:
    """Run ``tasks[indices]`` on a fresh pool, filling ``results``; False if the pool broke."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, context, initializer=_attach, initargs=initargs)
    try:
        try:
            futures: dict[Future[Outcome], int] = {pool.submit(_run_in_worker, tasks[i]): i for i in indices}
        except Exception as exc:  # noqa: BLE001 - workers dying while the pool still starts others break
            # it in several ways (BrokenProcessPool, a closed handle, a bad fd): all a broken pool.
            log.warning("the worker pool broke while starting (%s: %s)", type(exc).__name__, exc)
            return False
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except BrokenProcessPool:
                return False
            except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled: that task fails
                results[index] = FailedRun(
                    tasks[index].algorithm.name, tasks[index].size, f"{type(exc).__name__}: {exc}", 0.0
                )
            notify(tasks[index], results[index])
        return True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
