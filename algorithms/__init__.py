"""Search algorithms over portfolios. Knows nothing of files, SQL or HTTP.

``REGISTRY`` maps the ``[ALGORITHMS] use_…`` flag of each implemented algorithm to its
class; adding an algorithm is adding a module and a line here.
"""

from algorithms.base import Algorithm, FailedRun, RunResult, run_algorithm
from algorithms.hill_climbing import HillClimbing
from algorithms.random_search import RandomSearch

REGISTRY: dict[str, type] = {
    "use_hill_climbing": HillClimbing,
    "use_random_search": RandomSearch,
}

__all__ = ["REGISTRY", "Algorithm", "FailedRun", "RunResult", "run_algorithm"]
