#!/bin/bash
for r in 1 2 3; do
 for v in "/tmp/s6/base X=1" "/work/main X=1" "/work/main SEQSTREAM_FETCH_MIN_BYTES=1"; do
  set -- $v
  echo "== $1 $2 kafka round $r $(date +%T)"
  (cd $1 && env $2 /work/main/.venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))" 2>&1 | tail -1)
 done
done
echo DONE
