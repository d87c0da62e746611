"""The problem of one (job, size) and the one evaluator that counts every algorithm's budget."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from algorithms.fitness import Objective, fitness_from_sums, metric_values
from algorithms.guide import Guide
from algorithms.operators import apply_swap
from algorithms.sparse_kernels import csc_matvecs, csr_tocsc
from errors import HeavyOptError

CHUNK_ROWS = 2048  # portfolios per block: fastest of 512–10,240 here (the (P, 2T) sums stay in L2/L3)
GPU_CHUNK_ROWS = 65_536  # on a GPU, larger blocks keep the device busy (optimizer.compute sizes memory by it)


def _sparse_module(xp: Any) -> Any:
    """scipy.sparse for NumPy, cupyx.scipy.sparse for CuPy."""
    if xp is np:
        import scipy.sparse

        return scipy.sparse
    import cupyx.scipy.sparse

    return cupyx.scipy.sparse


def _host_sums(rows: np.ndarray, population: np.ndarray) -> np.ndarray:
    """``M @ rows`` for the (P, S) membership matrix M of ``population``, by SciPy's own kernels
    (:mod:`algorithms.sparse_kernels`): the same operations as ``csr_matrix(…).tocsc() @ rows``,
    without the classes' 0.13–0.18 ms of construction and checks a batch (measured at n = 67,
    25,544 strategies, 40–100 portfolios: a third of the batch's time)."""
    count, size = population.shape
    strategies, width = rows.shape
    members = np.ascontiguousarray(population, dtype=np.int64).ravel()
    ones = np.ones(members.size)
    row_starts = np.arange(0, members.size + 1, size, dtype=np.int64)
    starts = np.empty(strategies + 1, dtype=np.int64)
    holders = np.empty(members.size, dtype=np.int64)
    values = np.empty(members.size)
    csr_tocsc(count, strategies, row_starts, members, ones, starts, holders, values)
    out = np.zeros((count, width))
    csc_matvecs(count, strategies, width, starts, holders, values, np.ascontiguousarray(rows).ravel(), out.ravel())
    return out


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    # NumPy's gather and ufuncs release the GIL, so threads split a population's work.
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heavyopt-eval")


