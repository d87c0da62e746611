"""Ant colony optimisation (MAX–MIN ant system) with a pheromone per strategy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.operators import weighted_subsets
from algorithms.problem import Evaluator

NARROW_EVERY = 4  # guided: one ant in this many draws at the narrow scale (rank scale n)


@dataclass(frozen=True)
class AntColony:
    """Each ant builds a portfolio by drawing n strategies without replacement with
    probability ∝ τ_j^α · η_j^β. τ is a pheromone per strategy (a vector, not S×S); η is the
    strategy's desirability, the rank of its own metric among all strategies (computed once
    from the strategies themselves, O(S·T), not a portfolio evaluation): guided, three ants in
    four use ``exp(−rank/max(S/50, 20))`` and one ``exp(−rank/n)``. After each
    iteration τ evaporates by ρ, the ``deposit_ants`` best ants of the iteration and the best
    portfolio so far deposit on their members (rank-weighted), and τ is kept in
    [``min_pheromone``, 1] so no strategy is ever ruled out (MAX–MIN).
    """

    ants: int = 50
    evaporation: float = 0.1
    alpha: float = 1.0
    beta: float = 2.0
    deposit_ants: int = 5
    min_pheromone: float = 0.01
    name: ClassVar[str] = "ant_colony"
    section: ClassVar[str] = "ANT_COLONY"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {
        "ants": (1, None),
        "evaporation": (1e-6, 1.0),
        "alpha": (0.0, 10.0),
        "beta": (0.0, 10.0),
        "deposit_ants": (1, None),
        "min_pheromone": (1e-9, 1.0),
    }

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        strategies = problem.n_strategies
        if problem.guide is not None:
            # Most ants weigh the ranking at the guide's scale; one in NARROW_EVERY at the portfolio's
            # size: those draw portfolios made mostly of the best-ranked, which leave a plateau the
            # others never see.
            desirability = np.stack([problem.guide.weights(), problem.guide.weights(problem.size)]) ** self.beta
        else:
            alone = problem.standalone_metric()
            rank = np.empty(strategies)
            rank[np.argsort(alone, kind="stable")] = np.arange(1, strategies + 1)
            desirability = ((rank / strategies) ** self.beta)[None, :]
        pheromone = np.ones(strategies)
        best, best_fitness = None, -np.inf
        drawn = 0  # ants so far: the narrow ones are every NARROW_EVERY-th across iterations
        while (left := evaluator.remaining) > 0:
            trail = pheromone if self.alpha == 1 else pheromone**self.alpha
            count = min(self.ants, left)
            # Guided, the k-th ant of the search draws with the narrow desirability (row 1) when
            # k ≡ −1 mod NARROW_EVERY, so a colony of fewer ants has narrow ones too.
            ordinal = drawn + np.arange(count)
            drawn += count
            rungs = ((ordinal % NARROW_EVERY == NARROW_EVERY - 1) & (len(desirability) > 1)).astype(int)
            tours = np.empty((count, problem.size), dtype=np.int64)
            for rung, eta in enumerate(desirability):
                ants = np.flatnonzero(rungs == rung)
                if ants.size:
                    tours[ants] = weighted_subsets(rng, trail * eta, problem.size, ants.size)
            fitness = evaluator.evaluate(tours)
            order = np.argsort(-fitness, kind="stable")
            if fitness[order[0]] > best_fitness:
                best, best_fitness = tours[order[0]], float(fitness[order[0]])
            pheromone *= 1.0 - self.evaporation
            for place, ant in enumerate(order[: self.deposit_ants]):
                pheromone[tours[ant]] += self.evaporation / (place + 1)
            if best is not None:
                pheromone[best] += self.evaporation
            np.clip(pheromone, self.min_pheromone, 1.0, out=pheromone)
