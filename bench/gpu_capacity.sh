#!/usr/bin/env bash
# Issue 20 on a CUDA machine, one call of under 8 minutes: per-card capacity of every source (fp32 and
# bf16), the GRU-128 step at 1M-4M resident streams, the five sources together, the host side and the
# device-vs-CPU equality guard (bench/gpu_capacity.py). Needs python3 with torch and numpy; the other
# packages travel as wheels in .devbench/whl (docs/benchmarks.md, "Per card"). Extra arguments go to
# the script (e.g. --sources audio). Writes logs under ${OUT:-artifacts/gpu}.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-artifacts/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if [ -d .devbench/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devbench/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__)"; } | tee "$out/machine.txt"
python3 bench/gpu_capacity.py --budget-s "${BUDGET_S:-420}" "$@" 2>&1 | tee "$out/gpu_capacity.log"
rc=${PIPESTATUS[0]}
grep '^{' "$out/gpu_capacity.log" >"$out/gpu_capacity.jsonl"
exit "$rc"
