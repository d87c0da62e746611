"""Binary particle swarm over strategy membership, with velocities kept sparse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.operators import first_occurrences, random_subsets, top_k_by_key
from algorithms.problem import Evaluator


@dataclass(frozen=True)
class ParticleSwarm:
    """Binary PSO (Kennedy & Eberhart) with inertia, for n-member sets.

    Each particle has a velocity per strategy; ``v ← w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x)``
    (indicator vectors), clipped to ±``max_velocity``; the next position is n strategies drawn
    without replacement with probability ∝ sigmoid(v)^κ (κ = ``selectivity``; classic binary
    PSO has κ = 1, where a strategy at full speed is only 1.9× as likely as an untouched one,
    and the velocity hardly steers the swarm). Only strategies in the particle's
    position, its personal best, the global best, or ``explore`` fresh random ones can change
    or be drawn in an iteration; every other velocity only decays, so it is applied lazily
    (``w`` raised to the iterations since its last update) and an untouched strategy stays at
    v = 0 (probability ½), which the fresh random draws stand for.
    """

    swarm_size: int = 40
    inertia: float = 0.7
    cognitive: float = 1.5
    social: float = 1.5
    max_velocity: float = 3.0
    explore: float = 0.5  # fresh random candidates per particle, as a multiple of n
    selectivity: float = 16.0  # κ: draw ∝ sigmoid(v)^κ; 1 is classic BPSO, larger trusts the velocity more
    name: ClassVar[str] = "particle_swarm"
    section: ClassVar[str] = "PARTICLE_SWARM"
    bounds: ClassVar[dict[str, tuple[float, float | None]]] = {
        "swarm_size": (2, None),
        "inertia": (0.0, 1.0),
        "cognitive": (0.0, None),
        "social": (0.0, None),
        "max_velocity": (0.1, None),
        "explore": (0.0, None),
        "selectivity": (0.1, 50.0),
    }

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        problem = evaluator.problem
        strategies, size = problem.n_strategies, problem.size
        swarm = min(self.swarm_size, evaluator.remaining)
        guide = problem.guide
        position = guide.subsets(rng, size, swarm) if guide else random_subsets(rng, strategies, size, swarm)
        fitness = evaluator.evaluate(position)
        personal, personal_fit = position.copy(), fitness.copy()
        velocity = np.zeros((swarm, strategies), dtype=np.float32)
        updated = np.zeros((swarm, strategies), dtype=np.int32)
        rows = np.arange(swarm)[:, None]
        inside = np.zeros((swarm, strategies), dtype=bool)  # scratch membership table, left all False

        def members(sets: np.ndarray, queries: np.ndarray) -> np.ndarray:
            inside[rows, sets] = True
            found = inside[rows, queries].astype(np.float64)
            inside[rows, sets] = False
            return found

        fresh = max(round(self.explore * size), 1)
        # w^k for every k a velocity can have waited (a table lookup instead of a power per candidate).
        decay = self.inertia ** np.arange(evaluator.budget // swarm + 2, dtype=np.float64)
        step = 0
        while (left := evaluator.remaining) > 0:
            step += 1
            best = personal[int(np.argmax(personal_fit))]
            candidates = np.concatenate(
                [
                    position,
                    personal,
                    np.broadcast_to(best, position.shape),
                    guide.draw(rng, swarm * fresh, size).reshape(swarm, fresh)
                    if guide
                    else rng.integers(0, strategies, (swarm, fresh)),
                ],
                axis=1,
            )
            unique = first_occurrences(candidates)
            v = velocity[rows, candidates] * decay[step - updated[rows, candidates]]
            x = members(position, candidates)
            p = members(personal, candidates)
            g = members(np.broadcast_to(best, position.shape), candidates)
            v += self.cognitive * rng.random(v.shape) * (p - x) + self.social * rng.random(v.shape) * (g - x)
            np.clip(v, -self.max_velocity, self.max_velocity, out=v)
            r, c = np.nonzero(unique)
            velocity[r, candidates[r, c]] = v[r, c]
            updated[r, candidates[r, c]] = step
            # n draws without replacement ∝ sigmoid(v): Gumbel-top-k on log-probabilities.
            # A Gumbel variate is −log of a standard exponential one (one logarithm instead of two).
            keys = -self.selectivity * np.logaddexp(0.0, -v) - np.log(rng.standard_exponential(v.shape))
            keys[~unique] = -np.inf
            count = min(swarm, left)
            position = top_k_by_key(candidates, keys, size)
            fitness = evaluator.evaluate(position[:count])
            better = fitness > personal_fit[:count]
            personal[:count][better] = position[:count][better]
            personal_fit[:count][better] = fitness[better]
            if count < swarm:
                return
