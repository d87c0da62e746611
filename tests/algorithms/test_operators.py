"""Update rules always return n distinct members (Hypothesis), and sample what they claim."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms.operators import (
    first_occurrences,
    member_mask,
    random_subsets,
    random_swaps,
    repair_distinct,
    subset_crossover,
    swap_mutation,
    top_k_by_key,
    weighted_subsets,
)


@st.composite
def shapes(draw: st.DrawFn) -> tuple[np.random.Generator, int, int, int]:
    strategies = draw(st.integers(2, 300))
    size = draw(st.integers(1, strategies))
    count = draw(st.integers(1, 30))
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))), strategies, size, count


def distinct_sorted(rows: np.ndarray, size: int, strategies: int) -> bool:
    return (
        rows.shape[1] == size
        and bool((np.diff(rows, axis=1) > 0).all())
        and bool((rows >= 0).all() and (rows < strategies).all())
    )


@settings(max_examples=80, deadline=None)
@given(shapes())
def test_random_subsets_are_distinct(case: tuple[np.random.Generator, int, int, int]) -> None:
    rng, strategies, size, count = case
    assert distinct_sorted(random_subsets(rng, strategies, size, count), size, strategies)


@settings(max_examples=80, deadline=None)
@given(shapes())
def test_crossover_keeps_n_distinct_from_the_union_and_all_shared_members(
    case: tuple[np.random.Generator, int, int, int],
) -> None:
    rng, strategies, size, count = case
    a, b = random_subsets(rng, strategies, size, count), random_subsets(rng, strategies, size, count)
    child = subset_crossover(rng, a, b)
    assert distinct_sorted(child, size, strategies)
    for c, x, y in zip(child, a, b, strict=True):
        assert set(c) <= set(x) | set(y)
        assert set(x) & set(y) <= set(c)


@settings(max_examples=80, deadline=None)
@given(shapes(), st.floats(0.0, 1.0))
def test_mutation_and_repair_keep_n_distinct(case: tuple[np.random.Generator, int, int, int], rate: float) -> None:
    rng, strategies, size, count = case
    population = random_subsets(rng, strategies, size, count)
    assert distinct_sorted(swap_mutation(rng, population, strategies, rate), size, strategies)
    broken = rng.integers(0, strategies, (count, size))
    assert distinct_sorted(repair_distinct(rng, broken, strategies), size, strategies)


@settings(max_examples=80, deadline=None)
@given(shapes())
def test_swaps_bring_in_non_members(case: tuple[np.random.Generator, int, int, int]) -> None:
    rng, strategies, size, count = case
    if size == strategies:
        return
    members = random_subsets(rng, strategies, size, 1)[0]
    out_pos, incoming = random_swaps(rng, members, strategies, count)
    assert not np.isin(incoming, members).any()
    assert ((out_pos >= 0) & (out_pos < size)).all()


@settings(max_examples=80, deadline=None)
@given(shapes())
def test_weighted_subsets_are_distinct(case: tuple[np.random.Generator, int, int, int]) -> None:
    rng, strategies, size, count = case
    weights = rng.random(strategies) ** 4 + 1e-3
    assert distinct_sorted(weighted_subsets(rng, weights, size, count), size, strategies)


def test_weighted_subsets_sample_without_replacement_in_proportion() -> None:
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    draws = 100_000
    got = weighted_subsets(np.random.default_rng(1), weights, 2, draws)
    total = weights.sum()
    for i, j in itertools.combinations(range(4), 2):
        exact = weights[i] / total * weights[j] / (total - weights[i]) + weights[j] / total * weights[i] / (
            total - weights[j]
        )
        share = np.mean((got[:, 0] == i) & (got[:, 1] == j))
        assert abs(share - exact) < 4 * np.sqrt(exact * (1 - exact) / draws)


def test_helpers() -> None:
    rows = np.array([[3, 1, 3, 2, 1]])
    assert first_occurrences(rows).tolist() == [[True, True, False, True, False]]
    assert member_mask(np.array([[1, 5]]), np.array([[5, 2, 1]]), 10).tolist() == [[True, False, True]]
    assert member_mask(np.array([2, 7]), np.array([[7, 1], [2, 2]]), 10).tolist() == [[True, False], [True, True]]
    keys = np.array([[0.1, 0.9, -np.inf, 0.5]])
    assert top_k_by_key(np.array([[10, 11, 12, 13]]), keys, 2).tolist() == [[11, 13]]
