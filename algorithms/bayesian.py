"""Bayesian optimisation: a Bayesian linear surrogate over membership, batch Thompson sampling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import ndtri

from algorithms.guide import Guide
from algorithms.operators import random_subsets, top_k_by_key
from algorithms.problem import Evaluator
from algorithms.sparse_kernels import csc_matvec, csr_matvec

REPLACEMENT_TRIES = 20  # random draws per duplicate proposal before giving up on finding an unseen one
CG_RTOL = 1e-5  # SciPy's default: stop once ‖r‖ < 1e-5·‖b‖


class _Design:
    """The (P, S) 0/1 membership matrix of the evaluated portfolios, in CSR form, multiplied by
    SciPy's kernels (:mod:`algorithms.sparse_kernels`): the same sums, in the same order, as
    ``csr_matrix @ w`` and ``csr_matrix.T @ r``, without the classes' checks on every product."""

    def __init__(self, portfolios: np.ndarray, strategies: int, ones: np.ndarray | None = None) -> None:
        count, size = portfolios.shape
        self.shape = (count, strategies)
        self.starts = np.arange(0, count * size + 1, size, dtype=np.int64)
        self.members = np.ascontiguousarray(portfolios, dtype=np.int64).ravel()
        self.ones = np.ones(self.members.size) if ones is None else ones[: self.members.size]

    def times(self, w: np.ndarray) -> np.ndarray:
        """``M @ w``, shape (P,)."""
        out = np.zeros(self.shape[0])
        csr_matvec(*self.shape, self.starts, self.members, self.ones, w, out)
        return out

    def transpose_times(self, r: np.ndarray) -> np.ndarray:
        """``Mᵀ @ r``, shape (S,)."""
        out = np.zeros(self.shape[1])
        csc_matvec(self.shape[1], self.shape[0], self.starts, self.members, self.ones, r, out)
        return out


class _History:
    """Every portfolio evaluated so far and its fitness, in arrays allocated once for the whole
    budget (a refit reads a prefix, not a fresh concatenation of all batches), with each
    strategy's count of appearances kept up to date."""

    def __init__(self, capacity: int, size: int, strategies: int) -> None:
        self.members = np.empty((capacity, size), dtype=np.int64)
        self.fitness = np.empty(capacity)
        self.counts = np.zeros(strategies, dtype=np.int64)
        self.ones = np.ones(capacity * size)
        self.count = 0

    def add(self, portfolios: np.ndarray, fitness: np.ndarray) -> None:
        end = self.count + len(portfolios)
        self.members[self.count : end] = portfolios
        self.fitness[self.count : end] = fitness
        self.counts += np.bincount(portfolios.ravel(), minlength=len(self.counts))
        self.count = end

    def design(self) -> _Design:
        return _Design(self.members[: self.count], len(self.counts), self.ones)


def conjugate_gradients(
    matvec: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    start: np.ndarray,
    iterations: int,
    inverse_diagonal: np.ndarray | None,
) -> np.ndarray:
    """``scipy.sparse.linalg.cg(A, b, x0=start, maxiter=iterations, M=diag(inverse_diagonal))``
    step for step (SciPy 1.12 and later; tested against it): at most ``iterations`` steps of
    (Jacobi-preconditioned) conjugate gradients from ``start``, stopping once ‖r‖ < 1e-5·‖b‖."""
    x = np.array(start, dtype=np.float64)
    tolerance = CG_RTOL * float(np.linalg.norm(b))
    if tolerance == 0:
        return b.copy()
    r = b - matvec(x) if x.any() else b.copy()
    rho_prev = 1.0
    p = np.empty_like(r)
    for step in range(iterations):
        if np.linalg.norm(r) < tolerance:
            break
        z = r if inverse_diagonal is None else inverse_diagonal * r
        rho = np.dot(r, z)
        if step > 0:
            p *= rho / rho_prev
            p += z
        else:
            p[:] = z
        q = matvec(p)
        alpha = rho / np.dot(p, q)
        x += alpha * p
        r -= alpha * q
        rho_prev = rho
    return x


