"""Where a job's search tasks run: this machine's processes, or a Ray cluster (``COMPUTE.executor``).

With ``ray`` every (size × algorithm) task of a search is one Ray task. The search's arrays go
into the cluster's object store once per search (a job's main search, each walk-forward fold,
each zone) and every task on a node reads the node's one copy; a task carries only its own
:class:`~optimizer.parallel.Task` (algorithm, size, budget, seed). Each task's random stream
comes from its spawn key, so the results equal the process pool's, whichever node runs a task
and in whatever order. A worker that dies mid-task (killed, out of memory, its node lost) is
retried by Ray (``RAY_TASK_RETRIES``) with the same seed; a task that kills every worker it
lands on fails alone, as on the pool.

``COMPUTE.ray_address``: ``auto`` joins the cluster this machine belongs to (``ray start`` ran
here, or ``RAY_ADDRESS``); ``local`` starts a private Ray instance for the job; anything else is
a cluster's ``host:port`` (or ``ray://host:port``), probed first within
``COMPUTE.ray_connect_timeout_s`` (``auto`` relies on Ray's own retries, about 20 s). A job's
process joins as a Ray driver, which must run on a node of the cluster (it talks to its node's
raylet and object store through the node's temp folder). A cluster that cannot be reached, or Ray not
installed, runs the search on local processes with the reason in the job's ``fallbacks``,
unless ``COMPUTE.fallback = false``, when the job fails (:class:`BackendUnavailable`) with it.

Ray is imported only when ``executor = ray`` (the ``[distributed]`` extra installs it).
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from algorithms import FailedRun
from algorithms.base import raised_by_gpu
from algorithms.fitness import Objective
from algorithms.guide import Guide
from algorithms.problem import Problem
from errors import BackendUnavailable
from optimizer.config import Config
from optimizer.parallel import SEARCH_BLAS_THREADS, Outcome, Task, WorkerPool, run_tasks

log = logging.getLogger("heavyopt")

INSTALL_HINT = "pip install 'heavy-optimizer[distributed]' (or pip install ray)"
RAY_TASK_RETRIES = 3  # times Ray reruns a task whose worker died, before the task counts as failed
WORKER_DIED = "worker process died (killed or out of memory)"


@dataclass(frozen=True)
class _Shared:
    """What every task of one search needs besides the arrays: shipped once, with them."""

    objective: Objective
    guide: Guide | None
    backend: str  # "numpy" | "cupy": the array module the tasks compute on


def _run_on_node(rows: np.ndarray, flags: np.ndarray, shared: _Shared, task: Task) -> tuple[Outcome, str]:
    """One task on a Ray worker: ``rows`` and ``flags`` are the node's object-store copies (read-only)."""
    import ray

    # One thread per task: a task holds one CPU of its node (the driver's thread count is its own machine's).
    problem = Problem(rows, flags, task.size, shared.objective, np, threads=1, guide=shared.guide)
    if shared.backend == "cupy":
        import cupy

        problem = problem.on(cupy)
    with threadpool_limits(limits=SEARCH_BLAS_THREADS, user_api="blas"):
        outcome = task.run(problem)
    return outcome, str(ray.get_runtime_context().get_node_id())


def task_options(on_gpu: bool) -> dict[str, Any]:
    """Ray resources of one task: a CPU, and a whole GPU when the job computes on CuPy (a task's
    batches fill a device; Ray then places tasks only on nodes with a free GPU). Ray's memory
    monitor retries a task it kills under its own count (``RAY_task_oom_retries``, set to 3 in
    ``heavyopt-ray.service``), not ``max_retries``."""
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": RAY_TASK_RETRIES, "retry_exceptions": False}
    if on_gpu:  # a fresh worker per GPU task, so no worker keeps a finished task's CuPy memory pool
        return options | {"num_gpus": 1, "max_calls": 1}
    return options | {"num_gpus": 0}


