#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session8/fetch_wait_ab.sh [rounds] [waits...]
# the demo mix on Kafka (30 s measured after 10 s warm-up) with the worker's fetch hold set per run,
# the waits alternating within each round
cd "$(dirname "$0")/../../.." || exit 1
ROUNDS=${1:-2}; shift; WAITS=${*:-30 50}
for i in $(seq 1 "$ROUNDS"); do
  for w in $WAITS; do
    echo "== fetch_max_wait_ms=$w round $i $(date +%T)"
    SEQSTREAM_FETCH_MAX_WAIT_MS=$w .venv/bin/python -c \
      "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))" 2>&1 | grep "^{"
  done
done
