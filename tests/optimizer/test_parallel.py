"""The process pool: same results as one process, and a dying worker costs only its own task."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import pytest

from algorithms import FailedRun, RunResult
from algorithms.hill_climbing import HillClimbing
from algorithms.random_search import RandomSearch
from optimizer import parallel
from optimizer.parallel import Task, WorkerPool, run_tasks
from tests.algorithms.planted import planted_problem
from tests.optimizer.crashing import KillsItsWorker

ROOT = Path(__file__).resolve().parents[2]


def task(algorithm: object, key: int) -> Task:
    return Task(size=8, algorithm=algorithm, budget=300, job_seed=5, spawn_key=(8, key), time_limit_s=None)


def test_a_worker_that_dies_fails_only_its_task(tmp_path: Path) -> None:
    problem, _, _ = planted_problem()
    tasks = [task(RandomSearch(), 0), task(KillsItsWorker(), 1), task(HillClimbing(), 2), task(RandomSearch(), 3)]
    pooled = run_tasks(problem, tasks, workers=2)
    assert isinstance(pooled[1], FailedRun) and "worker process died" in pooled[1].error
    here = run_tasks(problem, [tasks[0], tasks[2], tasks[3]], workers=1)
    for got, expected in zip([pooled[0], pooled[2], pooled[3]], here, strict=True):
        assert isinstance(got, RunResult) and isinstance(expected, RunResult)
        assert (got.portfolio, got.fitness, got.evaluations) == (
            expected.portfolio,
            expected.fitness,
            expected.evaluations,
        )


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the shared-memory blocks the pool's parent creates, in order."""
    names: list[str] = []

    class Recorded(SharedMemory):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            names.append(self.name)

    monkeypatch.setattr(parallel, "SharedMemory", Recorded)
    return names


def test_shared_memory_is_released(created: list[str]) -> None:
    problem, _, _ = planted_problem()
    outcomes = run_tasks(problem, [task(RandomSearch(), 0), task(HillClimbing(), 1)], workers=2)
    assert all(isinstance(o, RunResult) for o in outcomes)  # the workers read the problem from the blocks
    assert len(created) == 2  # the rows and the flags
    for name in created:  # both unlinked: neither can be opened again
        with pytest.raises(FileNotFoundError):
            SharedMemory(name=name)


def test_a_guided_search_on_the_pool_is_the_one_run_here() -> None:
    """The guide reaches the workers through shared memory, whole: same results as in-process."""
    problem = planted_problem()[0].guided()
    tasks = [task(RandomSearch(), 0), task(HillClimbing(), 1)]
    pooled, here = run_tasks(problem, tasks, workers=2), run_tasks(problem, tasks, workers=1)
    for got, expected in zip(pooled, here, strict=True):
        assert isinstance(got, RunResult) and isinstance(expected, RunResult)
        assert (got.portfolio, got.fitness) == (expected.portfolio, expected.fitness)


def same(got: list[object], expected: list[object]) -> bool:
    return all(
        isinstance(g, RunResult) and isinstance(e, RunResult) and (g.portfolio, g.fitness) == (e.portfolio, e.fitness)
        for g, e in zip(got, expected, strict=True)
    )


def test_a_jobs_pool_runs_every_search_on_the_workers_it_started_with(created: list[str]) -> None:
    """Started once, before the first search: each search (another problem, as a walk-forward fold
    or a zone) runs on the same processes, which attach to its arrays; its blocks are unlinked after it."""
    first, second = planted_problem(seed=1)[0], planted_problem(strategies=300, seed=2)[0].guided()
    tasks = [task(RandomSearch(), 0), task(HillClimbing(), 1), task(RandomSearch(), 2)]
    pool = WorkerPool(2)
    try:
        pool.start()
        started = {p.pid for p in multiprocessing.active_children()}
        outcomes = [run_tasks(problem, tasks, workers=2, pool=pool) for problem in (first, second, first)]
        assert {p.pid for p in multiprocessing.active_children()} == started and len(started) == 2
    finally:
        pool.close()
    assert multiprocessing.active_children() == []
    for got, problem in zip(outcomes, (first, second, first), strict=True):
        assert same(got, run_tasks(problem, tasks, workers=1))
    assert len(created) == 2 + 4 + 2  # rows and flags; the guided search adds the guide's order and siblings
    for name in created:
        with pytest.raises(FileNotFoundError):
            SharedMemory(name=name)


def test_a_jobs_pool_broken_by_a_dying_worker_is_replaced_for_the_next_search() -> None:
    problem = planted_problem()[0]
    pool = WorkerPool(2)
    try:
        pool.start()
        broken = run_tasks(problem, [task(RandomSearch(), 0), task(KillsItsWorker(), 1)], workers=2, pool=pool)
        after = run_tasks(problem, [task(RandomSearch(), 0), task(HillClimbing(), 2)], workers=2, pool=pool)
    finally:
        pool.close()
    assert isinstance(broken[1], FailedRun) and "worker process died" in broken[1].error
    assert same([broken[0]], [after[0]])
    assert same(after, run_tasks(problem, [task(RandomSearch(), 0), task(HillClimbing(), 2)], workers=1))


DIES_AT_START = """
import multiprocessing
from multiprocessing import resource_tracker
from algorithms.hill_climbing import HillClimbing
from algorithms.random_search import RandomSearch
from optimizer.parallel import Task, WorkerPool, run_tasks
from tests.algorithms.planted import planted_problem

resource_tracker.ensure_running()  # started as usual; then every worker exits at once
multiprocessing.get_context("spawn").set_executable("/bin/false")
problem = planted_problem(strategies=20_000)[0].guided()  # the guide's order alone is 160 KB
tasks = [Task(8, a, 300, 5, (8, k), None) for k, a in enumerate([RandomSearch(), HillClimbing()])]
outcomes = run_tasks(problem, tasks, workers=2)
print([type(o).__name__ for o in outcomes], outcomes[0].error)
"""


def test_workers_that_die_at_start_fail_their_tasks_and_never_hang_the_job() -> None:
    """A worker that dies before reading what it was started with (killed, a broken install):
    the parent must not block writing to it (a payload larger than a pipe holds used to)."""
    done = subprocess.run([sys.executable, "-c", DIES_AT_START], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("['FailedRun', 'FailedRun'] worker process died"), done.stdout
