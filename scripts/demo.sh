#!/usr/bin/env bash
# Install Heavy Optimizer into .venv and run a full demo job: a generated 25,544 × 82 file,
# DuckDB + NumPy, every portfolio size 35..100. Prints the run folder at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
.venv/bin/python -m pip install --quiet -e .
.venv/bin/heavyopt demo --dir demo "$@"
