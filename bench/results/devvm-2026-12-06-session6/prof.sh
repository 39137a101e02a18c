#!/bin/bash
# usage: OUT=DIR bench/results/devvm-2026-12-06-session6/prof.sh; then pyspy_aggregate.py DIR/prof.raw
# demo mix on Kafka with py-spy on the worker
cd /work/main
.venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 40, 10))" > ${OUT:-/tmp}/mix.txt 2>&1 &
MIX=$!
for i in $(seq 1 120); do
  PID=$(pgrep -f "seqstream.*worker|stream.cli.*worker" | head -1)
  [ -n "$PID" ] && break; sleep 1
done
echo "worker pid $PID"
sleep 25
.venv/bin/py-spy record -r 200 -d 20 -f raw -o ${OUT:-/tmp}/prof.raw --pid $PID --nonblocking > ${OUT:-/tmp}/spy.log 2>&1
wait $MIX
cat ${OUT:-/tmp}/mix.txt | tail -3
