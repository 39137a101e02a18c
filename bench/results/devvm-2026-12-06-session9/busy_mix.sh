#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session9/busy_mix.sh BASE_TREE NEW_TREE [rounds] [busy]
# the demo mix on Kafka beside BUSY (default 2) processes that spin a core each, alternating two trees:
# does the worker keep up (lag at the end, p99, events/s against the target)?
BASE=${1:?base tree}; NEW=${2:?new tree}; ROUNDS=${3:-1}; BUSY=${4:-2}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
for r in $(seq 1 "$ROUNDS"); do
  for tree in "$BASE" "$NEW"; do
    pids=""
    for b in $(seq 1 "$BUSY"); do (while :; do :; done) & pids="$pids $!"; done
    echo "== $tree kafka round $r, $BUSY busy $(date +%T)"
    (cd "$tree" && "$NOW/.venv/bin/python" -c \
      "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10, raw=False))" 2>&1 | tail -1)
    kill $pids
  done
done
