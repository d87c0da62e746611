"""Random search: uniform random subsets, the baseline every other algorithm must beat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.operators import random_subsets
from algorithms.problem import Evaluator


@dataclass(frozen=True)
class RandomSearch:
    """Draws ``batch`` uniform portfolios at a time until the budget is spent."""

    batch: int = 1000
    name: ClassVar[str] = "random_search"
    section: ClassVar[str] = "RANDOM_SEARCH"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {"batch": (1, None)}

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        while (left := evaluator.remaining) > 0:
            count = min(self.batch, left)
            evaluator.evaluate(random_subsets(rng, problem.n_strategies, problem.size, count))
