"""Experiment: a loop of one source's SourcePipeline.process batches, for py-spy (heap frozen after warm-up).

PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session7/pipe_loop.py SOURCE BATCH N_BATCHES
"""

import gc
import sys
import time

import torch

import bench.source_batch_cost as sbc
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

torch.set_num_threads(1)
src, batch, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = Settings(device="cpu", sources=(src,))
p = SourcePipeline(src, build_runner(s, src), s, Metrics())
rounds = sbc._records(src, batch, n, time.time() - 3600.0)
flat = [r for rr in rounds for r in rr]
for k in range(3):
    p.process(flat[k * batch : (k + 1) * batch], now=time.time())
gc.collect()
gc.freeze()
t = time.thread_time()
for k in range(3, n):
    p.process(flat[k * batch : (k + 1) * batch], now=time.time())
print("us/event", (time.thread_time() - t) / ((n - 3) * batch) * 1e6)
