"""What the data says about each strategy: where the searches start and what they propose.

A blind search starts from uniformly random portfolios and draws incoming strategies
uniformly. On a universe where most strategies lose it never sees a good portfolio: every
random one scores about the same until a handful of good members are in at once (a plateau).
A :class:`Guide` biases starts and proposals towards what the data favours, while keeping
half of every draw uniform, so the whole universe stays in reach and populations stay diverse:

- **standalone rank**: each strategy's own value of the objective's metric, as a one-member
  portfolio (O(S·T), once per job). A guided draw picks the strategy of rank
  ``⌊scale·E⌋`` (0 = best, E a standard exponential variate), i.e. rank r with weight
  ``exp(−r/scale)``, and each draw (each guided portfolio) has its own ``scale``, log-uniform
  between n/2 and S/10: a ladder from portfolios made almost only of the best-ranked
  strategies (which leave a plateau where no single swap helps) to portfolios spread over
  the best tenth of the universe (diversity: not the top-k of one statistic).
- **offsetting strategies** (``Problem.offsetting``): for a portfolio, the strategies that earn
  most on the days it loses (one (S, T) × (T,) product): the correlation structure that
  single-swap searches use to find hedges.
- **siblings** (:func:`sibling_table`): each well-ranked strategy's most correlated others
  among the well-ranked (once per job, O(M²·T) for the best M ≈ S/10). A universe of near-copies
  (the same trade at neighbouring strikes or expiries) is fine-tuned by trading a member for a
  sibling, a move a draw from the whole ranking almost never proposes.

The guide draws on the host from the algorithm's own generator, so a guided search is as
reproducible as a blind one. ``OPTIMIZATION.guided = false`` removes it (blind searches, as
before); random search never uses it: it is the blind baseline every algorithm must beat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.operators import distinct_draws, random_subsets

GUIDED_SHARE = 0.5  # of starts and proposals drawn from the guide; the rest uniform
TOP_SHARE = 1 / 10  # the widest guided draw reaches about this share of the universe
DESIRABILITY_SHARE = 1 / 50  # rank scale of the per-strategy weights (ant colony's heuristic)
MIN_SCALE = 20.0
START_LADDER = 8  # guided portfolios a single-trajectory search scores before it starts
SIBLINGS = 32  # most correlated others kept per well-ranked strategy
SIBLING_RANKS = 1000  # siblings are kept for the best max(S/10, this many) strategies
SIBLING_BLOCK = 512  # strategies per product block (512 × 2,554 float64 is 10 MB)
SIBLING_SHARE = 0.25  # of replacements that are a sibling of the member leaving


@dataclass(frozen=True, eq=False)
class Guide:
    """Strategies ranked best first by what the data says (host, shape (S,)), and the share of
    draws that use the ranking."""

    order: np.ndarray
    share: float = GUIDED_SHARE
    siblings: np.ndarray | None = None  # int64 (S, k ≤ SIBLINGS) from sibling_table; None: no sibling swaps

    @classmethod
    def from_scores(cls, scores: np.ndarray, share: float = GUIDED_SHARE, units: Any = None, xp: Any = np) -> Guide:
        """A guide ranking strategies by ``scores`` (higher is better; ties: lower index first), with
        the siblings of the best-ranked where their unit columns ``units`` ((S, T) on ``xp``) are given."""
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        siblings = None if units is None else sibling_table(xp, units, order)
        return cls(order, share, siblings if siblings is not None and siblings.shape[1] else None)

    @property
    def n_strategies(self) -> int:
        return len(self.order)

    def weights(self, scale: float | None = None) -> np.ndarray:
        """A desirability per strategy, ``exp(−rank/scale)``; shape (S,). By default the scale is
        ``max(S/50, 20)`` (ant colony's heuristic)."""
        rank = np.empty(self.n_strategies)
        rank[self.order] = np.arange(self.n_strategies)
        return np.exp(-rank / (max(self.n_strategies * DESIRABILITY_SHARE, MIN_SCALE) if scale is None else scale))

    def _log_scale_range(self, size: int) -> tuple[float, float]:
        """log of the narrowest (n/2) and widest (S/10) rank scale of the ladder."""
        low = max(size / 2, 1.0)
        return float(np.log(low)), float(np.log(max(self.n_strategies * TOP_SHARE, low)))

    def _scales(self, rng: np.random.Generator, count: int, size: int) -> np.ndarray:
        return np.exp(rng.uniform(*self._log_scale_range(size), count))

    def _portfolios(self, rng: np.random.Generator, scales: np.ndarray, size: int) -> np.ndarray:
        """One portfolio of ``size`` distinct strategies per scale, drawn from the ranking at that scale."""
        return distinct_draws(
            lambda rows, draws: self._ranked(rng, np.repeat(scales[rows, None], draws, axis=1)), size, len(scales)
        )

    def _ranked(self, rng: np.random.Generator, scales: np.ndarray) -> np.ndarray:
        """Strategies at ranks ⌊scale·E⌋ (a rank past the end: a uniform one), shape of ``scales``."""
        ranks = np.floor(scales * rng.standard_exponential(scales.shape)).astype(np.int64)
        beyond = ranks >= self.n_strategies
        if beyond.any():  # no draw, no call: an empty ``integers`` costs as much as a short one
            ranks[beyond] = rng.integers(0, self.n_strategies, size=int(beyond.sum()))
        return self.order[ranks]

    def draw(self, rng: np.random.Generator, count: int, size: int) -> np.ndarray:
        """``count`` strategies with replacement, for portfolios of ``size``: each from the ranking
        with probability ``share``, else uniformly. int64, shape (count,)."""
        out = rng.integers(0, self.n_strategies, size=count)
        guided = np.flatnonzero(rng.random(count) < self.share)
        if guided.size:
            out[guided] = self._ranked(rng, self._scales(rng, guided.size, size))
        return out

    def replacements(self, rng: np.random.Generator, leaving: np.ndarray, size: int) -> np.ndarray:
        """A strategy to take the place of each of ``leaving`` in a portfolio of ``size``: with
        probability ``SIBLING_SHARE`` one of its siblings (uniformly among them) where it has them
        (it is among the best-ranked M), else a :meth:`draw`. May be a member of the portfolio: the
        caller redraws those. int64, shape of ``leaving``."""
        out = self.draw(rng, len(leaving), size)
        if self.siblings is not None:
            moves = np.flatnonzero(rng.random(len(leaving)) < SIBLING_SHARE)
            near = self.siblings[leaving[moves], rng.integers(0, self.siblings.shape[1], size=moves.size)]
            out[moves[near >= 0]] = near[near >= 0]
        return out

    def start(self, rng: np.random.Generator, evaluate: Callable[[np.ndarray], np.ndarray], size: int) -> np.ndarray:
        """A single-trajectory search's start: the fittest of ``START_LADDER`` guided portfolios,
        one per rung of the scale ladder (``evaluate`` scores them: that many evaluations)."""
        if size >= self.n_strategies:  # one portfolio exists
            everything = np.arange(size)
            evaluate(everything[None, :])
            return everything
        ladder = self._portfolios(rng, np.exp(np.linspace(*self._log_scale_range(size), START_LADDER)), size)
        return ladder[int(np.argmax(evaluate(ladder)))]

    def subsets(self, rng: np.random.Generator, size: int, count: int) -> np.ndarray:
        """``count`` portfolios: each, with probability ``share``, drawn without replacement from the
        ranking at its own scale, else uniformly. int64, shape (count, size), each row sorted."""
        out = random_subsets(rng, self.n_strategies, size, count)
        guided = np.flatnonzero(rng.random(count) < self.share)
        if guided.size and size < self.n_strategies:
            out[guided] = self._portfolios(rng, self._scales(rng, guided.size, size), size)
        return out


def sibling_table(xp: Any, units: Any, order: np.ndarray) -> np.ndarray:
    """The ``SIBLINGS`` most correlated others of each of the best-ranked M strategies, among
    those M (M = min(S, max(S/10, SIBLING_RANKS))), most correlated first.

    Parameters
    ----------
    units : float64, shape (S, T), on ``xp``: centred unit rows (``corr(i, j) = u_i · u_j``).
    order : int, shape (S,): strategies best first.

    Returns
    -------
    int64, shape (S, min(SIBLINGS, M − 1)), host: every row of the best M full, every other row -1.
    """
    strategies = len(order)
    width = min(strategies, max(int(np.ceil(strategies * TOP_SHARE)), SIBLING_RANKS))
    kept = max(min(SIBLINGS, width - 1), 0)
    out = np.full((strategies, kept), -1, dtype=np.int64)
    if kept == 0:
        return out
    best = xp.asarray(order[:width])
    top = units[best]
    for start in range(0, width, SIBLING_BLOCK):
        block = top[start : start + SIBLING_BLOCK] @ top.T  # (b, M) correlations
        rows = xp.arange(block.shape[0])
        block[rows, rows + start] = -xp.inf  # not its own sibling
        near = xp.argpartition(-block, kept - 1, axis=1)[:, :kept]
        near = xp.take_along_axis(near, xp.argsort(-xp.take_along_axis(block, near, axis=1), axis=1), axis=1)
        near = near.get() if hasattr(near, "get") else near
        out[order[start : start + len(near)]] = order[np.asarray(near)]
    return out


REDUNDANCY_SHARPNESS = 5.0  # a near-copy (correlation 0.95) leaves ~20× as often as a member at 0.35


def swaps(
    rng: np.random.Generator,
    members: np.ndarray,
    guide: Guide,
    count: int,
    preferred: np.ndarray | None = None,
    redundancy: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` single-swap moves of ``members`` whose incoming strategies come from ``guide``
    (or, where given, half of them from the ``preferred`` weights, e.g. offsetting strategies).
    Where ``redundancy`` (each member's highest correlation with another) is given, half of the
    leaving members are drawn ∝ ``exp(5·redundancy)``: near-copies leave first. Incoming
    strategies are :meth:`Guide.replacements` of the leaving ones (so some are their siblings);
    one already held is drawn again.

    Returns
    -------
    out_pos : int64, shape (count,). Position in ``members`` of the strategy leaving.
    incoming : int64, shape (count,). A strategy not in ``members``.
    """
    strategies = guide.n_strategies
    if len(members) >= strategies:
        raise ValueError("no strategy outside the portfolio to swap in")
    inside = np.zeros(strategies, dtype=bool)
    inside[members] = True
    size = len(members)
    out_pos = rng.integers(0, size, size=count)
    if redundancy is not None:
        weights = np.exp(REDUNDANCY_SHARPNESS * (redundancy - redundancy.max()))
        half = np.flatnonzero(rng.random(count) < 0.5)
        out_pos[half] = rng.choice(size, size=half.size, p=weights / weights.sum())
    incoming = guide.replacements(rng, members[out_pos], size)
    if preferred is not None:
        half = np.flatnonzero(rng.random(count) < 0.5)
        cdf = np.cumsum(preferred)
        if half.size and cdf[-1] > 0:
            picks = np.searchsorted(cdf, rng.random(half.size) * cdf[-1], side="right")
            incoming[half] = np.minimum(picks, strategies - 1)
    clash = np.flatnonzero(inside[incoming])
    tries = 0
    while clash.size:
        # Guided draws land on members often (the portfolio holds the favoured strategies): draw
        # again from the guide a few times, then uniformly, which always ends.
        tries += 1
        redraw = guide.draw(rng, clash.size, size) if tries <= 3 else rng.integers(0, strategies, size=clash.size)
        incoming[clash] = redraw
        clash = clash[inside[incoming[clash]]]
    return out_pos, incoming
