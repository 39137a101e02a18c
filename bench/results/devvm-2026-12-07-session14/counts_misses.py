"""Experiment (issue 18): which injected `counts` anomalies the bundled detector misses, and why
(`counts_misses.txt`: the thirteenth session's bundle, before the drop channel; `counts_misses_drop.txt`: with it).

For every window of the `counts` family (seeds 0-2): surge or outage, its multiplier and length, the
level around it, whether an alert opened inside it, the highest score inside it, and whether an alert
was already open when it started.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session14/counts_misses.py
"""

from __future__ import annotations

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch


def run(seed: int) -> None:
    ck = load_checkpoint()
    runner = Runner(ck.model, ck.scoring, device="cpu", capacity=64)
    series = make_families(seed, 6)["counts"]
    n = len(series[0].values)
    score = np.zeros((len(series), n), np.float32)
    tr = np.zeros((len(series), n), np.int8)
    openf = np.zeros((len(series), n), bool)
    ids = [s.name for s in series]
    with torch.inference_mode():
        for t in range(n):
            x = np.array([[s.values[t]] for s in series], np.float32)
            res = runner.process(Batch(ids, np.array([s.ts[t] for s in series]), x))
            score[:, t], tr[:, t], openf[:, t] = res.score, res.transition, res.anomaly
    for i, s in enumerate(series):
        opened = np.flatnonzero(tr[i] > 0)
        for a, b in s.windows:
            v = s.values
            before = np.median(v[max(0, a - 288) : a])
            inside = np.mean(v[a : b + 1])
            kind = "surge" if inside > before else "outage"
            hit = any(a <= o <= b for o in opened)
            first = next((int(o - a) for o in opened if a <= o <= b), None)
            last_open = opened[opened < a]
            gap = int(a - last_open[-1]) if len(last_open) else -1
            print(
                f"seed {seed} {s.name:10s} {kind:6s} rows {a}-{b} ({b - a + 1:2d}) level {before:7.1f} "
                f"ratio {inside / max(before, 1e-9):5.2f} hit {'Y' if hit else 'n'} at {first} "
                f"max {score[i, a : b + 1].max():.2f} open_at_start {bool(openf[i, a - 1])} "
                f"since_prev_alert {gap}",
                flush=True,
            )


if __name__ == "__main__":
    torch.set_num_threads(1)
    for seed in (0, 1, 2):
        run(seed)
