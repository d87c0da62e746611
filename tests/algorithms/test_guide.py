"""The guide's siblings (issue #14): each well-ranked strategy's most correlated others, and the
share of proposals that trade a member for one of them."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import guide as guide_module
from algorithms.correlation import unit_columns
from algorithms.guide import SIBLING_RANKS, SIBLING_SHARE, SIBLINGS, Guide, sibling_table, swaps
from tests.conftest import cupy_or_skip


def test_siblings_of_two_pairs_of_near_copies() -> None:
    """Worked by hand: 0 and 2 are near-copies of one series, 1 and 3 of another, orthogonal
    to it; each strategy's first sibling is its copy, then the other pair."""
    first = np.array([1.0, -1.0, 1.0, -1.0])
    second = np.array([1.0, 1.0, -1.0, -1.0])
    pnl = np.column_stack([first, second, first + np.array([0.1, 0, 0, -0.1]), second + np.array([0, 0.1, -0.1, 0])])
    units, _ = unit_columns(np, pnl)
    order = np.array([0, 1, 2, 3])
    table = sibling_table(np, units.T.copy(), order)
    assert table.shape == (4, 3)  # three others exist: every row holds them all
    assert table[:, 0].tolist() == [2, 3, 0, 1]
    assert set(table[0, 1:].tolist()) == {1, 3} and set(table[1, 1:].tolist()) == {0, 2}
    guide = Guide.from_scores(np.array([4.0, 3.0, 2.0, 1.0]), units=units.T.copy())
    assert guide.siblings is not None and np.array_equal(guide.siblings, table)
    assert Guide.from_scores(np.array([1.0]), units=np.ones((1, 4))).siblings is None  # nobody else: none


def test_siblings_are_the_most_correlated_among_the_best_ranked() -> None:
    """Against the full correlation matrix: the best max(S/10, SIBLING_RANKS) strategies get
    their most correlated others among themselves, in order; the rest get none."""
    rng = np.random.default_rng(3)
    strategies = SIBLING_RANKS + 200
    base = rng.normal(size=(40, 50))
    pnl = base[:, rng.integers(0, 50, strategies)] + rng.normal(scale=0.5, size=(40, strategies))
    units, _ = unit_columns(np, pnl)
    order = rng.permutation(strategies)
    table = sibling_table(np, units.T.copy(), order)
    best = order[:SIBLING_RANKS]
    corr = units[:, best].T @ units[:, best]
    np.fill_diagonal(corr, -np.inf)
    expected = best[np.argsort(-corr, axis=1, kind="stable")[:, :SIBLINGS]]
    got = table[best]
    assert (got >= 0).all()
    # Same sets and the same correlations in the same order (ties could swap equal neighbours).
    assert all(set(g.tolist()) == set(e.tolist()) for g, e in zip(got, expected, strict=True))
    position = {int(s): k for k, s in enumerate(best)}
    got_corr = np.take_along_axis(corr, np.vectorize(position.get)(got), axis=1)
    assert (np.diff(got_corr, axis=1) <= 0).all()
    assert (table[order[SIBLING_RANKS:]] == -1).all()


def _ring_guide(strategies: int) -> Guide:
    """Strategy i's only sibling is i + 1 (mod S)."""
    return Guide(np.arange(strategies), siblings=((np.arange(strategies) + 1) % strategies)[:, None])


def test_replacements_bring_in_a_sibling_at_the_sibling_share() -> None:
    strategies = 5000
    guide = _ring_guide(strategies)
    leaving = np.random.default_rng(0).integers(0, strategies, 20_000)
    out = guide.replacements(np.random.default_rng(1), leaving, 35)
    share = float(np.mean(out == (leaving + 1) % strategies))
    # The sibling share plus the rare guided or uniform draw that lands on the sibling by chance.
    assert abs(share - SIBLING_SHARE) < 0.02
    none = Guide(np.arange(strategies), siblings=np.full((strategies, 4), -1, dtype=np.int64))
    assert np.mean(none.replacements(np.random.default_rng(1), leaving, 35) == (leaving + 1) % strategies) < 0.01


def test_swaps_never_bring_in_a_member_even_when_every_sibling_is_one(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(guide_module, "SIBLING_SHARE", 1.0)
    guide = _ring_guide(200)
    members = np.arange(0, 60)  # every member's sibling but the last one's is a member
    out_pos, incoming = swaps(np.random.default_rng(2), members, guide, 5000)
    assert not np.isin(incoming, members).any()
    assert (incoming[out_pos == 59] == 60).all()  # the last member's sibling is free: always taken


def test_a_small_universe_draws_a_sibling_every_time_a_sibling_is_due(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Five strategies have four siblings each, and the table holds just those: a sibling move
    never falls back to a plain draw (which could give the leaving strategy back)."""
    monkeypatch.setattr(guide_module, "SIBLING_SHARE", 1.0)
    rng = np.random.default_rng(6)
    pnl = rng.normal(size=(30, 5))
    units, _ = unit_columns(np, pnl)
    guide = Guide.from_scores(pnl.mean(axis=0), units=units.T.copy())
    assert guide.siblings is not None and guide.siblings.shape == (5, 4) and (guide.siblings >= 0).all()
    leaving = np.full(2000, int(guide.order[0]))
    out = guide.replacements(rng, leaving, 2)
    assert np.isin(out, guide.siblings[leaving[0]]).all()


@pytest.mark.gpu
def test_the_sibling_table_on_a_gpu_is_the_hosts() -> None:
    cupy = cupy_or_skip()
    rng = np.random.default_rng(7)
    pnl = rng.normal(size=(60, 3000))
    units, _ = unit_columns(np, pnl)
    order = rng.permutation(3000)
    host = sibling_table(np, units.T.copy(), order)
    device = sibling_table(cupy, cupy.asarray(units.T.copy()), order)
    assert np.array_equal(host, device)
