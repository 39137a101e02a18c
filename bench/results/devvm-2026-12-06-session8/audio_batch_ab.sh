#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session8/audio_batch_ab.sh BASE_TREE [pairs]
# the audio source's cost per micro-batch (bench/source_batch_cost.py, one thread), base tree and this
# tree alternating
BASE=${1:?base tree}; PAIRS=${2:-3}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
for i in $(seq 1 "$PAIRS"); do
  for tree in "$BASE" "$NOW"; do
    echo "== $tree pair $i $(date +%T)"
    (cd "$tree" && PYTHONPATH="$tree" OMP_NUM_THREADS=1 "$NOW/.venv/bin/python" bench/source_batch_cost.py --sources audio \
      --batches 1 8 32 128 --phases 2>&1 | grep '^{')
  done
done
