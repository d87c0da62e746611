"""Bayesian optimisation's own conjugate gradients and design products against SciPy's, and its batches."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from algorithms.bayesian import BayesianOptimization, _Design, conjugate_gradients
from algorithms.operators import random_subsets
from algorithms.problem import Evaluator
from tests.algorithms.planted import planted_problem


@pytest.mark.parametrize("precondition", [True, False])
@pytest.mark.parametrize(("seed", "iterations", "warm"), [(0, 10, False), (1, 10, True), (2, 3, True), (3, 200, False)])
def test_conjugate_gradients_are_scipys_step_for_step(
    precondition: bool, seed: int, iterations: int, warm: bool
) -> None:
    """The same solution bit for bit, whether the budget of steps or the tolerance ends it."""
    rng = np.random.default_rng(seed)
    strategies, size, count, precision = 400, 12, 300, 1.0
    portfolios = random_subsets(rng, strategies, size, count)
    target = rng.normal(size=count)
    start = rng.normal(scale=0.1, size=strategies) if warm else np.zeros(strategies)
    design = scipy.sparse.csr_matrix(
        (np.ones(count * size), portfolios.ravel(), np.arange(0, count * size + 1, size)), shape=(count, strategies)
    )
    inverse_diagonal = 1.0 / (np.bincount(portfolios.ravel(), minlength=strategies) + precision)
    gram = scipy.sparse.linalg.LinearOperator(
        (strategies, strategies), matvec=lambda w: design.T @ (design @ w) + precision * w
    )
    jacobi = scipy.sparse.linalg.LinearOperator((strategies, strategies), matvec=lambda r: inverse_diagonal * r)
    expected, _ = scipy.sparse.linalg.cg(
        gram, design.T @ target, x0=start, maxiter=iterations, M=jacobi if precondition else None
    )
    kept = start.copy()
    ours = _Design(portfolios, strategies)
    got = conjugate_gradients(
        lambda w: ours.transpose_times(ours.times(w)) + precision * w,
        ours.transpose_times(target),
        start,
        iterations,
        inverse_diagonal if precondition else None,
    )
    assert np.array_equal(got, expected)
    assert np.array_equal(start, kept)  # the warm start is the caller's: not overwritten


def test_design_products_are_the_sparse_classes() -> None:
    rng = np.random.default_rng(4)
    portfolios = random_subsets(rng, 500, 20, 64)
    matrix = scipy.sparse.csr_matrix(
        (np.ones(64 * 20), portfolios.ravel(), np.arange(0, 64 * 20 + 1, 20)), shape=(64, 500)
    )
    design = _Design(portfolios, 500)
    w, r = rng.normal(size=500), rng.normal(size=64)
    assert np.array_equal(design.times(w), matrix @ w)
    assert np.array_equal(design.transpose_times(r), matrix.T @ r)


def test_a_zero_right_hand_side_gives_zero() -> None:
    got = conjugate_gradients(lambda w: 2 * w, np.zeros(5), np.ones(5), 10, None)
    assert np.array_equal(got, np.zeros(5))


@dataclass
class _Recording(Evaluator):
    """An evaluator that remembers the size of every batch it scored."""

    batches: list[int] = field(default_factory=list)

    def evaluate(self, population: np.ndarray) -> np.ndarray:
        self.batches.append(len(population))
        return super().evaluate(population)


@pytest.mark.parametrize(
    ("growth", "expected"),
    [
        # The initial 10 % of the budget, batch_size 250 until a twentieth of what was seen exceeds it,
        # then that twentieth, and the rest of the budget last: 32 batches.
        (0.05, [1000] + [250] * 17 + [262, 275, 289, 303, 318, 334, 351, 369, 387, 406, 427, 448, 470, 111]),
        (0.1, [1000] + [250] * 7 + [275, 302, 332, 365, 402, 442, 486, 535, 588, 647, 712, 783, 861, 520]),
        (0.0, [1000] + [250] * 36),
    ],
)
def test_batches_grow_with_what_was_seen(growth: float, expected: list[int]) -> None:
    """Each batch is max(batch_size, growth × portfolios seen) and the last one is cut to the budget:
    31 refits (growth 0.05, the default) or 21 (0.1) instead of 36 for 10,000 evaluations, every
    evaluation spent once."""
    problem, _, _ = planted_problem(strategies=2_000, size=10)
    evaluator = _Recording(problem, 10_000)
    BayesianOptimization(batch_growth=growth).search(evaluator, np.random.default_rng(0))
    assert evaluator.batches == expected
    assert evaluator.used == 10_000
