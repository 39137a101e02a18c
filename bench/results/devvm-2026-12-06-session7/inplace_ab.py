"""Experiment: a source's ``SourcePipeline.process`` with a wave's aux rows in place vs gathered
(``Runner.aux_in_place``), alternating batch by batch in one process (thread CPU time, medians).

    PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session7/inplace_ab.py [SOURCE:BATCH ...]
"""

import statistics
import sys
import time

import torch

import bench.source_batch_cost as sbc
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

DEFAULT = ["sensors:4096", "sensors:32", "speech:32", "machines:32", "sensors:1", "ticks:4", "ticks:32"]


def ab(src: str, batch: int, warm: int = 5, timed: int = 40) -> str:
    s = Settings(device="cpu", sources=(src,))
    pipes = {}
    for mode in (True, False):
        p = SourcePipeline(src, build_runner(s, src), s, Metrics())
        p.runner.aux_in_place = mode
        pipes[mode] = p
    rounds = sbc._records(src, batch, warm + timed, time.time() - 3600.0)
    flat = [r for rr in rounds for r in rr]
    res: dict[bool, list[float]] = {True: [], False: []}
    for mode in (True, False):
        for k in range(warm):
            pipes[mode].process(flat[k * batch : (k + 1) * batch], now=time.time())
    for k in range(warm, warm + timed):
        chunk = flat[k * batch : (k + 1) * batch]
        if len(chunk) < batch:
            break
        for mode in (True, False) if k % 2 else (False, True):
            t = time.thread_time()
            pipes[mode].process(chunk, now=time.time())
            res[mode].append(time.thread_time() - t)
    on, off = statistics.median(res[True]) * 1e6, statistics.median(res[False]) * 1e6
    return (
        f"{src:9s} batch {batch:5d}: gathered {off:9.1f} us  in place {on:9.1f} us  "
        f"({off / batch:.2f} -> {on / batch:.2f} us/event)"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    for spec in sys.argv[1:] or DEFAULT:
        name, b = spec.split(":")
        print(ab(name, int(b)), flush=True)
