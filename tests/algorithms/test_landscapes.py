"""Planted landscapes where a blind search fails (issue #14): the guided searches must find the
planted portfolio, and every algorithm must beat random search (the blind baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import REGISTRY, run_algorithm
from algorithms.problem import Problem
from optimizer.landscapes import families, plateau

BUDGET = 10_000


def _fitness(problem: Problem, seed: int) -> dict[str, float]:
    out = {}
    for cls in REGISTRY.values():
        result = run_algorithm(cls(), problem, BUDGET, np.random.default_rng(seed))
        assert result.ok, result
        out[cls.name] = result.fitness
    return out


@pytest.mark.parametrize(
    ("seed", "shape"),
    [(0, {}), (1, {}), (0, {"strategies": 25_544, "size": 35, "days": 82})],
)
def test_plateau_the_guided_searches_find_the_planted_winners(seed: int, shape: dict[str, int]) -> None:
    """At the production width the ant colony's one desirability (rank scale S/50) drew too few
    winners to leave the plateau: it scored below random search until a quarter of its ants drew at scale n."""
    land = plateau(seed=seed, **shape)
    fitness = _fitness(land.problem.guided(), seed)
    assert max(fitness.values()) >= 0.98 * land.planted_fitness
    baseline = fitness.pop("random_search")
    assert baseline < 0  # the blind baseline stays on the plateau
    assert all(value > baseline for value in fitness.values()), fitness


def test_plateau_is_flat_for_blind_searches() -> None:
    """What the guide is for: blind, no algorithm but (by luck) one reaches the planted portfolio."""
    land = plateau(seed=0)
    fitness = _fitness(land.problem.guided(False), 0)
    assert sum(value >= 0.98 * land.planted_fitness for value in fitness.values()) <= 1, fitness


@pytest.mark.parametrize("seed", [0, 1])
def test_families_every_algorithm_beats_random_search(seed: int) -> None:
    land = families(seed=seed)
    fitness = _fitness(land.problem.guided(), seed)
    baseline = fitness.pop("random_search")
    assert all(value > baseline for value in fitness.values()), fitness


@pytest.mark.parametrize(
    ("seed", "shape"),
    [(0, {}), (1, {}), (4, {}), (2, {"families": 20, "copies": 20})],
)
def test_families_the_winner_spreads_over_every_family(seed: int, shape: dict[str, int]) -> None:
    """Fine-tuning which copy of each family to hold is what sibling swaps are for: without them
    the best of the eight reached 97.8 % (seed 0), 95.1 % (seed 4) and 90.2 % (20 × 20, seed 2)."""
    land = families(seed=seed, **shape)
    fitness = _fitness(land.problem.guided(), seed)
    assert max(fitness.values()) >= 0.98 * land.planted_fitness, fitness
