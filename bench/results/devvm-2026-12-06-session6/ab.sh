#!/bin/bash
# demo mix A/B: base worktree vs main, alternating; Kafka x2, Tansu x1
for r in 1 2; do
 for t in /tmp/s6/base /work/main; do
  echo "== $t kafka round $r $(date +%T)"
  (cd $t && /work/main/.venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))" 2>&1 | tail -1)
 done
done
for t in /tmp/s6/base /work/main; do
  echo "== $t tansu $(date +%T)"
  (cd $t && /work/main/.venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('tansu', None, 30, 10))" 2>&1 | tail -1)
done
echo DONE
