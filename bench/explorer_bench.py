"""Feeding cost per event and memory per stream of a full explorer ``RingStore`` (was ``python -m stream.explorer``).

One store of ``--streams`` rows is filled once (every stream takes its row), then fed ``--batches``
batches of ``--batch`` events per (points, features) pair; the table is the one in
``docs/benchmarks.md`` ("Explorer ring buffer"):

    .venv/bin/python bench/explorer_bench.py --points 64 256 1024     # 4096 streams, batches of 1024, F = 1, 2, 8

``bench/explorer_ab.py`` compares ``RingStore.record`` of the working tree with a git revision's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.explorer import RingStore


def _fake_results(rng: np.random.Generator, n: int, features: int) -> Any:
    return SimpleNamespace(
        accepted=np.ones(n, bool),
        prediction=rng.standard_normal((n, features)).astype(np.float32),
        expected=rng.standard_normal((n, features)).astype(np.float32),
        score=rng.random(n).astype(np.float32),
        anomaly=rng.random(n) < 0.01,
        transition=np.zeros(n, np.int8),
        alerts=[],
        reason=[None] * n,
    )


def bench(
    streams: int = 4096, batch: int = 1024, points: int = 256, features: int = 1, batches: int = 2000
) -> dict[str, float]:
    """Feeding cost per event and memory per stream of a full store.

    ``ns_per_event_distinct``: every stream at most once per batch (one event per stream per
    round); ``ns_per_event_random``: stream ids drawn at random, so batches repeat streams.
    """
    import tracemalloc

    rng = np.random.default_rng(0)
    ids = [f"stream-{i:06d}" for i in range(streams)]
    tracemalloc.start()
    store = RingStore("bench", n_features=features, points=points, max_streams=streams, initial_rows=streams)
    for a in range(0, streams, batch):  # fill every row once (taking a row is a one-off per stream)
        chunk = ids[a : a + batch]
        n = len(chunk)
        store.record(chunk, np.zeros(n), np.zeros((n, features), np.float32), _fake_results(rng, n, features))
    mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    out: dict[str, float] = {
        "streams": streams,
        "points": points,
        "features": features,
        "batch": batch,
        "array_bytes_per_stream": store.bytes_per_stream,
        "traced_bytes_per_stream": mem / streams,
        "total_mib": mem / 2**20,
    }
    for mode in ("distinct", "random"):
        pre = []
        for j in range(32):
            if mode == "distinct":
                a = (j * batch) % max(1, streams - batch + 1)
                b_ids = ids[a : a + batch]
            else:
                b_ids = [ids[i] for i in rng.integers(0, streams, batch).tolist()]
            n = len(b_ids)
            x = rng.standard_normal((n, features)).astype(np.float32)
            pre.append((b_ids, np.sort(rng.random(n)), x, _fake_results(rng, n, features)))
        t0 = time.perf_counter()
        events = 0
        for k in range(batches):
            b_ids, ts, x, res = pre[k % len(pre)]
            store.record(b_ids, ts + k, x, res)
            events += len(b_ids)
        out[f"ns_per_event_{mode}"] = (time.perf_counter() - t0) / events * 1e9
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="measure the explorer ring buffer")
    ap.add_argument("--streams", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--points", type=int, nargs="+", default=[256])
    ap.add_argument("--features", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--batches", type=int, default=2000)
    a = ap.parse_args()
    print(
        "| points N | features F | streams | bytes/stream (arrays) | bytes/stream (traced) | MiB total "
        "| ns/event, distinct streams | ns/event, random repeats |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n_ in a.points:
        for f_ in a.features:
            r_ = bench(a.streams, a.batch, n_, f_, a.batches)
            print(
                f"| {n_} | {f_} | {a.streams} | {r_['array_bytes_per_stream']:,.0f} | "
                f"{r_['traced_bytes_per_stream']:,.0f} | {r_['total_mib']:,.1f} | "
                f"{r_['ns_per_event_distinct']:,.0f} | {r_['ns_per_event_random']:,.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
