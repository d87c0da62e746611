"""Binary particle swarm over strategy membership, with velocities kept sparse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.operators import first_occurrences, random_subsets, top_k_by_key
from algorithms.problem import Evaluator

_BITS = np.arange(8)  # membership bits: 1 position (x), 2 personal best (p), 4 global best (g)
TOWARD_PERSONAL = (((_BITS >> 1) & 1) - (_BITS & 1)).astype(np.float64)  # p − x
TOWARD_GLOBAL = (((_BITS >> 2) & 1) - (_BITS & 1)).astype(np.float64)  # g − x


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
        velocity = np.zeros(swarm * strategies, dtype=np.float32)  # (swarm, S) tables, flat: one take per lookup
        updated = np.zeros(swarm * strategies, dtype=np.int32)
        offsets = (np.arange(swarm) * strategies)[:, None]
        flags = np.zeros(swarm * strategies, dtype=np.uint8)  # scratch: 1 position, 2 personal best, 4 global best

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
            at = offsets + candidates  # each candidate's place in the flat tables
            # Membership of each candidate in the position (x), personal best (p) and global best (g).
            held = [offsets + position, offsets + personal, offsets + best]
            for bit, places in zip((1, 2, 4), held, strict=True):
                flags[places] |= bit
            found = flags[at]
            for places in held:
                flags[places] = 0
            unique = first_in_blocks(candidates, found, size)
            v = velocity[at] * decay[step - updated[at]]
            # (p − x) and (g − x) of each candidate, looked up by its membership bits.
            v += (
                self.cognitive * rng.random(v.shape) * TOWARD_PERSONAL[found]
                + self.social * rng.random(v.shape) * TOWARD_GLOBAL[found]
            )
            np.clip(v, -self.max_velocity, self.max_velocity, out=v)
            first = at[unique]
            velocity[first] = v[unique]
            updated[first] = step
            # n draws without replacement ∝ sigmoid(v): Gumbel-top-k on log-probabilities. −log sigmoid(v) is
            # max(−v, 0) + log1p(e^−|v|): np.logaddexp(0, −v) to the last bit or two, safe at any velocity
            # bound, at a tenth of its cost on these arrays. A Gumbel variate is −log of a standard exponential.
            softplus = np.maximum(-v, 0.0) + np.log1p(np.exp(-np.abs(v)))
            keys = -self.selectivity * softplus - np.log(rng.standard_exponential(v.shape))
            keys[~unique] = -np.inf
            count = min(swarm, left)
            position = top_k_by_key(candidates, keys, size)
            fitness = evaluator.evaluate(position[:count])
            better = fitness > personal_fit[:count]
            personal[:count][better] = position[:count][better]
            personal_fit[:count][better] = fitness[better]
            if count < swarm:
                return


def first_in_blocks(candidates: np.ndarray, found: np.ndarray, size: int) -> np.ndarray:
    """``first_occurrences(candidates)`` for rows made of the position, the personal best and the
    global best (``size`` distinct strategies each) and then fresh draws, from ``found``: each
    candidate's membership bits (1 position, 2 personal best, 4 global best). A strategy in a
    later block repeats an earlier block's exactly when it carries an earlier block's bit; only
    the few fresh draws need sorting among themselves. bool, shape of ``candidates``.
    """
    unique = np.ones(candidates.shape, dtype=bool)
    unique[:, size : 2 * size] = (found[:, size : 2 * size] & 1) == 0
    unique[:, 2 * size : 3 * size] = (found[:, 2 * size : 3 * size] & 3) == 0
    unique[:, 3 * size :] = (found[:, 3 * size :] == 0) & first_occurrences(candidates[:, 3 * size :])
    return unique
