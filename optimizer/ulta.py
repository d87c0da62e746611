"""ULTA as an array function (brief §3.1); the SQL twin is ``Backend.apply_ulta``.

Invert every strategy whose total P&L is negative (beyond rounding, see
``dal.base.ULTA_TOLERANCE``) and rename it ``<name>_inv``. The historical rule — invert
when total/|worst day| < 0 and the inverted ratio is larger — reduces to exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dal.base import ULTA_TOLERANCE
from outputs.report import Inversion

SUFFIX = "_inv"


def ulta_mask(pnl: np.ndarray) -> np.ndarray:
    """Which strategies to invert.

    Parameters
    ----------
    pnl : float64, shape (rows, S).

    Returns
    -------
    bool, shape (S,).
    """
    return pnl.sum(axis=0) < -ULTA_TOLERANCE * np.abs(pnl).sum(axis=0)


def apply_ulta(pnl: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Invert the losing strategies.

    Returns
    -------
    pnl : float64, shape (rows, S), a new array.
    names : with ``_inv`` appended to inverted strategies.
    mask : bool, shape (S,).
    """
    mask = ulta_mask(pnl)
    out = np.where(mask, -pnl, pnl)
    renamed = tuple(n + SUFFIX if m else n for n, m in zip(names, mask.tolist(), strict=True))
    return out, renamed, mask


def inversions(original: np.ndarray, names: Sequence[str], mask: np.ndarray) -> list[Inversion]:
    """Report rows for the inverted strategies, from the original (rows, S) P&L and original names."""
    out = []
    for j in np.flatnonzero(mask).tolist():
        column = original[:, j]
        total = float(column.sum())
        worst = float(column.min())
        out.append(
            Inversion(
                name=names[j],
                original_total=total,
                inverted_total=-total,
                worst_day=worst,
                total_to_worst_day=total / abs(worst) if worst != 0 else 0.0,
            )
        )
    return out
