#!/usr/bin/env bash
# The GPU check (issue #18), as one prepared script for a lent GPU machine (the device tool's H200):
#   bash scripts/gpu-check.sh [OUT_DIR]        # OUT_DIR: $OUT there, else /tmp/gpu-check
# That machine has no network and no duckdb, deap or XlsxWriter: first run scripts/gpu-wheels.sh
# here and carry .gpu-wheels (device run: carry [".gpu-wheels"]). Every step has its own time limit
# and its output file; a failing step does not stop the next (no set -e). FULL=1 adds the default
# job (sizes 35..100) on CuPy. On a machine without a GPU it runs through, the GPU steps skipping
# or falling back with their reason: the dry run.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$out"
py=${PYTHON:-python3}
case $py in /*) ;; */*) py="$PWD/$py" ;; esac  # the jobs below run in a scratch folder
export PYTHONUNBUFFERED=1
log() { echo "== $(date +%T) $*" | tee -a "$out/steps.txt"; }

log "environment"
{ nvidia-smi; $py --version; $py -m pip list 2>/dev/null | grep -i -E "^(cupy|numpy|scipy|duckdb|deap|xlsxwriter) "; } >"$out/env.txt" 2>&1
if compgen -G ".gpu-wheels/*.whl" >/dev/null; then
  log "installing the carried wheels into .gpu-site"
  $py -m pip install --quiet --no-index --no-deps --target .gpu-site .gpu-wheels/*.whl >"$out/install.txt" 2>&1
  export PYTHONPATH="$PWD/.gpu-site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
timeout 60 $py -W error -c "import cupy, cupyx.scipy.sparse; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" >"$out/import.txt" 2>&1
log "import smoke test: rc $? ($(tail -1 "$out/import.txt"))"

timeout 150 $py scripts/gpu_smoke.py >"$out/smoke.txt" 2>&1
log "smoke script: rc $?"

timeout 300 $py -m pytest -p no:cacheprovider -m gpu -W default -rA tests/optimizer/test_gpu.py tests/algorithms/test_guide.py >"$out/pytest-gpu.txt" 2>&1
log "pytest -m gpu: rc $? ($(tail -1 "$out/pytest-gpu.txt"))"

timeout 300 $py -m cli bench --seeds 0 --json "$out/bench.json" >"$out/bench.txt" 2>&1
log "heavyopt bench --seeds 0: rc $?"

work=$(mktemp -d)
timeout 60 $py -m cli generate "$work/demo.csv" --strategies 25544 --days 82 --seed 1 >"$out/generate.txt" 2>&1
( cd "$work" && /usr/bin/time -f "%e s wall, %M KB" timeout 240 $py -m cli run demo.csv -q --set COMPUTE.backend=cupy \
    --set PORTFOLIO.max_size=35 --out "$work/one" --set DATABASE.data_dir="$work/data1" ) >"$out/one-size.txt" 2>&1
log "one size (35) on CuPy: rc $? ($(tail -1 "$out/one-size.txt"))"
cp "$work"/one/run_*/execution_summary.json "$out/one-size-summary.json" 2>/dev/null
if [ "${FULL:-0}" = 1 ]; then
  ( cd "$work" && /usr/bin/time -f "%e s wall, %M KB" timeout 420 $py -m cli run demo.csv -q --set COMPUTE.backend=cupy \
      --out "$work/full" --set DATABASE.data_dir="$work/data2" ) >"$out/default-job.txt" 2>&1
  log "default job on CuPy: rc $? ($(tail -1 "$out/default-job.txt"))"
  cp "$work"/full/run_*/execution_summary.json "$out/default-job-summary.json" 2>/dev/null
fi
rm -rf "$work"
log "done; outputs in $out"
