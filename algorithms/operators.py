"""Pure update rules on portfolios (sets of n distinct strategy indices).

Randomness comes only from the ``numpy.random.Generator`` passed in, on the host.
"""

from __future__ import annotations

import numpy as np


def random_subsets(rng: np.random.Generator, n_strategies: int, size: int, count: int) -> np.ndarray:
    """``count`` uniform random subsets of ``size`` distinct strategies.

    Rows with a repeated index are redrawn: i.i.d. draws conditioned on being distinct
    are uniform over subsets, and with size ≪ n_strategies few rows repeat.

    Returns
    -------
    int64, shape (count, size), each row sorted.
    """
    if size > n_strategies:
        raise ValueError(f"cannot choose {size} distinct strategies out of {n_strategies}")
    if size * 4 > n_strategies:  # dense: redraws would be frequent; permute instead
        keys = rng.random((count, n_strategies))
        return np.sort(np.argpartition(keys, size - 1, axis=1)[:, :size], axis=1)
    out = np.sort(rng.integers(0, n_strategies, size=(count, size)), axis=1)
    bad = np.flatnonzero((np.diff(out, axis=1) == 0).any(axis=1))
    while bad.size:
        redraw = np.sort(rng.integers(0, n_strategies, size=(bad.size, size)), axis=1)
        out[bad] = redraw
        bad = bad[(np.diff(redraw, axis=1) == 0).any(axis=1)]
    return out


def random_swaps(
    rng: np.random.Generator, members: np.ndarray, n_strategies: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random single-swap moves of one portfolio.

    Returns
    -------
    out_pos : int64, shape (count,). Position in ``members`` of the strategy leaving.
    incoming : int64, shape (count,). A strategy not in ``members``.
    """
    if len(members) >= n_strategies:
        raise ValueError("no strategy outside the portfolio to swap in")
    inside = np.zeros(n_strategies, dtype=bool)
    inside[members] = True
    incoming = rng.integers(0, n_strategies, size=count)
    clash = np.flatnonzero(inside[incoming])
    while clash.size:
        incoming[clash] = rng.integers(0, n_strategies, size=clash.size)
        clash = clash[inside[incoming[clash]]]
    out_pos = rng.integers(0, len(members), size=count)
    return out_pos, incoming


def apply_swap(members: np.ndarray, out_pos: int, incoming: int) -> np.ndarray:
    """A new portfolio with ``members[out_pos]`` replaced by ``incoming``."""
    new = members.copy()
    new[out_pos] = incoming
    return new
