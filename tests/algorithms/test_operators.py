"""Update rules always return n distinct members (Hypothesis), and sample what they claim."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms.operators import (
    MemberTable,
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


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strategies=st.integers(8, 60), overlap=st.integers(0, 4))
def test_particle_swarms_first_in_blocks_is_first_occurrences(seed: int, strategies: int, overlap: int) -> None:
    """PSO's shortcut (membership bits instead of a sort of every row) marks the same entries."""
    from algorithms.particle_swarm import first_in_blocks

    rng = np.random.default_rng(seed)
    size, swarm = max(strategies // 4, 1), 6
    position, personal = random_subsets(rng, strategies, size, swarm), random_subsets(rng, strategies, size, swarm)
    personal[:overlap] = position[:overlap]  # a particle at its personal best: the blocks coincide
    best = personal[0]
    fresh = rng.integers(0, strategies, (swarm, size))
    candidates = np.concatenate([position, personal, np.broadcast_to(best, position.shape), fresh], axis=1)
    found = np.zeros(candidates.shape, dtype=np.uint8)
    for bit, block in ((1, position), (2, personal), (4, np.broadcast_to(best, position.shape))):
        found |= np.where(member_mask(block, candidates, strategies), bit, 0).astype(np.uint8)
    assert np.array_equal(first_in_blocks(candidates, found, size), first_occurrences(candidates))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strategies=st.integers(2, 80), rows=st.integers(1, 12))
def test_the_member_table_answers_as_member_mask_and_is_left_clean(seed: int, strategies: int, rows: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, strategies + 1))
    table = MemberTable(rows + 2, strategies)  # room for more rows than asked
    for _ in range(3):  # reused: each call clears its marks
        sets = random_subsets(rng, strategies, size, rows)
        queries = rng.integers(0, strategies, (rows, int(rng.integers(1, 2 * strategies))))
        assert np.array_equal(table(sets, queries), member_mask(sets, queries, strategies))
        assert np.array_equal(table(sets[0], queries), member_mask(sets[0], queries, strategies))
    assert not table._table.any()
