"""VadRunner.process at a 100k-stream audio step (31,250 frames of distinct resident streams), model stubbed.

    OMP_NUM_THREADS=1 .venv/bin/python bench/results/devvm-2026-12-06-issue20/vad_host_after.py

The stub leaves the host part plus the CPU gather and scatter of the state rows (a card does those
on the device). Run on the tree before the vectorised path (vad_host_before.log) and after it.
"""

import time

import numpy as np
import torch

from models import Batch
from models.silero import FRAME, SileroVAD, VadRunner

torch.set_num_threads(1)
r = VadRunner(SileroVAD(), capacity=1 << 17, max_capacity=1 << 17)


def stub(x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    b = x.shape[0]
    return torch.zeros(b), (state[0], torch.zeros(b, 2, 128))


r.model.step = stub  # type: ignore[method-assign]
n_res, n = 100_000, 31_250
ids = [f"s{i}" for i in range(n_res)]
x = np.zeros((n, FRAME), np.float32)
for a in range(0, n_res, n):  # every stream resident
    sel = ids[a : a + n]
    r.process(Batch(sel, np.full(len(sel), 1.0), np.zeros((len(sel), FRAME), np.float32)))


def best_ms(batches: list[Batch]) -> float:
    out = []
    for b in batches:
        t = time.perf_counter()
        r.process(b)
        out.append(time.perf_counter() - t)
    return min(out) * 1e3


one = [Batch(ids[:n], np.full(n, 2.0 + k), x) for k in range(7)]
ms = best_ms(one)
print(f"one wave, {n} frames: {ms:.1f} ms ({ms * 1e3 / n:.2f} us/frame)")
half = ids[: n // 2]
two = [Batch(half + half, np.r_[np.full(n // 2, 100.0 + k), np.full(n // 2, 100.032 + k)], x) for k in range(5)]
print(f"two waves, {n} frames: {best_ms(two):.1f} ms")
