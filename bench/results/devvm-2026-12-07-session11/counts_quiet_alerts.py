"""Experiment (issue 18): what the shipped detector's false alerts on ``counts_quiet`` (seed 0) fire at.

Re-generates the families with ``_counts`` patched to also record its burst multiplier and buzz
(same random draws, so the same series), replays the counts_quiet series through the product's
Runner (kernel off, so the torch scorer's ``calibrate`` can be wrapped to record each channel's z
and score), and prints, per alert opening: channel, z, score, the largest normal-burst multiplier
in the 4 events up to it, the buzz and the tail check's excess ratio.

    [CK=CHECKPOINT] SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/counts_quiet_alerts.py
"""

from __future__ import annotations

import os

import numpy as np
import torch

import models.synthetic as syn
from models.calibrated import CalibratedChannels
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.types import Batch

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0"
REC: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _counts(name, rng, inject, n=10_000):  # type: ignore[no-untyped-def]
    # models.synthetic._counts, recording mult and buzz (keep in step with it)
    step = 300.0
    ts = syn._times(n, step, rng)
    day = (ts % syn.DAY) / syn.DAY
    weekend = ((ts // syn.DAY + 3) % 7) >= 5
    base = rng.uniform(5, 200)
    cyc = np.log(base) + rng.uniform(0.3, 1.0) * np.cos(2 * np.pi * (day - rng.uniform(0.4, 0.7)))
    cyc = cyc - rng.uniform(0.0, 0.5) * weekend
    buzz = np.zeros(n)
    eps = rng.normal(0, 0.3 * np.sqrt(1 - 0.98**2), n)
    for i in range(1, n):
        buzz[i] = 0.98 * buzz[i - 1] + eps[i]
    mult = np.ones(n)
    for b in np.flatnonzero(rng.random(n) < 0.004).tolist():
        amp = min(1.0 + rng.pareto(2.0), 4.0)
        k = np.arange(0, min(12, n - b))
        mult[b + k] *= 1.0 + (amp - 1.0) * np.exp(-k / 2.0)
    windows = []
    if inject:
        for s in syn._place(n, 3, rng, gap=1500):
            if rng.random() < 0.7:
                d = int(rng.integers(6, 25))
                mult[s : s + d] *= rng.uniform(6, 15)
            else:
                d = int(rng.integers(24, 73))
                mult[s : s + d] *= 0.1
            windows.append((s, min(n - 1, s + d - 1)))
    lam = np.exp(cyc + buzz) * mult
    vals = rng.poisson(rng.gamma(10.0, lam / 10.0)).astype(np.float64)
    if not inject:
        REC[name] = (mult.copy(), buzz.copy())
    return syn.SynthSeries(name, "counts" if inject else "counts_quiet", ts, vals, windows)


LAST: dict[str, torch.Tensor] = {}
_cal = CalibratedChannels.calibrate


def calibrate(self, aux, r, ok, count, bucket, *rest):  # type: ignore[no-untyped-def]
    _cal(self, aux, r, ok, count, bucket, *rest)
    LAST["score"] = aux[:, self._score].clone()
    LAST["exc"] = aux[:, self._exc].clone()


def main() -> None:
    syn._counts = _counts
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    torch.set_num_threads(1)
    series = syn.make_families(0, 6)["counts_quiet"]
    ck = load_checkpoint(os.environ.get("CK"))  # CK: another checkpoint (default: the bundled one)
    runner = Runner(ck.model, ck.scoring, device="cpu", capacity=64)
    q0 = 0.5 * float(np.math.erfc(ck.scoring.tail_z / np.sqrt(2))) if hasattr(np, "math") else None
    import math

    q0 = 0.5 * math.erfc(ck.scoring.tail_z / math.sqrt(2.0))
    ids = [s.name for s in series]
    n = len(series[0].values)
    rows = []
    with torch.inference_mode():
        for t in range(n):
            x = np.array([[s.values[t]] for s in series], np.float32)
            ts = np.array([s.ts[t] for s in series])
            res = runner.process(Batch(ids, ts, x))
            for j in np.flatnonzero(res.transition > 0):
                sc = LAST["score"][j].numpy()
                ch = int(sc.argmax())
                mult, buzz = REC[ids[j]]
                rows.append(
                    (
                        ids[j],
                        t,
                        ch,
                        float(sc[ch]),
                        float(mult[max(0, t - 3) : t + 1].max()),
                        float(buzz[t]),
                        float(LAST["exc"][j, ch]) / q0,
                        series[j].values[t],
                    )
                )
    print("series t channel score burst_mult buzz tail_ratio value")
    for r in rows:
        chan = ["resid", "profile", "shift"][r[2]]
        print(f"{r[0]} {r[1]} {chan} {r[3]:.3f} {r[4]:.2f} {r[5]:+.2f} {r[6]:.1f} {r[7]:.0f}")
    m = np.array([r[4] for r in rows])
    ch = np.array([r[2] for r in rows])
    print(
        f"alerts {len(rows)}; at a normal burst (mult >= 1.5 in the 4 events up to it): {(m >= 1.5).sum()}; "
        f">= 2: {(m >= 2).sum()}; >= 3: {(m >= 3).sum()}; channel resid/profile/shift: "
        f"{(ch == 0).sum()}/{(ch == 1).sum()}/{(ch == 2).sum()}"
    )
    for s in series:
        mult, _ = REC[s.name]
        starts = np.flatnonzero((mult[1:] > 1.0) & (mult[:-1] <= 1.0))
        print(s.name, "bursts", len(starts), "mean level", round(float(s.values.mean()), 1))


if __name__ == "__main__":
    main()
