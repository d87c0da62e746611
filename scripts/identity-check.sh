#!/usr/bin/env bash
# Same seed, same outputs: run one 35..40 job (seed 7, job id identity-check) with the code at
# BASE (default HEAD~1) and with the working tree, on the same generated 25,544 × 82 file, and
# compare every output (scripts/compare_runs.py). Exit 0: identical apart from timings.
# Usage: bash scripts/identity-check.sh [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-HEAD~1}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --quiet --detach "$work/base" "$base"
.venv/bin/heavyopt generate "$work/in.csv" --strategies 25544 --days 82 --seed 1 >/dev/null
cat > "$work/run.py" <<'PY'
import sys
from pathlib import Path


def main() -> None:
    from optimizer.config import load_config
    from optimizer.pipeline import run_job

    csv, out, data = sys.argv[1:4]
    config = load_config(overrides=["PORTFOLIO.max_size=40", "GENERAL.seed=7", f"DATABASE.data_dir={data}"], environ={})
    run_job(csv, config, out_dir=Path(out), job_id="identity-check")


if __name__ == "__main__":
    main()
PY
(cd "$work/base" && PYTHONPATH="$work/base" "$OLDPWD/.venv/bin/python" "$work/run.py" "$work/in.csv" "$work/before" "$work/data")
PYTHONPATH="$PWD" .venv/bin/python "$work/run.py" "$work/in.csv" "$work/after" "$work/data"
.venv/bin/python scripts/compare_runs.py "$work/before" "$work/after"
