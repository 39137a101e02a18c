#!/bin/bash
# usage: mixvar.sh "ENV=.. ENV=.." ... ; one demo_mix (Kafka, 30 s) per argument
cd ${TREE:-/work/main}
for v in "$@"; do
  echo "== $v $(date +%T)"
  env $v /work/main/.venv/bin/python -c "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))" 2>&1 | tail -1
done
