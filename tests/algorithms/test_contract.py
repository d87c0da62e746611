"""One contract every registered algorithm must meet (brief §3.4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from algorithms import REGISTRY, FailedRun, RunResult, run_algorithm
from algorithms.correlation import unit_columns
from algorithms.fitness import Objective
from algorithms.problem import Evaluator, Problem
from algorithms.random_search import RandomSearch
from tests.algorithms.planted import optimality_margin, planted_problem

BUDGET = 3000
FLAGS = sorted(REGISTRY)


def run(flag: str, seed: int, budget: int = BUDGET) -> RunResult:
    problem, _, _ = planted_problem()
    result = run_algorithm(REGISTRY[flag](), problem, budget, np.random.default_rng(seed))
    assert isinstance(result, RunResult), result
    return result


@pytest.mark.parametrize("flag", FLAGS)
def test_portfolio_has_n_distinct_members(flag: str) -> None:
    result = run(flag, 1)
    assert len(result.portfolio) == len(set(result.portfolio)) == 8
    assert all(0 <= i < 400 for i in result.portfolio)


@pytest.mark.parametrize("flag", FLAGS)
def test_reported_fitness_equals_reevaluation(flag: str) -> None:
    problem, _, _ = planted_problem()
    result = run(flag, 2)
    assert problem.evaluate(np.array([result.portfolio]))[0] == result.fitness


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("budget", [1, 137, BUDGET])
def test_budget_is_never_exceeded(flag: str, budget: int) -> None:
    result = run(flag, 3, budget)
    assert result.evaluations == budget
    assert result.trace[-1][0] == budget
    assert [e for e, _ in result.trace] == sorted(e for e, _ in result.trace)


@pytest.mark.parametrize("flag", FLAGS)
def test_same_seed_same_result_and_different_seeds_differ(flag: str) -> None:
    a, b, c = run(flag, 4), run(flag, 4), run(flag, 5, budget=200)
    assert (a.portfolio, a.fitness, a.trace) == (b.portfolio, b.fitness, b.trace)
    d = run(flag, 6, budget=200)
    assert (c.portfolio, c.trace) != (d.portfolio, d.trace)


SUBPROCESS = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
from algorithms import REGISTRY, run_algorithm
from tests.algorithms.planted import optimality_margin, planted_problem
problem, _, _ = planted_problem()
r = run_algorithm(REGISTRY[{flag!r}](), problem, {budget}, np.random.default_rng(4))
print(json.dumps({{"portfolio": list(r.portfolio), "fitness": r.fitness.hex()}}))
"""


@pytest.mark.parametrize("flag", FLAGS)
def test_same_seed_same_result_in_a_fresh_process(flag: str) -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = SUBPROCESS.format(root=root, flag=flag, budget=BUDGET)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    there = json.loads(out.stdout)
    here = run(flag, 4)
    assert there == {"portfolio": list(here.portfolio), "fitness": here.fitness.hex()}


def test_the_planted_optimum_is_proven() -> None:
    _, planted, pnl = planted_problem()
    assert optimality_margin(pnl, planted) > 0


@pytest.mark.parametrize("flag", [f for f in FLAGS if f != "use_random_search"])
def test_reaches_the_planted_optimum_and_beats_random_search(flag: str) -> None:
    problem, planted, _ = planted_problem()
    optimum = problem.evaluate(planted[None, :])[0]
    for seed in range(3):
        found = run(flag, seed, budget=10_000)
        baseline = run("use_random_search", seed, budget=10_000)
        assert found.fitness <= optimum
        assert found.fitness >= 0.95 * optimum, f"seed {seed}: {found.fitness / optimum:.3f} of the optimum"
        assert found.fitness > baseline.fitness


class Exploding:
    name = "exploding"

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        evaluator.evaluate(np.zeros((1, evaluator.problem.size), dtype=np.int64) + np.arange(evaluator.problem.size))
        raise ZeroDivisionError("boom")


class Greedy:
    name = "greedy"

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        evaluator.evaluate(np.tile(np.arange(evaluator.problem.size), (evaluator.remaining + 1, 1)))


def test_a_failing_algorithm_becomes_a_failed_run() -> None:
    problem, _, _ = planted_problem()
    result = run_algorithm(Exploding(), problem, 100, np.random.default_rng(0))
    assert isinstance(result, FailedRun)
    assert "ZeroDivisionError: boom" in result.error
    assert result.evaluations == 1


def test_asking_beyond_the_budget_fails_that_algorithm() -> None:
    problem, _, _ = planted_problem()
    result = run_algorithm(Greedy(), problem, 100, np.random.default_rng(0))
    assert isinstance(result, FailedRun)
    assert "BudgetExceeded" in result.error


def test_time_limit_stops_a_search_after_its_first_batch() -> None:
    problem, _, _ = planted_problem()
    result = run_algorithm(RandomSearch(batch=10), problem, 1_000_000, np.random.default_rng(0), time_limit_s=0.0)
    assert isinstance(result, RunResult)
    assert result.timed_out
    assert result.evaluations == 10


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("size", [5, 6])
def test_terminates_when_the_universe_has_few_portfolios(flag: str, size: int) -> None:
    """6 strategies: 6 portfolios of 5, one of 6. Nothing may loop looking for new ones."""
    pnl = np.random.default_rng(0).normal(0, 100, (20, 6))
    units, nonconstant = unit_columns(np, pnl)
    problem = Problem.from_pnl(pnl, units, nonconstant, size, Objective())
    result = run_algorithm(REGISTRY[flag](), problem, 1_000, np.random.default_rng(1))
    assert isinstance(result, RunResult), result
    assert len(set(result.portfolio)) == size and result.evaluations <= 1_000


def test_particle_swarm_at_its_widest_velocity_bound_stays_finite_and_distinct() -> None:
    """``max_velocity`` has no upper bound: log sigmoid must not overflow (warnings are errors here)."""
    from algorithms.particle_swarm import ParticleSwarm

    problem, _, _ = planted_problem()
    result = run_algorithm(
        ParticleSwarm(max_velocity=5000.0, cognitive=900.0, social=900.0), problem, 2000, np.random.default_rng(3)
    )
    assert isinstance(result, RunResult), result
    assert len(set(result.portfolio)) == problem.size and np.isfinite(result.fitness)