@dataclass(frozen=True, eq=False)
class Problem:
    """Choose ``size`` distinct strategies maximising the objective.

    Attributes
    ----------
    rows : float64, shape (S, 2T), on ``xp``. Row j is strategy j's daily P&L followed by
        its unit (centred, normalised) column, so one gather gives both the portfolio
        series and the correlation identity's sum.
    nonconstant : float64, shape (S,), on ``xp``. 1 for a non-constant strategy, else 0.
    guide : where searches start and what they propose (see :mod:`algorithms.guide`); None: blind.
    """

    rows: Any
    nonconstant: Any
    size: int
    objective: Objective
    xp: Any = np
    threads: int = 1
    guide: Guide | None = None

    @classmethod
    def from_pnl(
        cls, pnl: np.ndarray, units: np.ndarray, nonconstant: np.ndarray, size: int, objective: Objective, **kw: Any
    ) -> Problem:
        """Build from host arrays ``pnl`` and ``units`` of shape (T, S)."""
        rows = np.ascontiguousarray(np.hstack([pnl.T, units.T]), dtype=np.float64)
        return cls(rows=rows, nonconstant=nonconstant.astype(np.float64), size=size, objective=objective, **kw)

    def on(self, xp: Any) -> Problem:
        """The same problem with its arrays on ``xp`` (``cupy`` moves them to the GPU)."""
        if xp is self.xp:
            return self
        return Problem(
            xp.asarray(self.rows), xp.asarray(self.nonconstant), self.size, self.objective, xp, self.threads, self.guide
        )

    def with_size(self, size: int) -> Problem:
        """The same data for another portfolio size (arrays shared, not copied)."""
        return Problem(self.rows, self.nonconstant, size, self.objective, self.xp, self.threads, self.guide)

    def guided(self, on: bool = True) -> Problem:
        """The same problem with a :class:`Guide` ranking strategies by their own metric (``on``), or blind."""
        units = self.rows[:, self.n_days :]
        guide = Guide.from_scores(self.standalone_metric(), units=units, xp=self.xp) if on else None
        return Problem(self.rows, self.nonconstant, self.size, self.objective, self.xp, self.threads, guide)

    def redundancy(self, members: np.ndarray) -> np.ndarray:
        """Each member's highest correlation with another member (a near-copy scores ≈ 1).
        Host, float64, shape (n,)."""
        xp = self.xp
        units = self.rows[xp.asarray(members), self.n_days :]
        corr = units @ units.T
        xp.fill_diagonal(corr, -1.0)
        top = corr.max(axis=1)
        return np.asarray(top.get() if hasattr(top, "get") else top, dtype=np.float64)

    def offsetting(self, members: np.ndarray) -> np.ndarray:
        """Every strategy's worth as a hedge for ``members``: its P&L summed over the days the
        portfolio loses (its below-median days when it never loses). Host, float64, shape (S,)."""
        xp = self.xp
        pnl = self.rows[:, : self.n_days]
        series = pnl[xp.asarray(members)].sum(axis=0)
        bad = series < 0
        if not bool(bad.any()):
            bad = series < xp.median(series)
        scores = pnl @ bad.astype(pnl.dtype)
        return np.asarray(scores.get() if hasattr(scores, "get") else scores, dtype=np.float64)

    @property
    def n_strategies(self) -> int:
        return int(self.rows.shape[0])

    @property
    def n_days(self) -> int:
        return int(self.rows.shape[1] // 2)

    def sums(self, population: np.ndarray) -> tuple[Any, Any]:
        """Row sums and non-constant counts of each portfolio.

        Computed as ``M @ rows`` with M the (P, S) membership matrix in CSC form: the
        product walks the strategies in order and adds each one's row to the portfolios
        holding it, so each row is read once per batch instead of once per membership
        (the (S, 2T) matrix is larger than the L3 cache: ~3× faster than a gather). Each
        portfolio's members are added in ascending index order, so its fitness depends
        only on its set, bit for bit.

        Parameters
        ----------
        population : int, shape (P, n), host.

        Returns
        -------
        sums : float64, shape (P, 2T), on ``xp``.
        counts : float64, shape (P,), on ``xp``.
        """
        xp = self.xp
        if xp is np and self.rows.dtype == np.float64:
            return _host_sums(self.rows, population), self.nonconstant[population].sum(axis=1)
        count, size = population.shape
        sparse = _sparse_module(xp)
        # CSR of a population is free to build; CSR → CSC is a counting sort (rows stay ascending in each column).
        membership = sparse.csr_matrix(
            (xp.ones(count * size), xp.asarray(population.ravel()), xp.arange(0, count * size + 1, size)),
            shape=(count, self.n_strategies),
        ).tocsc()
        return membership @ self.rows, self.nonconstant[xp.asarray(population)].sum(axis=1)

    def standalone_metric(self) -> np.ndarray:
        """Each strategy's own metric (as a one-member portfolio, no penalty); host, shape (S,)."""
        values = metric_values(
            self.xp, self.rows[:, : self.n_days], self.objective.metric, self.objective.periods_per_year
        )
        return np.asarray(values.get() if hasattr(values, "get") else values, dtype=np.float64)

    def _evaluate_chunk(self, population: np.ndarray) -> np.ndarray:
        sums, counts = self.sums(population)
        fit = fitness_from_sums(self.xp, sums, counts, self.size, self.objective)
        return np.asarray(fit.get() if hasattr(fit, "get") else fit, dtype=np.float64)

    def evaluate(self, population: np.ndarray) -> np.ndarray:
        """Fitness of each portfolio.

        Parameters
        ----------
        population : int, shape (P, n), host; each row n distinct strategy indices.

        Returns
        -------
        float64, shape (P,), host.
        """
        population = np.asarray(population)
        if population.ndim != 2 or population.shape[1] != self.size:
            raise ValueError(f"population must have shape (P, {self.size}), got {population.shape}")
        step = CHUNK_ROWS if self.xp is np else GPU_CHUNK_ROWS
        chunks = [population[i : i + step] for i in range(0, len(population), step)]
        if self.threads > 1 and len(chunks) > 1 and self.xp is np:
            return np.concatenate(list(_pool(self.threads).map(self._evaluate_chunk, chunks)))
        if not chunks:
            return np.empty(0)
        return np.concatenate([self._evaluate_chunk(c) for c in chunks])

    def evaluate_swaps(self, members: np.ndarray, out_pos: np.ndarray, incoming: np.ndarray) -> np.ndarray:
        """Fitness of single-swap neighbours of one portfolio, each in O(T).

        Parameters
        ----------
        members : int, shape (n,). The current portfolio.
        out_pos : int, shape (K,). Position in ``members`` of the strategy leaving.
        incoming : int, shape (K,). Strategy entering; not in ``members``.

        Returns
        -------
        float64, shape (K,), host.
        """
        xp = self.xp
        held = xp.asarray(members)
        base = self.rows[held].sum(axis=0)
        count = self.nonconstant[held].sum()
        leaving = xp.asarray(members[out_pos])
        entering = xp.asarray(incoming)
        sums = base + self.rows[entering] - self.rows[leaving]
        counts = count + self.nonconstant[entering] - self.nonconstant[leaving]
        fit = fitness_from_sums(xp, sums, counts, self.size, self.objective)
        return np.asarray(fit.get() if hasattr(fit, "get") else fit, dtype=np.float64)


class BudgetExceeded(HeavyOptError):
    """An algorithm asked for more evaluations than it had left: a bug in that algorithm."""


@dataclass
class Evaluator:
    """Counts evaluations against the budget and remembers the best portfolio seen.

    Algorithms ask ``remaining`` before each batch; it drops to 0 when the budget is spent
    or the time limit has passed, which ends the search. The best portfolio's fitness is
    always its full evaluation (swap-evaluated improvements are re-evaluated in full), so
    the reported fitness equals ``problem.evaluate`` of the reported portfolio.

    With ``archive_size`` > 1 it also keeps an :class:`Archive` of distinct good portfolios
    (each batch's best few, and every improvement): candidates for out-of-sample validation.
    """

    problem: Problem
    budget: int
    time_limit_s: float | None = None
    archive_size: int = 0
    used: int = 0
    best_fitness: float = -np.inf
    best: np.ndarray | None = None
    trace: list[tuple[int, float]] = field(default_factory=list)
    timed_out: bool = False
    _started: float = field(default_factory=time.perf_counter)
    archive: Archive = field(init=False)

    def __post_init__(self) -> None:
        self.archive = Archive(self.archive_size, self.problem.size)

    @property
    def remaining(self) -> int:
        # The limit ends a search only after its first batch, so a timed-out run still has a portfolio.
        over = self.time_limit_s is not None and time.perf_counter() - self._started > self.time_limit_s
        if over and self.used > 0:
            self.timed_out = True
            return 0
        return self.budget - self.used

    def _charge(self, count: int) -> None:
        if count > self.budget - self.used:
            raise BudgetExceeded(f"asked for {count} evaluations with {self.budget - self.used} left")
        self.used += count

    def _offer(self, fitness: float, portfolio: np.ndarray) -> None:
        if fitness > self.best_fitness:
            self.best_fitness = fitness
            self.best = np.sort(portfolio)
            self.trace.append((self.used, fitness))
            self.archive.offer(fitness, self.best)

    def evaluate(self, population: np.ndarray) -> np.ndarray:
        """Fitness of a (P, n) population; P evaluations charged."""
        self._charge(len(population))
        fit = self.problem.evaluate(population)
        if len(fit):
            i = int(np.argmax(fit))
            self._offer(float(fit[i]), population[i])
            self.archive.offer_batch(fit, population)
        return fit

    def evaluate_swaps(self, members: np.ndarray, out_pos: np.ndarray, incoming: np.ndarray) -> np.ndarray:
        """Fitness of K single-swap neighbours of ``members``; K evaluations charged."""
        self._charge(len(out_pos))
        fit = self.problem.evaluate_swaps(members, out_pos, incoming)
        if len(fit):
            i = int(np.argmax(fit))
            if fit[i] > self.best_fitness:
                neighbour = apply_swap(members, int(out_pos[i]), int(incoming[i]))
                self._offer(float(self.problem.evaluate(neighbour[None, :])[0]), neighbour)
        return fit


class Archive:
    """The ``size`` fittest distinct portfolios offered, no two sharing more than n − ⌈n/10⌉ members.

    A candidate pool of near-copies of one portfolio gives validation nothing to choose from,
    so a portfolio within ``min_distance`` swaps of a fitter archived one is turned away, and
    one that is fitter than close archived ones replaces them. ``size`` ≤ 1 keeps nothing
    (the evaluator's best is kept anyway), so searches without validation pay nothing.
    """

    def __init__(self, size: int, n: int) -> None:
        self.size = size if size > 1 else 0
        self.min_distance = max(1, -(-n // 10))
        self.entries: list[tuple[float, np.ndarray]] = []  # fittest first, each sorted

    def _full(self) -> bool:
        return len(self.entries) >= self.size

    def offer(self, fitness: float, portfolio: np.ndarray) -> None:
        if not self.size or (self._full() and fitness <= self.entries[-1][0]):
            return
        members = np.sort(portfolio)
        n = len(members)
        close = [
            k
            for k, (_, kept) in enumerate(self.entries)
            if n - np.intersect1d(kept, members, assume_unique=True).size < self.min_distance
        ]
        if any(self.entries[k][0] >= fitness for k in close):
            return
        kept = [entry for k, entry in enumerate(self.entries) if k not in close]
        kept.append((fitness, members))
        kept.sort(key=lambda entry: -entry[0])
        self.entries = kept[: self.size]

    def offer_batch(self, fitness: np.ndarray, population: np.ndarray) -> None:
        """Offer a batch's best ``size`` portfolios (the rest cannot enter)."""
        if not self.size:
            return
        count = min(self.size, len(fitness))
        top = np.argpartition(-fitness, count - 1)[:count] if len(fitness) > count else np.arange(len(fitness))
        for i in top[np.argsort(-fitness[top], kind="stable")].tolist():
            self.offer(float(fitness[i]), population[i])

    def portfolios(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(int(i) for i in members) for _, members in self.entries)
