"""A small job's settings and its summary, for the tests that run whole jobs on other backends
(``test_accelerated.py`` and ``test_gpu.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optimizer.config import load_config

SETS = ["PORTFOLIO.min_size=5", "PORTFOLIO.max_size=6", "OPTIMIZATION.evaluation_budget=300", "COMPUTE.workers=1"]


def cfg(tmp_path: Path, *extra: str) -> Any:
    return load_config(overrides=[*SETS, f"DATABASE.data_dir={tmp_path / 'data'}", *extra])


def summary(outcome: Any) -> dict[str, Any]:
    return json.loads((outcome.run_dir / "execution_summary.json").read_text())
