#!/usr/bin/env bash
# Wheels for the GPU machine (no network; Python 3.12 with NumPy, SciPy, CuPy, matplotlib, typer,
# rich, pytest … but no duckdb, deap or XlsxWriter): downloads them into .gpu-wheels (git-ignored),
# which `scripts/gpu-check.sh` installs there. Run here, where PyPI is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-wheels
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest .gpu-wheels \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  "deap>=1.4" "XlsxWriter>=3.1" "duckdb>=1.1"
ls -la .gpu-wheels
