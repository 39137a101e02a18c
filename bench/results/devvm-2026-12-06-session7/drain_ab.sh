#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session7/drain_ab.sh BASE_TREE [kafka|tansu] [pairs]
# alternating `seqstream bench` drains (3 rounds each) of a base tree and this tree, on a fresh broker each
BASE=${1:?base tree}; KIND=${2:-kafka}; PAIRS=${3:-2}
NOW=$(cd "$(dirname "$0")/../../.." && pwd)
for i in $(seq 1 "$PAIRS"); do
  for tree in "$BASE" "$NOW"; do
    echo "== $tree ($KIND) pair $i $(date +%T)"
    (cd "$tree" && "$NOW/.venv/bin/python" -m stream.cli bench --quick --demo-mix 0 --rounds 3 --batch-max 4096 \
      --no-exactly-once --latency-seconds 0 --step-batches --memory-streams --cell gru --hidden 64 \
      --streams 10000 --events 200000 --broker-kind "$KIND" 2>&1 | grep -E '"scenario": "(raw_passthrough|seqstream)"|seqstream / pipelined')
  done
done
