#!/usr/bin/env bash
# The end-to-end benchmark on a machine with more cores (the lent GPU machine has 16) where the
# load generator, the reader, Tansu and the engine each get a core of their own. Needs python3 with
# torch and numpy; the other packages travel as wheels in .devbench/whl and Tansu as .devbench/tansu.xz
# (see docs/benchmarks.md for how to fill .devbench). Writes JSON lines and logs under ${OUT:-artifacts/e2e}.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-artifacts/e2e}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .devbench/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devbench/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
if [ -f .devbench/tansu.xz ]; then
  xz -dc .devbench/tansu.xz >/tmp/tansu && chmod +x /tmp/tansu && export SEQSTREAM_TANSU_BIN=/tmp/tansu
fi
{ nproc; python3 -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__)"; } | tee "$out/machine.txt"
rc=0
for inflight in ${INFLIGHTS:-2 1}; do
  SEQSTREAM_INFLIGHT_BATCHES=$inflight timeout "${BENCH_TIMEOUT:-200}" python3 -m stream.tools.bench \
    --memory-streams --step-batches 1024 4096 --latency-seconds "${LATENCY_SECONDS:-8}" \
    --json-out "$out/e2e_inflight$inflight.jsonl" 2>&1 | tee "$out/e2e_inflight$inflight.log" || rc=1
done
exit $rc
