"""``SourcePipeline.process`` in process (decode -> Runner -> encode -> explorer), no Kafka.

10k resident sensor streams of the bench's GRU-64, batches of 1/80/500/4096 records, one thread:

    .venv/bin/python bench/pipeline_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream import bench


def main() -> int:
    torch.set_num_threads(1)
    eng = bench._engine(bench._settings("127.0.0.1:1", "in", "out", 4096), "gru", 64)
    pipe = eng.pipelines["sensors"]
    rng = np.random.default_rng(0)

    def recs(n: int, k0: int) -> list[SimpleNamespace]:
        out = []
        for i in range(n):
            sid = f"s-{(k0 + i) % 10000:07d}"
            value = orjson.dumps({"stream": sid, "ts": time.time(), "values": [float(rng.standard_normal())]})
            out.append(
                SimpleNamespace(
                    topic="in", partition=i % 8, offset=k0 + i, key=sid.encode(), value=value,
                    timestamp=int(time.time() * 1000), headers=(),
                )
            )  # fmt: skip
        return out

    k = 0
    for _ in range(10):  # every stream resident
        pipe.process(recs(1000, k))
        k += 1000
    for n in (1, 80, 500, 4096):
        batches = [recs(n, k + j * n) for j in range(20)]
        k += 20 * n
        t0 = time.perf_counter()
        for b in batches:
            pipe.process(b)
        dt = (time.perf_counter() - t0) / len(batches)
        print(f"batch {n:5d}: {dt * 1e3:7.2f} ms per batch, {dt / n * 1e6:7.1f} µs per event", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
