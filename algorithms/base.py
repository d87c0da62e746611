"""The algorithm protocol, its results, and the one driver that runs any algorithm."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from algorithms.problem import Evaluator, Problem


class Algorithm(Protocol):
    """A search method. The instance holds only its own frozen parameters.

    ``search`` spends the evaluator's budget; it must stop when ``evaluator.remaining`` is 0
    and draw all randomness from ``rng``. The evaluator remembers the best portfolio.
    """

    name: ClassVar[str]

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None: ...


@dataclass(frozen=True)
class RunResult:
    """Best portfolio one algorithm found for one size.

    ``trace`` holds (evaluations used, best fitness so far) at each improvement.
    """

    algorithm: str
    size: int
    portfolio: tuple[int, ...]
    fitness: float
    evaluations: int
    seconds: float
    trace: tuple[tuple[int, float], ...]
    timed_out: bool = False
    archive: tuple[tuple[int, ...], ...] = ()  # distinct good portfolios seen, fittest first (see Archive)
    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class FailedRun:
    """An algorithm that raised: recorded in the report, the job goes on. ``on_gpu``: the
    exception came from the GPU stack (see :func:`raised_by_gpu`)."""

    algorithm: str
    size: int
    error: str
    seconds: float
    evaluations: int = 0
    on_gpu: bool = False
    ok: ClassVar[bool] = False


GPU_MODULES = ("cupy", "cupyx", "cupy_backends")


def raised_by_gpu(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the GPU stack: an exception class of CuPy or its CUDA bindings
    (out of memory, a CUDA runtime error, a kernel that would not compile), or one of CuPy's
    modules failing to import. Decided by the exception's type, never by its message."""
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in GPU_MODULES:
        return True
    return type(exc).__module__.split(".")[0] in GPU_MODULES


def run_algorithm(
    algorithm: Algorithm,
    problem: Problem,
    budget: int,
    rng: np.random.Generator,
    time_limit_s: float | None = None,
    archive_size: int = 0,
) -> RunResult | FailedRun:
    """Run one algorithm on one problem with its own budget and generator.

    ``archive_size`` > 1 keeps that many distinct good portfolios besides the best (for
    validation). Any exception inside the algorithm becomes a :class:`FailedRun` (one of the
    two places where broad exceptions are caught; the other is per job).
    """
    evaluator = Evaluator(problem, budget, time_limit_s, archive_size)
    started = time.perf_counter()
    try:
        algorithm.search(evaluator, rng)
        if evaluator.best is None:
            raise RuntimeError("finished without evaluating any portfolio")
    except Exception as exc:  # noqa: BLE001 - the per-algorithm boundary
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}" if last else ""
        return FailedRun(
            algorithm.name,
            problem.size,
            f"{type(exc).__name__}: {exc}{where}",
            time.perf_counter() - started,
            evaluator.used,
            raised_by_gpu(exc),
        )
    seconds = time.perf_counter() - started
    trace = [*evaluator.trace, (evaluator.used, evaluator.best_fitness)]
    return RunResult(
        algorithm=algorithm.name,
        size=problem.size,
        portfolio=tuple(int(i) for i in evaluator.best),
        fitness=evaluator.best_fitness,
        evaluations=evaluator.used,
        seconds=seconds,
        trace=tuple(trace),
        timed_out=evaluator.timed_out,
        archive=evaluator.archive.portfolios(),
    )
