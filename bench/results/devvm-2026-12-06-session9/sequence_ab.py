"""Experiment: a micro-batch with several events per stream, as one sequence step or as one wave per event
(``Runner.sequence`` on / off), CPU time per batch of ``SourcePipeline.process``, one thread, alternating.

Each batch holds B records of B / D streams (D events of each: a worker catching up, or a busy ticks
symbol); ticks come from the simulator as they are (its busy symbols tick most).

    PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session9/sequence_ab.py [PAIRS [SOURCE ...]]
"""

import statistics
import sys
import time

import torch

sys.path.insert(0, "bench")
import source_batch_cost as sbc

from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

torch.set_num_threads(1)


def cost(source: str, streams: int, batch: int, sequence: bool, warm: int = 30, repeats: int = 60) -> float:
    settings = Settings(device="cpu", sources=(source,))
    pipe = SourcePipeline(source, build_runner(settings, source), settings, Metrics())
    pipe.runner.sequence = sequence
    rounds = sbc._records(source, streams, 8 * (warm + repeats) * batch // max(streams, 1) + 8, time.time() - 3600)
    flat = [r for rr in rounds for r in rr]
    times = []
    for k in range(warm + repeats):
        chunk = flat[k * batch : (k + 1) * batch]
        if len(chunk) < batch:
            break
        t = time.thread_time()
        pipe.process(chunk, now=time.time())
        if k >= warm:
            times.append(time.thread_time() - t)
    return statistics.median(times) * 1e6


if __name__ == "__main__":
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cases = [("ticks", 12, 32), ("ticks", 12, 128), ("ticks", 50, 256), ("speech", 8, 32), ("speech", 32, 128),
             ("speech", 256, 1024), ("sensors", 8, 32), ("sensors", 32, 128), ("sensors", 2500, 4096),
             ("machines", 8, 32), ("machines", 32, 128)]  # fmt: skip
    only = sys.argv[2:]  # sources to run (default: all)
    cases = [c for c in cases if not only or c[0] in only]
    print("| source | streams | batch | waves µs/batch | sequence µs/batch | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for source, streams, batch in cases:
        w, s = [], []
        for _ in range(pairs):
            w.append(cost(source, streams, batch, False))
            s.append(cost(source, streams, batch, True))
        mw, ms = statistics.median(w), statistics.median(s)
        print(f"| {source} | {streams} | {batch} | {mw:,.0f} | {ms:,.0f} | {ms / mw:.2f} |", flush=True)
