"""An algorithm that kills its own process: importable by spawned pool workers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from algorithms.problem import Evaluator


@dataclass(frozen=True)
class KillsItsWorker:
    name: ClassVar[str] = "kills_its_worker"

    def search(self, evaluator: Evaluator, rng: np.random.Generator) -> None:
        os._exit(3)  # as a segfault or the OOM killer would end it: no exception, no cleanup
