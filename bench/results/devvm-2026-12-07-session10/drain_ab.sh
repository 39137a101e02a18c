#!/bin/bash
# usage: drain_ab.sh KIND PAIRS TREE_A TREE_B
# the 10k-stream drain of `seqstream bench` (3 rounds: raw pass-through and seqstream per round), the two
# trees alternately; prints each round's events/s, worker cores, broker cores, and the median ratio
HERE=$(cd "$(dirname "$0")" && pwd); PY="$HERE/../../../.venv/bin/python"
K=$1; P=$2; A=$3; B=$4
for i in $(seq 1 "$P"); do
 for T in $A $B; do
  echo "== $T $K pair $i $(date +%T)"
  (cd "$T" && "$PY" -m stream.cli bench --quick --demo-mix 0 --rounds 3 --batch-max 4096 --no-exactly-once \
    --latency-seconds 0 --step-batches --memory-streams --cell gru --hidden 64 --streams 10000 --events 200000 \
    --broker-kind "$K" 2>&1 | grep -E 'seqstream / pipelined|"scenario": "(raw_passthrough|seqstream)"' | python3 "$HERE/fmt.py")
 done
done
