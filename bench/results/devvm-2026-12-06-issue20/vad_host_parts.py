"""VadRunner.process host parts at a 100k-stream step (31,250 frames), CPU, best of 7 (issue 20 notes).

PYTHONPATH=$PWD .venv/bin/python bench/results/devvm-2026-12-06-issue20/vad_host_parts.py
"""

import time

import numpy as np
import torch

from models.silero import FRAME, SileroVAD, VadRunner

N, B = 100_000, 31_250
r = VadRunner(SileroVAD(), capacity=N, max_capacity=N)
ids = [f"s{i}" for i in range(N)]
r.slab.assign(ids, np.zeros(N))
sel = [ids[i] for i in np.random.default_rng(0).permutation(N)[:B]]
ts = np.full(B, 10.0)
slab = r.slab


def order():
    last = {}
    keep = np.ones(B, bool)
    for j, (sid, tt) in enumerate(zip(sel, ts.tolist())):
        prev = last.get(sid)
        if prev is None:
            k = slab.slot(sid)
            prev = float(slab.last_ts[k]) if k is not None else -np.inf
        if tt < prev:
            keep[j] = False
        else:
            last[sid] = tt


xx = np.random.rand(B, FRAME).astype(np.float32)
o = np.arange(B)
parts = {
    "order loop": order,
    "_waves": lambda: VadRunner._waves(sel),
    "slab.assign": lambda: slab.assign(sel, ts),
    "frame reorder": lambda: torch.as_tensor(xx).cpu().numpy()[o],
}
for name, f in parts.items():
    best = min((lambda t: (f(), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(7))
    print(f"{name}: best of 7 {best * 1e3:.1f} ms")
