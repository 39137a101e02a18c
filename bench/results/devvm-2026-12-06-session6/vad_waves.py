"""Thread CPU µs of one ``VadRunner.process`` call on 8 streams with 1, 2 or 3 frames each (waves).

PYTHONPATH=TREE .venv/bin/python bench/results/devvm-2026-12-06-session6/vad_waves.py LABEL
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from models.silero import FRAME, SileroVAD, VadRunner
from models.types import Batch

torch.set_num_threads(1)
runner = VadRunner(SileroVAD.pretrained())
frames = {w: np.random.default_rng(w).normal(0, 0.1, (8 * w, FRAME)).astype(np.float32) for w in (1, 2, 3)}
ids = [f"s{i}" for i in range(8)]
calls = [0]


def timed(f: Callable[[], None], n: int = 400) -> float:
    for _ in range(30):
        f()
    t0 = time.thread_time()
    for _ in range(n):
        f()
    return (time.thread_time() - t0) / n * 1e6


def process(waves: int) -> None:
    calls[0] += 1
    ts = np.repeat(np.arange(waves) * 0.032 + calls[0], 8)
    runner.process(Batch(ids * waves, ts, frames[waves]))


print(sys.argv[1], " ".join(f"{w} waves: {timed(lambda w=w: process(w)):.0f}" for w in (1, 2, 3)))
