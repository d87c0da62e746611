"""Search algorithms over portfolios. Knows nothing of files, SQL or HTTP.

``REGISTRY`` maps each ``[ALGORITHMS] use_…`` flag to its class: a frozen dataclass of the
algorithm's own parameters (its INI section is ``cls.section``) with a ``search`` method.
Adding an algorithm is adding a module and a line here.
"""

from typing import Any

from algorithms.ant_colony import AntColony
from algorithms.base import Algorithm, FailedRun, RunResult, run_algorithm
from algorithms.bayesian import BayesianOptimization
from algorithms.differential_evolution import DifferentialEvolution
from algorithms.genetic import GeneticAlgorithm
from algorithms.hill_climbing import HillClimbing
from algorithms.particle_swarm import ParticleSwarm
from algorithms.random_search import RandomSearch
from algorithms.simulated_annealing import SimulatedAnnealing

# Values are algorithm classes (frozen dataclasses with ClassVars name, section, bounds).
REGISTRY: dict[str, Any] = {
    "use_genetic_algorithm": GeneticAlgorithm,
    "use_particle_swarm": ParticleSwarm,
    "use_simulated_annealing": SimulatedAnnealing,
    "use_differential_evolution": DifferentialEvolution,
    "use_ant_colony": AntColony,
    "use_hill_climbing": HillClimbing,
    "use_bayesian_optimization": BayesianOptimization,
    "use_random_search": RandomSearch,
}

__all__ = ["REGISTRY", "Algorithm", "FailedRun", "RunResult", "run_algorithm"]
