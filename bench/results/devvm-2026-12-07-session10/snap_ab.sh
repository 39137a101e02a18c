#!/bin/bash
# usage: snap_ab.sh: the 10k-stream drain on Kafka with the default snapshot interval (5 s) and with
# snapshots practically off (600 s), alternately, two pairs
HERE=$(cd "$(dirname "$0")" && pwd)
for i in 1 2; do for v in 5 600; do
  echo "== interval $v pair $i $(date +%T)"
  (cd "$HERE/../../.." && SEQSTREAM_SNAPSHOT_INTERVAL_S=$v .venv/bin/python -m stream.cli bench --quick --demo-mix 0 --rounds 3 --batch-max 4096 --no-exactly-once \
    --latency-seconds 0 --step-batches --memory-streams --cell gru --hidden 64 --streams 10000 --events 200000 \
    --broker-kind kafka 2>&1 | grep -E 'seqstream / pipelined|"scenario": "(raw_passthrough|seqstream)"' | python3 "$HERE/fmt.py")
done; done