@dataclass(frozen=True)
class BayesianOptimization:
    """Model-based search (BOCS-style, with a first-order model).

    Surrogate: ``z(P) = Σ_{j∈P} w_j + ε``, ε ~ N(0, σ²), over the membership of evaluated
    portfolios, ``z`` the normal scores of the fitness ranks (centred, and a few extreme
    ``ratio`` values cannot dominate), with the ridge prior ``w_j ~ N(0, σ²/λ)``. The posterior mean is the ridge
    solution, by conjugate gradients warm-started from the last round and preconditioned by the
    Gram matrix's diagonal (each strategy's count + λ); the posterior
    variance is taken diagonal, ``σ²/(count_j + λ)``.

    Acquisition: batch Thompson sampling. Each proposal draws ``w̃`` from the posterior and
    maximises ``Σ_{j∈P} w̃_j`` exactly — the top n of ``w̃`` — either over a global pool
    (the strategies with the best posterior means plus as many random ones, whose draws come
    from the prior: exploration) or inside a trust region around the incumbent (swap out its
    1…``max_swaps`` members with the lowest draws for the pool's best). Proposals already
    evaluated are replaced by random portfolios, so no evaluation is spent twice. Each batch
    is evaluated at once and the model refitted; a batch is ``batch_size`` proposals or
    ``batch_growth`` times the portfolios evaluated so far, whichever is more.
    """

    initial_fraction: float = 0.1
    batch_size: int = 250
    batch_growth: float = 0.05  # a batch is at least this share of the portfolios evaluated so far
    prior_precision: float = 1.0
    local_fraction: float = 0.5
    max_swaps: int = 3
    pool_factor: int = 4
    cg_iterations: int = 10
    precondition: bool = True  # Jacobi-preconditioned CG (false: plain CG, as before issue #14)
    name: ClassVar[str] = "bayesian_optimization"
    section: ClassVar[str] = "BAYESIAN_OPTIMIZATION"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {
        "initial_fraction": (0.0, 1.0),
        "batch_size": (1, None),
        "batch_growth": (0.0, None),
        "prior_precision": (1e-9, None),
        "local_fraction": (0.0, 1.0),
        "max_swaps": (1, None),
        "pool_factor": (1, None),
        "cg_iterations": (1, None),
    }

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        strategies, size = problem.n_strategies, problem.size
        initial = min(max(self.batch_size, int(self.initial_fraction * evaluator.budget)), evaluator.remaining)
        guide = problem.guide
        first = guide.subsets(rng, size, initial) if guide else random_subsets(rng, strategies, size, initial)
        history = _History(evaluator.remaining, size, strategies)
        history.add(first, evaluator.evaluate(first))
        known = {row.tobytes() for row in first}
        weights = np.zeros(strategies)
        while (left := evaluator.remaining) > 0:
            weights, spread = self._fit(history, weights)
            # Each refit costs CG steps over every portfolio seen so far: batches that grow with the
            # data refit less often once much has been seen.
            batch = min(max(self.batch_size, int(self.batch_growth * history.count)), left)
            local = round(batch * self.local_fraction) if size < strategies else 0
            incumbent = history.members[int(np.argmax(history.fitness[: history.count]))]
            pool = self._pool(rng, weights, size, strategies, guide)
            proposals = [self._global(rng, weights, spread, pool, size, batch - local)]
            if local:
                proposals.append(self._local(rng, weights, spread, pool, incumbent, local, strategies))
            batch_portfolios = self._unseen(rng, np.concatenate(proposals), known, strategies)
            if len(batch_portfolios) == 0:
                return  # every portfolio within reach has been evaluated
            history.add(batch_portfolios, evaluator.evaluate(batch_portfolios))

    def _unseen(
        self, rng: np.random.Generator, proposals: np.ndarray, known: set[bytes], strategies: int
    ) -> np.ndarray:
        """Drop proposals already evaluated (or repeated in the batch); random portfolios take their place."""
        rows = []
        for row in proposals:
            key = row.tobytes()
            if key not in known:
                known.add(key)
                rows.append(row)
        # Random replacements, with a bounded number of tries: a small universe can run out of
        # portfolios not yet seen, and then the batch is simply shorter (or empty: search over).
        tries = REPLACEMENT_TRIES * len(proposals)
        while len(rows) < len(proposals) and tries > 0:
            tries -= 1
            row = random_subsets(rng, strategies, proposals.shape[1], 1)[0]
            if row.tobytes() not in known:
                known.add(row.tobytes())
                rows.append(row)
        return np.array(rows, dtype=np.int64).reshape(len(rows), proposals.shape[1])

    def _fit(self, history: _History, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (ridge by CG) and diagonal posterior standard deviation, shape (S,) each."""
        count = history.count
        ranks = np.empty(count)
        ranks[np.argsort(history.fitness[:count], kind="stable")] = np.arange(count)
        target = ndtri((ranks + 0.5) / count)
        design = history.design()
        # Jacobi preconditioner: the Gram matrix's diagonal is each strategy's count plus λ, and the
        # counts spread widely (guided draws favour some strategies), which slows plain CG.
        diagonal = history.counts + self.prior_precision
        mean = conjugate_gradients(
            lambda w: design.transpose_times(design.times(w)) + self.prior_precision * w,
            design.transpose_times(target),
            start,
            self.cg_iterations,
            1.0 / diagonal if self.precondition else None,
        )
        residual = target - design.times(mean)
        noise = max(float(residual @ residual) / max(count - 1, 1), 1e-6)
        return mean, np.sqrt(noise / diagonal)

    def _pool(
        self, rng: np.random.Generator, weights: np.ndarray, size: int, strategies: int, guide: Guide | None
    ) -> np.ndarray:
        """Candidates: the best posterior means and as many random strategies (from the guide, or
        uniform), shape (M,)."""
        width = min(self.pool_factor * size, strategies)
        best = np.argpartition(-weights, width - 1)[:width]
        fresh = guide.draw(rng, width, size) if guide else rng.integers(0, strategies, width)
        return np.unique(np.concatenate([best, fresh]))

    def _global(
        self, rng: np.random.Generator, mean: np.ndarray, spread: np.ndarray, pool: np.ndarray, size: int, count: int
    ) -> np.ndarray:
        if count == 0:
            return np.empty((0, size), dtype=np.int64)
        draws = mean[pool] + spread[pool] * rng.standard_normal((count, pool.size))
        return top_k_by_key(np.broadcast_to(pool, draws.shape), draws, size)

    def _local(
        self,
        rng: np.random.Generator,
        mean: np.ndarray,
        spread: np.ndarray,
        pool: np.ndarray,
        incumbent: np.ndarray,
        count: int,
        strategies: int,
    ) -> np.ndarray:
        size = incumbent.size
        outside = pool[~np.isin(pool, incumbent)]
        if outside.size == 0:
            outside = np.setdiff1d(np.arange(strategies), incumbent)
        most = min(self.max_swaps, outside.size, size)
        swaps = rng.integers(1, most + 1, size=count)
        keep = mean[incumbent] + spread[incumbent] * rng.standard_normal((count, size))
        enter = mean[outside] + spread[outside] * rng.standard_normal((count, outside.size))
        # Row i's `swaps[i]` lowest keep draws leave and its `swaps[i]` highest enter draws come in:
        # thresholds from a partial sort of the `most` extremes (the draws are continuous: no ties).
        lowest = np.sort(np.partition(keep, most - 1, axis=1)[:, :most], axis=1)
        highest = -np.sort(np.partition(-enter, most - 1, axis=1)[:, :most], axis=1)
        picked = np.arange(count), swaps - 1
        members = np.broadcast_to(incumbent, (count, size))
        # incumbent and outside are disjoint and each distinct: every candidate is distinct.
        candidates = np.concatenate([members, np.broadcast_to(outside, (count, outside.size))], axis=1)
        keys = np.concatenate(
            [
                np.where(keep <= lowest[picked][:, None], -1.0, 1.0),
                np.where(enter >= highest[picked][:, None], 0.5, -np.inf),
            ],
            axis=1,
        )
        return top_k_by_key(candidates, keys, size)
