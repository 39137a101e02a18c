#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session9/final_runs.sh TREE
# the demo mix with its raw floor on Kafka and on Tansu (seqstream bench's demo_mix scenario), then the
# 10k-stream drain (3 rounds) on each broker, all from TREE
TREE=${1:?tree}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$TREE" || exit 1
for k in kafka tansu; do
  echo "== demo_mix $k $(date +%T)"
  "$NOW/.venv/bin/python" -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('$k', None, 30, 10))" 2>&1 | tail -1
done
for k in kafka tansu; do
  echo "== drain $k $(date +%T)"
  "$NOW/.venv/bin/python" -m stream.cli bench --quick --demo-mix 0 --rounds 3 --batch-max 4096 --no-exactly-once \
    --latency-seconds 0 --step-batches --memory-streams --cell gru --hidden 64 --streams 10000 --events 200000 \
    --broker-kind "$k" 2>&1 | grep -E '"scenario": "(raw_passthrough|seqstream)"|seqstream / pipelined'
done
