#!/usr/bin/env bash
# Install Heavy Optimizer with its dev tools into .venv and run lint, types and the whole test suite.
# Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
bash "$(dirname "${BASH_SOURCE[0]}")/system-deps.sh"
.venv/bin/python -m pip install --quiet -e ".[dev,distributed]"
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports  # one-way layers: the contract in pyproject.toml
.venv/bin/python -m pytest "$@"
