"""Genetic algorithm with DEAP: tournament selection, subset crossover, swap mutation, elitism."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from deap import base, creator, tools

from algorithms.operators import random_subsets, subset_crossover, swap_mutation
from algorithms.problem import Evaluator

if not hasattr(creator, "HeavyoptFitness"):
    creator.create("HeavyoptFitness", base.Fitness, weights=(1.0,))
    creator.create("HeavyoptIndividual", int, fitness=creator.HeavyoptFitness)


@contextmanager
def seeded_python_random(rng: np.random.Generator) -> Iterator[None]:
    """DEAP's selection draws from Python's global ``random``: seed it from ``rng`` for the
    duration, then restore it, so the GA is reproducible from its own generator alone."""
    saved = random.getstate()
    random.seed(int(rng.integers(0, 2**63)))
    try:
        yield
    finally:
        random.setstate(saved)


@dataclass(frozen=True)
class GeneticAlgorithm:
    """A generational GA over portfolios; each generation's offspring are evaluated in one batch.

    ``population_size``, ``mutation_rate`` and ``generations`` default to the legacy keys
    ``PORTFOLIO.population_size``, ``PORTFOLIO.mutation_rate`` and ``GENERAL.ga_generations``.
    """

    population_size: int = 100
    generations: int = 0  # 0 = until the budget is spent; a cap below it leaves evaluations unused
    mutation_rate: float = 0.6  # probability that a child gets a swap mutation
    crossover_rate: float = 0.9
    tournament_size: int = 3
    elite: int = 2
    name: ClassVar[str] = "genetic_algorithm"
    section: ClassVar[str] = "GENETIC_ALGORITHM"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {
        "population_size": (4, None),
        "generations": (0, None),
        "mutation_rate": (0.0, 1.0),
        "crossover_rate": (0.0, 1.0),
        "tournament_size": (2, None),
        "elite": (0, None),
    }

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        population = random_subsets(
            rng, problem.n_strategies, problem.size, min(self.population_size, evaluator.remaining)
        )
        fitness = evaluator.evaluate(population)
        generation = 0
        with seeded_python_random(rng):
            while not self.generations or generation < self.generations:
                generation += 1
                children_wanted = min(len(population) - min(self.elite, len(population) - 1), evaluator.remaining)
                if children_wanted <= 0:
                    return
                individuals = _individuals(fitness)
                elite = [int(i) for i in tools.selBest(individuals, len(population) - children_wanted)]
                parents = np.array(
                    [int(i) for i in tools.selTournament(individuals, 2 * children_wanted, self.tournament_size)]
                )
                first, second = population[parents[0::2]], population[parents[1::2]]
                crossed = subset_crossover(rng, first, second)
                children = np.where((rng.random(children_wanted) < self.crossover_rate)[:, None], crossed, first)
                children = swap_mutation(rng, children, problem.n_strategies, self.mutation_rate)
                child_fitness = evaluator.evaluate(children)
                population = np.concatenate([population[elite], children])
                fitness = np.concatenate([fitness[elite], child_fitness])


def _individuals(fitness: np.ndarray) -> list[Any]:
    out = []
    for i, value in enumerate(fitness.tolist()):
        ind = creator.HeavyoptIndividual(i)
        ind.fitness.values = (value,)
        out.append(ind)
    return out
