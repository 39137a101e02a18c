#!/usr/bin/env bash
# One short run on a CUDA machine: CUDA-vs-CPU equality, model step at 10k..4M resident streams,
# and the step micro-benchmark on CUDA. Writes logs under ${OUT:-artifacts/gpu}.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-artifacts/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
python3 bench/gpu_check.py --seconds "${SECONDS_PER_CELL:-1.0}" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
if [ -f bench/step_bench.py ]; then
  python3 bench/step_bench.py --device cuda --quick --json-out "$out/step_bench.jsonl" 2>&1 | tee "$out/step_bench.log"
fi
exit "$rc"