class Executor:
    """The job's executor: :meth:`run` a search's tasks, :meth:`close` at the end of the job.

    On processes it holds the job's :class:`~optimizer.parallel.WorkerPool` (with more than one
    worker): :meth:`start` spawns it once the job has its file (not for a search on a GPU), every
    search runs on it, and :meth:`submit` hands it other work (an output file) once they are done.
    """

    def __init__(self, kind: str, workers: int, address: str | None = None, fallback: str | None = None) -> None:
        self.kind = kind  # "processes" | "ray"
        self.workers = workers  # processes, when kind is "processes"
        self.address = address  # the cluster joined, when kind is "ray"
        self.fallback = fallback  # why the job asked for Ray and runs on processes
        self.tasks_per_node: Counter[str] = Counter()
        self.pool = WorkerPool(workers) if kind == "processes" and workers > 1 else None

    def start(self) -> None:
        """Spawn the job's worker processes now (they import while the job stores its rows)."""
        if self.pool is not None:
            self.pool.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """``fn(*args)`` on one of the job's worker processes; None unless they are running (run it here)."""
        return self.pool.submit(fn, *args) if self.pool is not None and self.pool.running else None

    def run(
        self,
        problem: Problem,
        tasks: list[Task],
        on_done: Callable[[Task, Outcome], None],
        workers: int | None = None,
    ) -> list[Outcome]:
        """Outcomes of ``tasks`` in task order; ``on_done`` as each finishes. ``workers`` overrides
        the process count (1: in this process, as the GPU path does); Ray ignores it."""
        if self.kind == "ray":
            return self._run_on_ray(problem, tasks, on_done)
        return run_tasks(problem, tasks, workers if workers is not None else self.workers, on_done, self.pool)

    def _run_on_ray(
        self, problem: Problem, tasks: list[Task], on_done: Callable[[Task, Outcome], None]
    ) -> list[Outcome]:
        import ray

        on_gpu = problem.xp is not np
        if on_gpu and ray.cluster_resources().get("GPU", 0) < 1:
            # Tasks asking for a GPU would wait for ever; failed GPU runs make the job repeat on NumPy.
            why = "the Ray cluster has no GPU for COMPUTE.backend = cupy"
            outcomes: list[Outcome] = [FailedRun(t.algorithm.name, t.size, why, 0.0, on_gpu=True) for t in tasks]
            for task, outcome in zip(tasks, outcomes, strict=True):
                on_done(task, outcome)
            return outcomes
        rows = np.ascontiguousarray(_host(problem.rows), dtype=np.float64)
        flags = np.ascontiguousarray(_host(problem.nonconstant), dtype=np.float64)
        shared = _Shared(problem.objective, problem.guide, "cupy" if on_gpu else "numpy")
        rows_ref, flags_ref, shared_ref = ray.put(rows), ray.put(flags), ray.put(shared)
        remote = ray.remote(_run_on_node).options(**task_options(on_gpu))
        index = {remote.remote(rows_ref, flags_ref, shared_ref, task): i for i, task in enumerate(tasks)}
        results: dict[int, Outcome] = {}
        pending = list(index)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                results[i] = self._collect(ray, ref, tasks[i])
                on_done(tasks[i], results[i])
        return [results[i] for i in range(len(tasks))]

    def _collect(self, ray: Any, ref: Any, task: Task) -> Outcome:
        try:
            outcome, node = ray.get(ref)
        except ray.exceptions.WorkerCrashedError:
            return FailedRun(task.algorithm.name, task.size, f"{WORKER_DIED}, {RAY_TASK_RETRIES + 1} times", 0.0)
        except ray.exceptions.RayError as exc:  # raised in the task outside the algorithm, or not picklable
            cause = getattr(exc, "cause", None) or exc  # a RayTaskError's first line is Ray's, in colour
            first = str(cause).strip().splitlines()
            error = f"{type(cause).__name__}: {first[0] if first else ''}"
            return FailedRun(task.algorithm.name, task.size, error, 0.0, on_gpu=raised_by_gpu(cause))
        self.tasks_per_node[node] += 1
        return outcome

    def summary(self) -> dict[str, Any]:
        """For ``execution_summary.json``'s ``compute``: the executor, and on Ray the tasks each node ran."""
        if self.kind != "ray":
            return {"executor": "processes"}
        return {"executor": "ray", "ray_address": self.address, "ray_tasks_per_node": dict(self.tasks_per_node)}

    def close(self) -> None:
        """Stop the job's worker processes; leave the cluster (stopping the job's own instance when
        ``ray_address = local``)."""
        if self.pool is not None:
            self.pool.close()
        if self.kind != "ray":
            return
        try:
            import ray

            ray.shutdown()
        except Exception as exc:  # noqa: BLE001 - the job's results are in; leaving the cluster untidily is not a failure
            log.warning("leaving the Ray cluster failed (%s: %s)", type(exc).__name__, exc)


def _host(array: Any) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array)


def open_executor(config: Config, workers: int) -> Executor:
    """The executor ``COMPUTE.executor`` asks for; Ray joined here, or local processes and why.

    Raises
    ------
    BackendUnavailable
        Ray asked for, unavailable, and ``COMPUTE.fallback = false``.
    """
    compute = config.compute
    if compute.executor != "ray":
        return Executor("processes", workers)
    address = compute.ray_address.strip() or "auto"
    try:
        joined = _join_ray(address, workers, compute.ray_connect_timeout_s)
    except _Unavailable as exc:
        reason = str(exc)
        if not compute.fallback:
            raise BackendUnavailable(
                f"COMPUTE.executor = ray: {reason}; COMPUTE.fallback = false, so the job stops "
                "(start the cluster, or set COMPUTE.fallback = true to search on this machine)"
            ) from exc
        log.warning("COMPUTE.executor = ray: %s; searching on %d local processes", reason, workers)
        return Executor("processes", workers, fallback=f"{reason}; searched on {workers} local processes instead")
    log.info("searching on the Ray cluster at %s", joined)
    return Executor("ray", workers, address=joined)


class _Unavailable(Exception):
    """Ray cannot be used for this job (the message says why)."""


def _join_ray(address: str, workers: int, timeout_s: float) -> str:
    """Connect this process to Ray as a driver; returns the address joined."""
    try:
        import ray
    except ImportError as exc:
        raise _Unavailable(f"Ray is not installed ({exc}); install it with {INSTALL_HINT}") from exc
    if ray.is_initialized():  # a job before this one in the same process left it connected
        ray.shutdown()
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address == "local":  # a new instance, even where RAY_ADDRESS or a node on this machine says otherwise
        options |= {"num_cpus": workers, "include_dashboard": False}
    elif address != "auto":
        _probe(address, timeout_s)
    try:
        context = ray.init(address=address, **options)
    except Exception as exc:  # any failure to join (refused, authentication, no node here) falls back
        with suppress(Exception):
            ray.shutdown()  # a half-made connection
        first = str(exc).strip().splitlines()
        where = "a new local Ray instance" if address == "local" else f"the Ray cluster at {address}"
        raise _Unavailable(f"could not join {where} ({type(exc).__name__}: {first[0] if first else ''})") from exc
    return str(getattr(context, "address_info", {}).get("gcs_address") or address)


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast (within ``timeout_s``) when nothing answers at ``address`` (``[ray://]host:port``);
    Ray's own connect retries for about 35 s before it gives up."""
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise _Unavailable(f"COMPUTE.ray_address = {address!r} is not auto, local or host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise _Unavailable(
            f"the Ray cluster at {address} is unreachable ({exc.strerror or type(exc).__name__} within {timeout_s:g} s)"
        ) from exc
