#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session9/mix_ab.sh BASE_TREE [rounds] [NEW_TREE]
# the demo mix on Kafka (no raw twin), alternating a base tree and a new one (default: this tree), 30 s
# window after a 10 s warm-up; python -c runs import the tree they run in (the venv is this tree's)
BASE=${1:?base tree}; ROUNDS=${2:-3}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
NEW=${3:-$NOW}
for r in $(seq 1 "$ROUNDS"); do
  for tree in "$BASE" "$NEW"; do
    echo "== $tree kafka round $r $(date +%T)"
    (cd "$tree" && "$NOW/.venv/bin/python" -c \
      "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10, raw=False))" 2>&1 | tail -1)
  done
done
