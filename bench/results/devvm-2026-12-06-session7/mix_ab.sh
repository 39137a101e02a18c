#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session7/mix_ab.sh BASE_TREE [rounds]
# the demo mix on Kafka, alternating a base tree and this tree (30 s window after a 10 s warm-up each)
BASE=${1:?base tree}; ROUNDS=${2:-3}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
for r in $(seq 1 "$ROUNDS"); do
  for tree in "$BASE" "$NOW"; do
    echo "== $tree kafka round $r $(date +%T)"
    (cd "$tree" && "$NOW/.venv/bin/python" -c \
      "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))" 2>&1 | tail -1)
  done
done
