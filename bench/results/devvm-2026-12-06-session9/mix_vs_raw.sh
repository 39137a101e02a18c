#!/bin/bash
# usage: bench/results/devvm-2026-12-06-session9/mix_vs_raw.sh ROUNDS [FETCH_WAIT_MS]
# alternating rounds on Kafka: the seqstream demo mix, then the raw pass-through at the same rates
cd "$(dirname "$0")/../../.."
W=${2:-30}
for i in $(seq 1 "${1:-3}"); do
  echo "round $i seqstream $(SEQSTREAM_FETCH_MAX_WAIT_MS=$W .venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))" 2>/dev/null | tail -1)"
  echo "round $i raw $(.venv/bin/python bench/results/devvm-2026-12-06-session9/raw_mix.py 30 10 "$W" 2>/dev/null | tail -1)"
done
