"""Experiment: the CPU cost per event of ``SourcePipeline.process`` on 4096-record batches of 10k warm
sensor streams (the drain's batches without Kafka), shipped detector, one thread; for a py-spy profile.

    R=100 OMP_NUM_THREADS=1 .venv/bin/py-spy record -r 200 -f raw -o /tmp/pipe.raw -- \
        .venv/bin/python bench/results/devvm-2026-12-07-session10/pipe_probe.py
    .venv/bin/python bench/pyspy_shares.py /tmp/pipe.raw

Environment: ``B`` batch size (4096), ``NS`` streams (10000), ``R`` rounds of the simulator (20).
"""

import os
import sys
import time

import torch

sys.path.insert(0, "bench")
from source_batch_cost import _records

from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings


def main() -> None:
    torch.set_num_threads(1)
    b, ns, rounds = (int(os.environ.get(k, d)) for k, d in (("B", "4096"), ("NS", "10000"), ("R", "20")))
    settings = Settings(device="cpu", sources=("sensors",))
    pipe = SourcePipeline("sensors", build_runner(settings, "sensors"), settings, Metrics())
    flat = [r for rr in _records("sensors", ns, rounds, time.time() - 3600) for r in rr]
    i = 0
    for _ in range(len(flat) // b // 2):  # warm: every stream seen, the slab grown
        pipe.process(flat[i : i + b], now=time.time())
        i += b
    ts = []
    while i + b <= len(flat):
        t = time.thread_time()
        pipe.process(flat[i : i + b], now=time.time())
        ts.append(time.thread_time() - t)
        i += b
    ts.sort()
    print(f"median {ts[len(ts) // 2] / b * 1e6:.2f} us/event over {len(ts)} batches of {b}")


if __name__ == "__main__":
    main()
