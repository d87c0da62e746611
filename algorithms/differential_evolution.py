"""Set-based differential evolution: difference-driven mutation, binomial crossover, greedy selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.operators import MemberTable, random_subsets, top_k_by_key
from algorithms.problem import Evaluator


@dataclass(frozen=True)
class DifferentialEvolution:
    """DE/rand/1/bin carried over to sets.

    For each target x_i, three other members a, b, c are drawn. The *difference* b − c is the
    set of strategies b holds and c does not; the mutant is a with ⌈F·|b − c|⌉ of its members
    replaced by strategies from that difference. The trial takes each mutant member with
    probability CR (at least one), fills up from the target, and replaces the target if it
    is at least as fit (greedy selection). The whole population is one batch per generation.
    """

    population_size: int = 200
    differential_weight: float = 0.5  # F
    crossover_rate: float = 0.7  # CR
    name: ClassVar[str] = "differential_evolution"
    section: ClassVar[str] = "DIFFERENTIAL_EVOLUTION"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {
        "population_size": (4, None),
        "differential_weight": (0.0, 1.0),
        "crossover_rate": (0.0, 1.0),
    }

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        strategies, size = problem.n_strategies, problem.size
        count = min(self.population_size, evaluator.remaining)
        guide = problem.guide
        population = guide.subsets(rng, size, count) if guide else random_subsets(rng, strategies, size, count)
        fitness = evaluator.evaluate(population)
        count = len(population)
        if count < 4:
            return
        members = MemberTable(count, strategies + 1)  # strategies + 1: the crossover's "not chosen" mark
        while (left := evaluator.remaining) > 0:
            a, b, c = _three_others(rng, count)
            mutant = self._mutate(rng, population[a], population[b], population[c], members)
            trial = self._crossover(rng, mutant, population, members, strategies)
            take = min(count, left)
            trial_fitness = evaluator.evaluate(trial[:take])
            better = trial_fitness >= fitness[:take]
            population[:take][better] = trial[:take][better]
            fitness[:take][better] = trial_fitness[better]

    def _mutate(
        self, rng: np.random.Generator, a: np.ndarray, b: np.ndarray, c: np.ndarray, members: MemberTable
    ) -> np.ndarray:
        size = a.shape[1]
        difference = ~members(c, b) & ~members(a, b)
        moves = np.ceil(self.differential_weight * difference.sum(axis=1)).astype(np.int64)
        # Rank the difference's members and a's slots at random; the k first of each are paired.
        incoming_rank = np.argsort(np.where(difference, rng.random(b.shape), 2.0), axis=1)
        slot_rank = np.argsort(rng.random(a.shape), axis=1)
        mutant = a.copy()
        rows, ranks = np.nonzero(np.arange(size)[None, :] < moves[:, None])
        mutant[rows, slot_rank[rows, ranks]] = b[rows, incoming_rank[rows, ranks]]
        return mutant

    def _crossover(
        self, rng: np.random.Generator, mutant: np.ndarray, target: np.ndarray, members: MemberTable, strategies: int
    ) -> np.ndarray:
        count, size = mutant.shape
        from_mutant = rng.random(mutant.shape) < self.crossover_rate
        from_mutant[np.arange(count), rng.integers(0, size, count)] = True
        # Chosen mutant members first, then the target's, then unchosen mutant members if still short;
        # a strategy in both keeps one copy, at the higher of its two priorities.
        chosen = np.where(from_mutant, mutant, strategies)  # `strategies` (no strategy's index) marks "not chosen"
        target_copy = members(chosen, target)
        mutant_copy = members(target, mutant) & ~from_mutant
        mutant_keys = np.where(from_mutant, 2.0, -2.0) + rng.random(mutant.shape)
        mutant_keys[mutant_copy] = -np.inf
        target_keys = np.where(target_copy, -np.inf, rng.random(target.shape))
        pool = np.concatenate([mutant, target], axis=1)
        return top_k_by_key(pool, np.concatenate([mutant_keys, target_keys], axis=1), size)


def _three_others(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each i, three distinct indices, all different from i, in random roles."""
    keys = rng.random((count, count - 1))
    picks = np.argsort(keys, axis=1)[:, :3]
    picks += picks >= np.arange(count)[:, None]  # skip i itself
    return picks[:, 0], picks[:, 1], picks[:, 2]
