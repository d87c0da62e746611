"""Where the arrays live: NumPy on the host, or CuPy on an NVIDIA GPU, with a safe fallback.

``COMPUTE.backend``: ``numpy``; ``cupy``; ``auto`` (CuPy when it imports and a device
answers, else NumPy). Before a job's search the GPU memory it needs is estimated and
compared with what is free and with ``COMPUTE.gpu_memory_limit_mb``; CuPy's memory pool is
capped at that limit. Any GPU problem — no CuPy, no device, not enough memory, an error or
out-of-memory during the run — gives NumPy with the reason logged and written to
``execution_summary.json`` (``fallbacks.compute``). Random draws are made on the host in
either case, so CPU and GPU runs evaluate the same candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.base import raised_by_gpu
from algorithms.problem import GPU_CHUNK_ROWS
from optimizer.cluster import Executor
from optimizer.config import Config

log = logging.getLogger("heavyopt")

MB = 1 << 20


@dataclass(frozen=True)
class ComputeChoice:
    xp: Any  # numpy or cupy
    name: str  # "numpy" | "cupy"
    device: str | None = None  # e.g. "NVIDIA H100 80GB HBM3 (device 0)"
    fallback: str | None = None  # why CuPy was not used, when it was asked for or could have been

    @property
    def on_gpu(self) -> bool:
        return self.name == "cupy"


def estimate_gpu_bytes(n_strategies: int, n_days: int, max_size: int) -> int:
    """Device memory one job's search needs: the (S, 2T) rows plus one batch's working set."""
    rows = n_strategies * 2 * n_days * 8
    # Per portfolio: membership CSR (8 + 4 bytes per member), the (2T,) sums, ~6 (T,) temporaries.
    per_portfolio = max_size * 12 + 2 * n_days * 8 + 6 * n_days * 8
    return int(rows + GPU_CHUNK_ROWS * per_portfolio + 64 * MB)  # + CUDA context, cuBLAS/cuSPARSE handles


def choose(config: Config, n_strategies: int, n_days: int, max_size: int) -> ComputeChoice:
    """The array module for a job of this shape (see the module docstring)."""
    wanted = config.compute.backend
    if wanted == "numpy":
        return ComputeChoice(np, "numpy")
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            raise RuntimeError("no CUDA device")
        device = cupy.cuda.Device(0)
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        if int(cupy.arange(4, dtype=cupy.float64).sum().item()) != 6:  # the device computes
            raise RuntimeError("a test kernel gave a wrong answer")
        free, total = device.mem_info
    except Exception as exc:  # noqa: BLE001 - any GPU problem means NumPy
        reason = f"CuPy unavailable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        if wanted == "cupy":
            log.warning("COMPUTE.backend = cupy: %s; computing on NumPy", reason)
        return ComputeChoice(np, "numpy", fallback=reason if wanted == "cupy" else None)
    need = estimate_gpu_bytes(n_strategies, n_days, max_size)
    limit_mb = config.compute.gpu_memory_limit_mb
    cap = int(limit_mb * MB) if limit_mb else int(free * 0.9)
    if need > min(cap, free):
        reason = (
            f"the search needs about {need / MB:,.0f} MB of GPU memory; {free / MB:,.0f} MB free of "
            f"{total / MB:,.0f} MB, COMPUTE.gpu_memory_limit_mb = {limit_mb:g}"
        )
        log.warning("%s; computing on NumPy", reason)
        return ComputeChoice(np, "numpy", fallback=reason)
    cupy.get_default_memory_pool().set_limit(size=cap)
    label = f"{name} (device 0, {total / MB:,.0f} MB)"
    log.info(
        "computing on %s; about %s MB needed, pool capped at %s MB", label, f"{need / MB:,.0f}", f"{cap / MB:,.0f}"
    )
    return ComputeChoice(cupy, "cupy", device=label)


def to_host(array: Any) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array)


def release(choice: ComputeChoice) -> None:
    """Give the job's GPU memory back to the device."""
    if not choice.on_gpu:
        return
    try:
        choice.xp.get_default_memory_pool().free_all_blocks()
        choice.xp.get_default_pinned_memory_pool().free_all_blocks()
    except Exception as exc:  # noqa: BLE001 - a device in an error state; the job's own outcome matters more
        log.warning("could not free the GPU memory (%s: %s)", type(exc).__name__, exc)


class JobCompute:
    """The job's array module, switched to NumPy for good after a GPU failure, and where its
    search tasks run (:class:`~optimizer.cluster.Executor`; local processes unless given)."""

    def __init__(self, choice: ComputeChoice, executor: Executor | None = None) -> None:
        self.choice = choice
        self.fallback = choice.fallback
        self.executor = executor or Executor("processes", 0)

    def to_numpy(self, reason: str) -> None:
        log.warning("GPU failed (%s); repeating the search on NumPy", reason)
        release(self.choice)
        self.choice = ComputeChoice(np, "numpy")
        self.fallback = f"GPU failed during the search, repeated on NumPy: {reason}"


class GpuFailed(Exception):
    """A GPU error inside an algorithm (recorded by the algorithm driver as a failed run)."""


def on_gpu_or_host(compute: JobCompute, work: Callable[[Any], Any]) -> Any:
    """``work(xp)`` on the job's array module; after any GPU error, again on NumPy."""
    if not compute.choice.on_gpu:
        return work(np)
    try:
        return work(compute.choice.xp)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, GpuFailed) else f"{type(exc).__name__}: {exc}"
        if not (isinstance(exc, GpuFailed) or raised_by_gpu(exc)):
            raise  # a fault of ours, not the device's: repeating it on NumPy would hide it
        compute.to_numpy(reason.splitlines()[0] if reason else type(exc).__name__)
        return work(np)
