"""Experiment (issue 18): why white noise (`quiet`'s `noisy_*`, seed 3) opens alerts: each channel's statistic r,
its running mean and variance (and the time-of-day variance of the per-event channels), the tail check's
exceedance rate and the channel scores, at the alert openings (torch scorer, the bundled detector;
channels: residual, profile, drop, shift).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session14/noisy_probe.py [SEED NAME [CHECKPOINT]]

The fifteenth session's ``noisy_probe_seed26.txt``: ``26 noisy_0 /tmp/bundle_42fce55.pt`` (the bundle of
42fce55: ``git show 42fce55:models/checkpoints/sensor_gru.pt > /tmp/bundle_42fce55.pt``).
"""

import sys

import numpy as np
import torch

from models.calibrated import CalibratedChannels
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch

torch.set_num_threads(1)
LAST = {}
_cal = CalibratedChannels.calibrate


def calibrate(self, aux, r, ok, count, bucket, is_open):
    LAST["r"] = r.clone()
    LAST["ok"] = ok.clone()
    LAST["mean"] = aux[:, self._mean].clone()
    LAST["var"] = aux[:, self._var].clone()
    if self.n_hourly:
        h = self.n_hourly
        i_v = self._bvar + bucket.long().unsqueeze(1) * h + torch.arange(h)
        LAST["bvar"] = aux.gather(1, i_v).clone()
    LAST["exc"] = aux[:, self._exc].clone()
    _cal(self, aux, r, ok, count, bucket, is_open)
    LAST["score"] = aux[:, self._score].clone()


CalibratedChannels.calibrate = calibrate
# fifteenth session: optional SEED NAME [CHECKPOINT] (default: seed 3's noisy series, the bundle)
SEED, NAME = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (3, "noisy")
ck = load_checkpoint(sys.argv[3] if len(sys.argv) > 3 else None)
for s in [x for x in make_families(SEED, 6)["quiet"] if x.name.startswith(NAME)]:
    r = Runner(ck.model, ck.scoring, device="cpu", capacity=2)
    r.scorer._cal_kernel = None
    for t in range(len(s.values)):
        res = r.process(Batch([s.name], s.ts[t : t + 1], np.array([[s.values[t]]], np.float32)))
        if res.transition[0] > 0:
            named = " ".join(f"{k} {LAST[k].numpy().round(5)}" for k in ("r", "mean", "var", "bvar", "exc", "score"))
            print(s.name, t, f"x {s.values[t]:.2f} score {res.score[0]:.3f} trans {res.transition[0]}", named)
