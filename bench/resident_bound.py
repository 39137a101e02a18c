"""Cost of a micro-batch of new streams once the resident bound is full (streams get parked).

    .venv/bin/python bench/resident_bound.py --streams 1000000

The bench pipeline (GRU-64 sensors, explorer off) with ``max_resident_streams = N`` is filled with
N streams, then gets batches of ``--batch`` streams it has never seen: each batch parks as many
least-recently-used streams as it brings in. Prints the median ms per ``SourcePipeline.process``
and per ``SourcePipeline._prepare`` (where the parking happens) over ``--rounds`` batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import orjson
import torch

from stream.tools.bench import drain as bench  # its _settings and _engine: the bench pipeline


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=200_000, help="the resident bound, filled before timing")
    p.add_argument("--batch", type=int, default=1024, help="new streams per timed batch")
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    n, b = args.streams, args.batch
    s = bench._settings("127.0.0.1:1", "in", "out", 4096, max_resident_streams=n, explorer_points=0)
    pipe = bench._engine(s, "gru", 64).pipelines["sensors"]
    offset = 0

    def batch(first: int, count: int, t: float) -> list[Any]:
        nonlocal offset
        out = []
        for j in range(first, first + count):
            sid, offset = f"s{j}", offset + 1
            value = orjson.dumps({"stream": sid, "ts": t, "values": [0.5]})
            rec = dict(topic="in", partition=0, offset=offset, key=sid.encode(), value=value, timestamp=int(t * 1000))
            out.append(SimpleNamespace(**rec, headers=()))
        return out

    t = 1.7e9
    for first in range(0, n, 4096):  # fill the bound
        pipe.process(batch(first, min(4096, n - first), t))
        t += 1.0
    prep: list[float] = []
    orig = pipe._prepare

    def timed(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return orig(*a, **kw)
        finally:
            prep.append(time.perf_counter() - t0)

    pipe._prepare = timed  # type: ignore[method-assign]
    total: list[float] = []
    for r in range(args.rounds):
        recs = batch(n + r * b, b, t)
        t += 1.0
        t0 = time.perf_counter()
        pipe.process(recs)
        total.append(time.perf_counter() - t0)
    print(
        f"resident bound {n:,} (resident {len(pipe.runner.slab):,}, parked {pipe.parked_total:,}): "
        f"batch of {b} new streams: process {np.median(total) * 1e3:.1f} ms, "
        f"_prepare {np.median(prep) * 1e3:.1f} ms (median of {args.rounds})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
