#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session7/batch_cost_ab.sh BASE_TREE [pairs]
# each source's CPU per micro-batch (bench/source_batch_cost.py), alternating a base tree and this tree
BASE=${1:?base tree}; PAIRS=${2:-2}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
for i in $(seq 1 "$PAIRS"); do
  for tree in "$BASE" "$NOW"; do
    echo "== $tree pair $i $(date +%T)"
    (cd "$tree" && OMP_NUM_THREADS=1 PYTHONPATH="$tree" "$NOW/.venv/bin/python" bench/source_batch_cost.py \
      --batches 1 8 32 128 --warm 50 --repeats 100 2>&1 | grep -E '^\|')
  done
done
