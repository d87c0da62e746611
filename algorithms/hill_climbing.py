"""Hill climbing: steepest ascent over sampled single-swap neighbourhoods, with restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.guide import START_LADDER, swaps
from algorithms.operators import apply_swap, random_subsets, random_swaps
from algorithms.problem import Evaluator


@dataclass(frozen=True)
class HillClimbing:
    """From a random portfolio, evaluate ``neighbourhood`` random swaps at once (each in O(T))
    and move to the best if it improves; after ``patience`` neighbourhoods without
    improvement, restart from a new random portfolio."""

    neighbourhood: int = 100
    patience: int = 6
    name: ClassVar[str] = "hill_climbing"
    section: ClassVar[str] = "HILL_CLIMBING"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {"neighbourhood": (1, None), "patience": (1, None)}

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        if problem.size == problem.n_strategies:  # one portfolio exists and it has no neighbours
            evaluator.evaluate(np.arange(problem.size)[None, :])
            return
        guide = problem.guide
        current: np.ndarray | None = None
        fitness = -np.inf
        stalled = 0
        hedges: np.ndarray | None = None  # guided: offsetting strategies, once a neighbourhood has failed
        redundant: np.ndarray | None = None  # guided: each member's highest correlation with another
        while (left := evaluator.remaining) > 0:
            if current is None or stalled >= self.patience:
                if guide is not None and left > START_LADDER:
                    current = guide.start(rng, evaluator.evaluate, problem.size)
                    fitness = float(problem.evaluate(current[None, :])[0])  # scored in the ladder: not charged again
                else:
                    current = random_subsets(rng, problem.n_strategies, problem.size, 1)[0]
                    fitness = float(evaluator.evaluate(current[None, :])[0])
                stalled = 0
                hedges = redundant = None
                continue
            count = min(self.neighbourhood, left)
            if guide is None:
                out_pos, incoming = random_swaps(rng, current, problem.n_strategies, count)
            else:
                if stalled == 1 and hedges is None:
                    hedges = np.maximum(problem.offsetting(current), 0.0)
                    redundant = problem.redundancy(current)
                out_pos, incoming = swaps(rng, current, guide, count, hedges, redundant)
            neighbours = evaluator.evaluate_swaps(current, out_pos, incoming)
            best = int(np.argmax(neighbours))
            if neighbours[best] > fitness:
                current = apply_swap(current, int(out_pos[best]), int(incoming[best]))
                fitness = float(neighbours[best])
                stalled = 0
                hedges = redundant = None
            else:
                stalled += 1
