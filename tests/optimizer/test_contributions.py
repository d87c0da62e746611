"""Why each member is in: the same answer whether the members' substitutes are searched on one
thread or several."""

from __future__ import annotations

import numpy as np

from algorithms.correlation import unit_columns
from algorithms.fitness import Objective
from algorithms.problem import Problem
from optimizer.contributions import contributions


def test_substitutes_on_two_threads_are_those_on_one() -> None:
    rng = np.random.default_rng(4)
    pnl = rng.normal(3.0, 100.0, (40, 600))
    units, nonconstant = unit_columns(np, pnl)
    one = Problem.from_pnl(pnl, units, nonconstant, 12, Objective(), threads=1)
    members = tuple(int(m) for m in rng.choice(600, 12, replace=False))
    names = tuple(f"s{j}" for j in range(600))
    alone = contributions(one, members, names, pnl, range(30, 40), 252)
    shared = contributions(one, members, names, pnl, range(30, 40), 252, threads=2)
    assert shared == alone
    assert len(alone) == 12 and all(c.substitute is not None for c in alone)
    # Each substitute is the best outsider in that member's place (every outsider tried here).
    full = one.with_size(12)
    for k, c in enumerate(alone):
        trials = np.tile(np.array(members), (600, 1))
        trials[:, k] = np.arange(600)
        outside = ~np.isin(np.arange(600), members)
        assert c.substitute == names[int(np.flatnonzero(outside)[np.argmax(full.evaluate(trials[outside]))])]
