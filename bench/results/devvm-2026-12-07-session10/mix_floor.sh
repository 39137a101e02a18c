#!/bin/bash
# usage: bench/results/devvm-2026-12-07-session10/mix_floor.sh ROUNDS
# the demo mix with its raw floor in the same run (seqstream bench's demo_mix scenario): Kafka ROUNDS times, Tansu once
cd "$(dirname "$0")/../../.." || exit 1
for i in $(seq 1 "${1:-2}") tansu; do
  k=kafka; [ "$i" = tansu ] && k=tansu
  echo "== demo_mix $k $(date +%T)"
  .venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('$k', None, 30, 10))" 2>&1 | tail -1
done
